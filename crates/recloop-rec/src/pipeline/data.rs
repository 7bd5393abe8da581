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
    /// The rating of each interaction of `train`, aligned with `train.indices`.
    pub train_ratings: Vec<f32>,
    /// The rating of each interaction of `holdout_train`, aligned with its `indices`.
    pub holdout_train_ratings: Vec<f32>,
}

impl PipelineData {
    /// What the models are fitted on before scoring `split`, keeping only the interactions
    /// `positives` counts (borrowed unchanged when it counts every one).
    pub fn fit_data(
        &self,
        split: super::evaluate::EvalSplit,
        positives: &super::spec::PositivesSpec,
    ) -> std::borrow::Cow<'_, Interactions> {
        let (all, ratings) = match split {
            super::evaluate::EvalSplit::Validation => (&self.train, &self.train_ratings),
            super::evaluate::EvalSplit::Holdout => {
                (&self.holdout_train, &self.holdout_train_ratings)
            }
        };
        positives_of(all, ratings, positives)
    }
}

/// The interactions of `all` whose rating (aligned with `all.indices`) `positives` counts.
pub fn positives_of<'a>(
    all: &'a Interactions,
    ratings: &[f32],
    positives: &super::spec::PositivesSpec,
) -> std::borrow::Cow<'a, Interactions> {
    if positives.is_default() || ratings.len() != all.indices.len() {
        return std::borrow::Cow::Borrowed(all);
    }
    let mut pairs = Vec::with_capacity(all.indices.len());
    for u in 0..all.n_users {
        let row = all.indptr[u]..all.indptr[u + 1];
        for (&item, &rating) in all.indices[row.clone()].iter().zip(&ratings[row]) {
            if f64::from(rating) >= positives.min_rating {
                pairs.push((u as u32, item));
            }
        }
    }
    std::borrow::Cow::Owned(Interactions::from_pairs(all.n_users, all.n_items, &pairs))
}

/// The rating of each interaction of `fit` (aligned with `fit.indices`) from the dataset rows it
/// was built from; a pair rated twice keeps its highest rating.
fn ratings_of(fit: &Interactions, ds: &Dataset, rows: &[usize]) -> Vec<f32> {
    let mut by_pair: std::collections::HashMap<(u32, u32), f32> =
        std::collections::HashMap::with_capacity(rows.len());
    for &r in rows {
        let e = by_pair
            .entry((ds.users[r], ds.items[r]))
            .or_insert(f32::MIN);
        *e = e.max(ds.ratings[r]);
    }
    let mut out = Vec::with_capacity(fit.indices.len());
    for u in 0..fit.n_users {
        for &i in fit.items_of(u) {
            // every pair of `fit` comes from `rows`; a missing one counts as a positive
            out.push(by_pair.get(&(u as u32, i)).copied().unwrap_or(f32::MAX));
        }
    }
    out
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
    let train = split.fit_data(Target::Validation);
    let holdout_train = split.fit_data(Target::Holdout);
    Ok(PipelineData {
        train_ratings: ratings_of(train, &prepared, &split.fit_rows(Target::Validation)),
        holdout_train_ratings: ratings_of(
            holdout_train,
            &prepared,
            &split.fit_rows(Target::Holdout),
        ),
        train: train.clone(),
        validation: split.truth(Target::Validation).clone(),
        holdout_train: holdout_train.clone(),
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
    fn positives_keep_the_interactions_rated_at_least_the_threshold() {
        use crate::pipeline::evaluate::EvalSplit;
        use crate::pipeline::spec::PositivesSpec;
        let config = crate::pipeline::EvalConfig::parse(
            "dataset = \"synthetic\"\nprotocol = \"a\"\nseed = 3\n[synthetic]\nusers = 60\nitems = 40\n",
            std::path::Path::new("eval.toml"),
        )
        .unwrap();
        let data = load_data(&config).unwrap();
        assert_eq!(data.train_ratings.len(), data.train.nnz());
        assert_eq!(data.holdout_train_ratings.len(), data.holdout_train.nnz());
        // the default counts every interaction, without copying
        let all = data.fit_data(EvalSplit::Validation, &PositivesSpec::default());
        assert!(matches!(all, std::borrow::Cow::Borrowed(_)));
        let liked = data.fit_data(EvalSplit::Validation, &PositivesSpec { min_rating: 4.0 });
        let expected = data.train_ratings.iter().filter(|&&r| r >= 4.0).count();
        assert!(expected > 0 && expected < data.train.nnz());
        assert_eq!(liked.nnz(), expected);
        assert_eq!(
            (liked.n_users, liked.n_items),
            (data.train.n_users, data.train.n_items)
        );
        // every kept pair was rated ≥ 4
        for u in 0..liked.n_users {
            for i in liked.items_of(u) {
                let k = data.train.indptr[u] + data.train.items_of(u).binary_search(i).unwrap();
                assert!(data.train_ratings[k] >= 4.0);
            }
        }
        let bad = crate::pipeline::PipelineSpec::parse(
            "[[models]]\nname = \"p\"\nkind = \"mostpop\"\n\n[positives]\nmin_rating = 7.0\n",
            std::path::Path::new("pipeline.toml"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("pipeline.toml:6") && bad.contains("[0, 5]"),
            "{bad}"
        );
    }

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
