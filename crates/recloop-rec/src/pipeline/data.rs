//! The data a workspace evaluates on: train / validation / holdout interactions and item features,
//! chosen by `eval/eval.toml` and split by the dataset's protocol (`crate::split`).

use super::config::EvalConfig;
use super::features::{ItemFeatures, mean_ratings};
use super::synthetic;
use crate::Interactions;
use crate::data::{Dataset, DatasetName};
use crate::error::{RecError, Result};
use crate::split::{Protocol, Target, prepare_and_split};

/// Train, validation and sealed holdout interactions over one id space, plus item features.
#[derive(Debug, Clone)]
pub struct PipelineData {
    /// What models are trained on before scoring validation.
    pub train: Interactions,
    /// What `--split validation` is scored against (train and holdout masked).
    pub validation: Interactions,
    /// What models are trained on before scoring the holdout (train under protocols A and B,
    /// train ∪ validation under temporal).
    pub holdout_train: Interactions,
    /// What `--split holdout` is scored against (train ∪ validation masked).
    pub holdout: Interactions,
    /// Side information about items.
    pub items: ItemFeatures,
}

/// Load (fetching if needed) and split the dataset the configuration names.
pub fn load_data(config: &EvalConfig) -> Result<PipelineData> {
    let dataset = match config.dataset.as_str() {
        "synthetic" => synthetic::generate(&config.synthetic, config.seed),
        name => {
            let parsed: DatasetName = name.parse()?;
            if parsed == DatasetName::Obd {
                return Err(RecError::Data {
                    name: name.into(),
                    reason: "obd is a bandit log, not a rating dataset".into(),
                });
            }
            crate::data::load(parsed)?
        }
    };
    let protocol: Protocol = config.protocol.parse()?;
    from_dataset(&dataset, protocol, config.seed)
}

/// Split a loaded dataset by `protocol` and collect its item features.
pub fn from_dataset(ds: &Dataset, protocol: Protocol, seed: u64) -> Result<PipelineData> {
    let (prepared, split) = prepare_and_split(ds, protocol, seed)?;
    let n_items = prepared.n_items();
    let mut genres = prepared.item_genres.clone();
    genres.resize(n_items, Vec::new());
    let year = (0..n_items)
        .map(|i| {
            let title = prepared.item_titles.get(i).map_or("", String::as_str);
            year_in(title)
                .or_else(|| year_in(&prepared.item_ids[i]))
                .unwrap_or(0)
        })
        .collect();
    let mean_rating = mean_ratings(
        n_items,
        split
            .train_rows
            .iter()
            .map(|&r| (prepared.items[r], prepared.ratings[r])),
    );
    Ok(PipelineData {
        train: split.fit_data(Target::Validation).clone(),
        validation: split.truth(Target::Validation).clone(),
        holdout_train: split.fit_data(Target::Holdout).clone(),
        holdout: split.truth(Target::Holdout).clone(),
        items: ItemFeatures {
            genre_names: prepared.genre_names.clone(),
            genres,
            year,
            mean_rating,
        },
    })
}

/// The year in a MovieLens-style title, `"Heat (1995)"` → 1995.
fn year_in(title: &str) -> Option<i32> {
    let t = title.trim_end();
    let inner = t.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let y = &inner[open + 1..];
    if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
        y.parse().ok()
    } else {
        None
    }
}

/// Reject data whose parts disagree on the id space.
pub fn check_shapes(data: &PipelineData, name: &str) -> Result<()> {
    let t = &data.train;
    for (part, m) in [
        ("validation", &data.validation),
        ("holdout", &data.holdout),
        ("holdout_train", &data.holdout_train),
    ] {
        if m.n_users != t.n_users || m.n_items != t.n_items {
            return Err(RecError::Data {
                name: name.to_string(),
                reason: format!(
                    "{part} has {}×{} users×items but train has {}×{}",
                    m.n_users, m.n_items, t.n_users, t.n_items
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_are_parsed_from_titles() {
        assert_eq!(year_in("Heat (1995)"), Some(1995));
        assert_eq!(
            year_in("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            Some(1995)
        );
        assert_eq!(year_in("No year"), None);
        assert_eq!(year_in("(abcd)"), None);
    }

    #[test]
    fn synthetic_split_is_disjoint_and_seeded() {
        let ds = synthetic::generate(&Default::default(), 1);
        let a = from_dataset(&ds, Protocol::A, 5).unwrap();
        let b = from_dataset(&ds, Protocol::A, 5).unwrap();
        assert_eq!(a.train, b.train);
        assert_eq!(a.holdout, b.holdout);
        assert!(a.validation.nnz() > 0 && a.holdout.nnz() > 0);
        for u in 0..a.train.n_users {
            for i in a.holdout.items_of(u) {
                assert!(!a.holdout_train.items_of(u).contains(i));
            }
        }
        assert!(a.items.year.iter().all(|&y| (1950..=2000).contains(&y)));
        check_shapes(&a, "synthetic").unwrap();
    }
}
