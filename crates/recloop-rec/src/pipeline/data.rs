//! The data a workspace evaluates on: train / validation / holdout interactions and item features,
//! chosen by `eval/eval.toml`.

use super::config::EvalConfig;
use super::features::ItemFeatures;
use super::synthetic;
use crate::Interactions;
use crate::error::{RecError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;

/// Train, validation and sealed holdout interactions over one id space, plus item features.
#[derive(Debug, Clone)]
pub struct PipelineData {
    /// What models are trained on.
    pub train: Interactions,
    /// What `--split validation` is scored against.
    pub validation: Interactions,
    /// What `--split holdout` is scored against (the agents only learn pass/fail on it).
    pub holdout: Interactions,
    /// Side information about items.
    pub items: ItemFeatures,
}

/// Load (fetching if needed) and split the dataset the configuration names.
pub fn load_data(config: &EvalConfig) -> Result<PipelineData> {
    match config.dataset.as_str() {
        "synthetic" => {
            let d = synthetic::generate(&config.synthetic, config.seed);
            let (train, validation, holdout) = split_per_user(&d.interactions, config.seed);
            Ok(PipelineData {
                train,
                validation,
                holdout,
                items: d.items,
            })
        }
        other => super::real_data::load(other, &config.protocol, config.seed),
    }
}

/// Per-user random split 80 / 10 / 10 (seeded): each user keeps at least one training item; the
/// rest of the held-out share alternates between validation and holdout.
pub fn split_per_user(all: &Interactions, seed: u64) -> (Interactions, Interactions, Interactions) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x5_9117);
    let (mut tr, mut va, mut ho) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..all.n_users {
        let mut items = all.items_of(u).to_vec();
        items.shuffle(&mut rng);
        let n = items.len();
        let held = ((n as f64 * 0.2).round() as usize).min(n.saturating_sub(1));
        for (pos, &i) in items.iter().enumerate() {
            let pair = (u as u32, i);
            if pos >= held {
                tr.push(pair);
            } else if pos % 2 == 0 {
                va.push(pair);
            } else {
                ho.push(pair);
            }
        }
    }
    let build = |p: &[(u32, u32)]| Interactions::from_pairs(all.n_users, all.n_items, p);
    (build(&tr), build(&va), build(&ho))
}

/// Reject data whose parts disagree on the id space.
pub fn check_shapes(data: &PipelineData, name: &str) -> Result<()> {
    let t = &data.train;
    for (part, m) in [("validation", &data.validation), ("holdout", &data.holdout)] {
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
    fn split_is_disjoint_complete_and_seeded() {
        let d = synthetic::generate(&Default::default(), 1);
        let (a, b, c) = split_per_user(&d.interactions, 5);
        assert_eq!(a.nnz() + b.nnz() + c.nnz(), d.interactions.nnz());
        for u in 0..a.n_users {
            assert!(!a.items_of(u).is_empty());
            for i in b.items_of(u) {
                assert!(!a.items_of(u).contains(i) && !c.items_of(u).contains(i));
            }
        }
        let (a2, _, _) = split_per_user(&d.interactions, 5);
        assert_eq!(a, a2);
    }
}
