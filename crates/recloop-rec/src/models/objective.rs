//! The training objective of a fitted model, evaluated on any interactions: what `fit` minimizes
//! on the training rows, and the same data term on held-out rows (how well the fitted model
//! generalizes by its own measure). Count-based models (MostPop, ItemKNN) have none.
//!
//! The data term is computed from the model's scores, so every model family states only its loss
//! form and its regularization ([`Model::objective_form`]).

use super::Model;
use crate::Interactions;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;

/// How a model family's loss reads its scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossForm {
    /// Σ over the user's scored items of `c·(p − s)²`: `p = 1` and `c = positive_weight` on a
    /// positive, `p = 0` and `c = 1` elsewhere (EASE: `c = 1`; iALS: `c = alpha`).
    WeightedSquared {
        /// Confidence of a positive entry.
        positive_weight: f64,
    },
    /// Σ over the user's positives of `−ln σ(s_pos − s_neg)`, one negative per positive drawn
    /// uniformly (seeded) from the items that are neither positive nor masked (BPR).
    Pairwise,
}

/// A fitted model's objective: its name, loss form and regularization term.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveForm {
    /// What the objective is, in words (shown to agents).
    pub name: &'static str,
    /// How the data term reads the scores.
    pub loss: LossForm,
    /// The regularization term of the fitted parameters (e.g. `λ‖B‖²`).
    pub regularization: f64,
}

/// The data term over some users' rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataTerm {
    /// The loss summed over every scored user.
    pub sum: f64,
    /// Users with at least one positive (the ones scored).
    pub users: usize,
}

impl DataTerm {
    /// The mean per scored user (NaN when no user was scored).
    pub fn per_user(&self) -> f64 {
        if self.users == 0 {
            f64::NAN
        } else {
            self.sum / self.users as f64
        }
    }
}

/// Users scored per batch (bounds the score buffer to `BATCH × n_items` floats).
const BATCH: usize = 256;

/// The data term of `form` for `model` over the users of `rows` that have positives: their
/// positives are `rows`' items; the items `masked(user)` returns (sorted ascending) are neither
/// positive nor negative — pass the training items when `rows` are held out. `seed` draws the
/// pairwise negatives.
pub fn data_term(
    model: &dyn Model,
    loss: LossForm,
    rows: &Interactions,
    masked: &(dyn Fn(usize) -> Vec<u32> + Sync),
    seed: u64,
) -> DataTerm {
    let n_items = rows.n_items;
    let users: Vec<usize> = (0..rows.n_users)
        .filter(|&u| !rows.items_of(u).is_empty())
        .collect();
    let sum = users
        .par_chunks(BATCH)
        .map(|batch| {
            let mut scores = vec![0f32; batch.len() * n_items];
            model.score_batch(batch, &mut scores);
            batch
                .iter()
                .zip(scores.chunks(n_items.max(1)))
                .map(|(&u, s)| {
                    let mask = masked(u);
                    user_loss(loss, s, rows.items_of(u), &mask, seed ^ u as u64)
                })
                .sum::<f64>()
        })
        .sum();
    DataTerm {
        sum,
        users: users.len(),
    }
}

/// One user's loss from their scores, positives and masked items (both sorted ascending).
fn user_loss(loss: LossForm, scores: &[f32], positives: &[u32], masked: &[u32], seed: u64) -> f64 {
    match loss {
        LossForm::WeightedSquared { positive_weight } => {
            let sq = |i: u32| f64::from(scores[i as usize]) * f64::from(scores[i as usize]);
            // every item as a negative, minus the masked ones (a positive is never masked)
            let mut e: f64 = scores.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            e -= masked
                .iter()
                .filter(|i| positives.binary_search(i).is_err())
                .map(|&i| sq(i))
                .sum::<f64>();
            for &i in positives {
                let s = f64::from(scores[i as usize]);
                // replace the negative's s² by the positive's c·(1 − s)²
                e += positive_weight * (1.0 - s) * (1.0 - s) - s * s;
            }
            e
        }
        LossForm::Pairwise => {
            let n = scores.len();
            let excluded = positives.len() + masked.len();
            if excluded >= n {
                return 0.0;
            }
            let mut rng = Pcg64::seed_from_u64(seed);
            positives
                .iter()
                .map(|&i| {
                    let j = loop {
                        let j = rng.random_range(0..n) as u32;
                        if positives.binary_search(&j).is_err() && masked.binary_search(&j).is_err()
                        {
                            break j;
                        }
                    };
                    softplus(f64::from(scores[j as usize]) - f64::from(scores[i as usize]))
                })
                .sum()
        }
    }
}

/// `ln(1 + eˣ)` without overflow (`−ln σ(−x)`).
fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::bpr::{Bpr, BprParams};
    use crate::models::ease::Ease;
    use crate::models::ials::{Ials, IalsParams};
    use crate::models::mostpop::MostPop;

    /// 60 users × 40 items, users prefer items near `u mod 40` (so there is something to learn).
    fn clustered() -> Interactions {
        let mut rng = Pcg64::seed_from_u64(3);
        let mut pairs = Vec::new();
        for u in 0..60u32 {
            for _ in 0..8 {
                let i = (u % 40 + rng.random_range(0..6)) % 40;
                pairs.push((u, i));
            }
        }
        Interactions::from_pairs(60, 40, &pairs)
    }

    fn none(_: usize) -> Vec<u32> {
        Vec::new()
    }

    #[test]
    fn ials_objective_matches_its_own_training_loss() {
        let train = clustered();
        let mut m = Ials::new(IalsParams {
            factors: 8,
            alpha: 4.0,
            iterations: 5,
            ..Default::default()
        })
        .unwrap();
        m.fit(&train).unwrap();
        let form = m.objective_form().unwrap();
        let term = data_term(&m, form.loss, &train, &none, 0);
        // implicit's normalisation: divided by the total confidence
        let nnz = train.nnz() as f64;
        let total = 4.0 * nnz + (60 * 40) as f64 - nnz;
        let ours = (term.sum + form.regularization) / total;
        let theirs = m.loss(&train);
        assert!((ours - theirs).abs() < 1e-4 * theirs, "{ours} vs {theirs}");
    }

    #[test]
    fn fitted_ease_and_bpr_beat_their_untrained_objectives() {
        let train = clustered();
        let mut ease = Ease::new(10.0).unwrap();
        assert!(ease.objective_form().is_none(), "no objective before fit");
        ease.fit(&train).unwrap();
        let form = ease.objective_form().unwrap();
        let term = data_term(&ease, form.loss, &train, &none, 0);
        // B = 0 reconstructs nothing: every positive costs 1, nothing else
        assert!(
            term.sum + form.regularization < train.nnz() as f64,
            "{} + {} vs {}",
            term.sum,
            form.regularization,
            train.nnz()
        );
        assert_eq!(term.users, 60);

        let mut bpr = Bpr::new(BprParams {
            factors: 8,
            epochs: 40,
            ..Default::default()
        })
        .unwrap();
        bpr.fit(&train).unwrap();
        let form = bpr.objective_form().unwrap();
        let term = data_term(&bpr, form.loss, &train, &none, 1);
        // equal scores give ln 2 per positive
        let untrained = train.nnz() as f64 * std::f64::consts::LN_2;
        assert!(term.sum < 0.8 * untrained, "{} vs {untrained}", term.sum);
        // the same seed draws the same negatives
        assert_eq!(term, data_term(&bpr, form.loss, &train, &none, 1));

        let mut pop = MostPop::new();
        pop.fit(&train).unwrap();
        assert!(pop.objective_form().is_none());
    }

    #[test]
    fn squared_loss_counts_masked_items_nowhere_and_positives_with_their_weight() {
        // scores of 4 items; item 0 positive, item 2 masked
        let s = [0.5f32, 0.25, 0.75, 0.0];
        let got = user_loss(
            LossForm::WeightedSquared {
                positive_weight: 2.0,
            },
            &s,
            &[0],
            &[2],
            0,
        );
        let want = 2.0 * 0.25 + 0.0625 + 0.0;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn pairwise_loss_is_softplus_of_the_margin_and_never_draws_a_positive_or_masked_item() {
        // the only drawable negative is item 3
        let s = [2.0f32, 0.0, 0.0, -1.0];
        let got = user_loss(LossForm::Pairwise, &s, &[0, 1], &[2], 7);
        let want = softplus(-3.0) + softplus(-1.0);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert_eq!(
            user_loss(LossForm::Pairwise, &s, &[0, 1, 2, 3], &[], 7),
            0.0
        );
        assert!((softplus(1000.0) - 1000.0).abs() < 1e-9);
    }
}
