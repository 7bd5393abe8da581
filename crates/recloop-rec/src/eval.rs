//! Full-ranking offline evaluation: every item is ranked for every user with relevant items, the
//! masked (already seen) items are excluded, and the metrics of [`crate::metrics`] are averaged.
//!
//! Users are processed in batches (one score buffer of `batch × n_items` per batch) in parallel
//! with rayon; top-K uses partial selection. The evaluator is generic: a [`Scorer`] (any
//! [`Model`], or a closure through [`FnScorer`]) gives scores, or a ranking closure gives final
//! lists directly ([`Evaluator::evaluate_rankings`], for pipelines that rerank).
//!
//! ```no_run
//! use recloop_rec::{data, eval::Evaluator, models::itemknn::ItemKnn, split, Model};
//! let ds = data::load(data::DatasetName::Ml100k)?;
//! let s = split::split(&ds, split::Protocol::A, 0)?;
//! let mut m = ItemKnn::new(20)?;
//! m.fit(s.benchmark_fit())?;
//! let metrics = Evaluator::benchmark(&s).with_genres(&ds.item_genres).evaluate(&m)?;
//! println!("{}", metrics["ndcg@10"]);
//! # Ok::<(), recloop_rec::RecError>(())
//! ```

use crate::Interactions;
use crate::error::{RecError, Result};
use crate::metrics;
use crate::models::{Model, top_k_unmasked};
use crate::split::{Split, Target};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Metric name → value, e.g. `ndcg@10`, `recall@20`, `coverage@10`, plus `users` (the number of
/// evaluated users).
pub type Metrics = BTreeMap<String, f64>;

/// The cut-offs reported by default.
pub const DEFAULT_KS: [usize; 2] = [10, 20];

/// Users scored together in one buffer.
pub const DEFAULT_BATCH: usize = 256;

/// Anything that scores all items for a batch of users.
pub trait Scorer: Sync {
    /// Scores of `users`, user after user, into `out` (`out.len() == users.len() * n_items`).
    /// Higher is better; NaN is an error reported by the evaluator.
    fn score_batch(&self, users: &[usize], out: &mut [f32]);
}

impl<M: Model + ?Sized> Scorer for M {
    fn score_batch(&self, users: &[usize], out: &mut [f32]) {
        Model::score_batch(self, users, out)
    }
}

/// A [`Scorer`] from a closure `(user, scores_out)`.
pub struct FnScorer<F>(pub F);

impl<F: Fn(usize, &mut [f32]) + Sync> Scorer for FnScorer<F> {
    fn score_batch(&self, users: &[usize], out: &mut [f32]) {
        if users.is_empty() {
            return;
        }
        let n = out.len() / users.len();
        if n == 0 {
            return;
        }
        for (o, &u) in out.chunks_mut(n).zip(users) {
            (self.0)(u, o);
        }
    }
}

/// Evaluates rankings against one target of a split.
#[derive(Debug, Clone)]
pub struct Evaluator<'a> {
    /// Items excluded from every user's ranking (already seen).
    pub mask: &'a Interactions,
    /// Relevant items per user; users without any are skipped.
    pub truth: &'a Interactions,
    /// Cut-offs to report.
    pub ks: Vec<usize>,
    /// Popularity (share of users) per item, from the data the model was fitted on.
    pub popularity: Vec<f64>,
    /// Number of users behind `popularity` (clamps novelty).
    pub n_users: usize,
    /// Genres per item; `diversity@K` is reported only when set.
    pub item_genres: Option<&'a [Vec<u16>]>,
    /// Users per scoring batch.
    pub batch_size: usize,
}

/// Per-worker accumulator.
#[derive(Default)]
struct Acc {
    users: usize,
    // per k: ndcg, recall, precision, hr, mrr, novelty, arp, diversity, recall of all
    sums: Vec<[f64; 9]>,
    covered: Vec<Vec<bool>>,
}

impl Acc {
    fn new(nk: usize, n_items: usize) -> Acc {
        Acc {
            users: 0,
            sums: vec![[0.0; 9]; nk],
            covered: vec![vec![false; n_items]; nk],
        }
    }

    fn merge(mut self, other: Acc) -> Acc {
        if self.sums.is_empty() {
            return other;
        }
        if other.sums.is_empty() {
            return self;
        }
        self.users += other.users;
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, b) in self.covered.iter_mut().zip(&other.covered) {
            for (x, y) in a.iter_mut().zip(b) {
                *x |= *y;
            }
        }
        self
    }
}

impl<'a> Evaluator<'a> {
    /// Evaluate `target` of `split`: mask, truth and popularity as [`Split`] defines them.
    pub fn new(split: &'a Split, target: Target) -> Evaluator<'a> {
        let fit = split.fit_data(target);
        Evaluator::from_parts(split.mask(target), split.truth(target), fit)
    }

    /// Evaluate what `recloop rec bench` reports: the anchors' whole test set
    /// ([`Split::benchmark_truth`]) for a model fitted on [`Split::benchmark_fit`].
    pub fn benchmark(split: &'a Split) -> Evaluator<'a> {
        Evaluator::from_parts(
            split.benchmark_mask(),
            &split.benchmark_truth,
            split.benchmark_fit(),
        )
    }

    /// Evaluate against explicit `mask` and `truth`; popularity comes from `fit_data`.
    pub fn from_parts(
        mask: &'a Interactions,
        truth: &'a Interactions,
        fit_data: &Interactions,
    ) -> Evaluator<'a> {
        Evaluator {
            mask,
            truth,
            ks: DEFAULT_KS.to_vec(),
            popularity: metrics::item_popularity(&fit_data.item_counts(), fit_data.n_users),
            n_users: fit_data.n_users,
            item_genres: None,
            batch_size: DEFAULT_BATCH,
        }
    }

    /// Report these cut-offs instead of 10 and 20.
    pub fn with_ks(mut self, ks: &[usize]) -> Evaluator<'a> {
        self.ks = ks.to_vec();
        self
    }

    /// Report `diversity@K` with these item genres.
    pub fn with_genres(mut self, genres: &'a [Vec<u16>]) -> Evaluator<'a> {
        self.item_genres = Some(genres);
        self
    }

    /// Number of items ranked.
    pub fn n_items(&self) -> usize {
        self.truth.n_items
    }

    /// The users evaluated: those with at least one relevant item.
    pub fn users(&self) -> Vec<usize> {
        (0..self.truth.n_users)
            .filter(|&u| !self.truth.items_of(u).is_empty())
            .collect()
    }

    fn max_k(&self) -> usize {
        self.ks.iter().copied().max().unwrap_or(0)
    }

    fn check(&self) -> Result<()> {
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err(RecError::Spec {
                location: "eval".into(),
                reason: format!("cut-offs must be positive, got {:?}", self.ks),
            });
        }
        if self.mask.n_items != self.truth.n_items || self.mask.n_users != self.truth.n_users {
            return Err(RecError::Spec {
                location: "eval".into(),
                reason: "mask and truth have different shapes".into(),
            });
        }
        Ok(())
    }

    /// Score every evaluated user with `scorer`, rank all unmasked items and average the metrics.
    ///
    /// Fails if a score of an unmasked item is NaN (naming user and item).
    pub fn evaluate<S: Scorer + ?Sized>(&self, scorer: &S) -> Result<Metrics> {
        self.check()?;
        let n = self.n_items();
        let users = self.users();
        let k = self.max_k();
        let batch = self.batch_size.max(1);
        let nk = self.ks.len();
        let acc = users
            .par_chunks(batch)
            .map(|us| -> Result<Acc> {
                let mut scores = vec![0f32; us.len() * n];
                scorer.score_batch(us, &mut scores);
                let mut acc = Acc::new(nk, n);
                let mut best: Vec<u32> = Vec::with_capacity(k);
                for (row, &u) in scores.chunks(n).zip(us) {
                    if let Some(i) = top_k_unmasked(row, k, self.mask.items_of(u), &mut best) {
                        return Err(RecError::Model {
                            model: "scorer".into(),
                            reason: format!("NaN score for user {u}, item {i}"),
                        });
                    }
                    self.accumulate(&mut acc, u, &best);
                }
                Ok(acc)
            })
            .try_reduce(|| Acc::new(0, 0), |a, b| Ok(a.merge(b)))?;
        Ok(self.finish(acc))
    }

    /// Evaluate lists produced by `rank(user, mask_items, k, out)`: the closure writes the user's
    /// ranked items (best first, at most `k`, none of `mask_items`) into `out` (cleared before).
    /// Masked items it returns anyway are dropped before scoring.
    pub fn evaluate_rankings<F>(&self, rank: F) -> Result<Metrics>
    where
        F: Fn(usize, &[u32], usize, &mut Vec<u32>) -> Result<()> + Sync,
    {
        self.check()?;
        let n = self.n_items();
        let users = self.users();
        let k = self.max_k();
        let nk = self.ks.len();
        let acc = users
            .par_chunks(self.batch_size.max(1))
            .map(|us| -> Result<Acc> {
                let mut acc = Acc::new(nk, n);
                let mut list = Vec::with_capacity(k);
                for &u in us {
                    list.clear();
                    let mask = self.mask.items_of(u);
                    rank(u, mask, k, &mut list)?;
                    list.retain(|i| (*i as usize) < n && mask.binary_search(i).is_err());
                    list.truncate(k);
                    self.accumulate(&mut acc, u, &list);
                }
                Ok(acc)
            })
            .try_reduce(|| Acc::new(0, 0), |a, b| Ok(a.merge(b)))?;
        Ok(self.finish(acc))
    }

    fn accumulate(&self, acc: &mut Acc, u: usize, list: &[u32]) {
        let rel = self.truth.items_of(u);
        let hits = metrics::hit_flags(list, rel);
        acc.users += 1;
        for (ki, &k) in self.ks.iter().enumerate() {
            let top = &list[..k.min(list.len())];
            let s = &mut acc.sums[ki];
            s[0] += metrics::ndcg_from_hits(&hits, rel.len(), k);
            s[1] += metrics::recall_from_hits(&hits, rel.len(), k);
            s[2] += metrics::precision_from_hits(&hits, k);
            s[3] += metrics::hit_rate_from_hits(&hits, k);
            s[4] += metrics::mrr_from_hits(&hits, k);
            s[5] += metrics::novelty(top, &self.popularity, self.n_users);
            s[6] += metrics::average_popularity(top, &self.popularity);
            if let Some(g) = self.item_genres {
                s[7] += metrics::intra_list_diversity(top, g);
            }
            s[8] += metrics::recall_of_all_from_hits(&hits, rel.len(), k);
            for &i in top {
                acc.covered[ki][i as usize] = true;
            }
        }
    }

    fn finish(&self, acc: Acc) -> Metrics {
        let mut out = Metrics::new();
        let users = acc.users.max(1) as f64;
        out.insert("users".into(), acc.users as f64);
        let n = self.n_items().max(1) as f64;
        for (ki, &k) in self.ks.iter().enumerate() {
            let s = acc.sums.get(ki).copied().unwrap_or([0.0; 9]);
            let names = [
                "ndcg",
                "recall",
                "precision",
                "hr",
                "mrr",
                "novelty",
                "arp",
                "diversity",
                "recall_of_all",
            ];
            for (j, name) in names.iter().enumerate() {
                if j == 7 && self.item_genres.is_none() {
                    continue;
                }
                out.insert(format!("{name}@{k}"), s[j] / users);
            }
            let covered = acc
                .covered
                .get(ki)
                .map_or(0, |c| c.iter().filter(|x| **x).count());
            out.insert(format!("coverage@{k}"), covered as f64 / n);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_case_two_users() {
        // 2 users × 5 items. mask: u0 {0}, u1 {1}. truth: u0 {2}, u1 {3, 4}.
        let mask = Interactions::from_pairs(2, 5, &[(0, 0), (1, 1)]);
        let truth = Interactions::from_pairs(2, 5, &[(0, 2), (1, 3), (1, 4)]);
        // scores: item i gets 10 − i for everyone → u0 ranks 1,2,3,4 ; u1 ranks 0,2,3,4
        let scorer = FnScorer(|_u: usize, out: &mut [f32]| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = 10.0 - i as f32;
            }
        });
        let m = Evaluator::from_parts(&mask, &truth, &mask)
            .with_ks(&[2])
            .evaluate(&scorer)
            .unwrap();
        // u0: list [1,2] hit at rank 2 → ndcg = (1/log2 3)/1 ; u1: list [0,2] no hit
        let u0 = 1.0 / 3f64.log2();
        assert!((m["ndcg@2"] - u0 / 2.0).abs() < 1e-12);
        assert!((m["hr@2"] - 0.5).abs() < 1e-12);
        assert!((m["recall@2"] - 0.5).abs() < 1e-12);
        assert!((m["precision@2"] - 0.25).abs() < 1e-12);
        assert!((m["mrr@2"] - 0.25).abs() < 1e-12);
        // union of lists {0,1,2} of 5 items
        assert!((m["coverage@2"] - 0.6).abs() < 1e-12);
        assert_eq!(m["users"], 2.0);
        assert!(!m.contains_key("diversity@2"));

        // the ranking path gives the same numbers
        let r = Evaluator::from_parts(&mask, &truth, &mask)
            .with_ks(&[2])
            .evaluate_rankings(|u, _mask, _k, out| {
                out.extend_from_slice(if u == 0 { &[1, 2] } else { &[0, 2] });
                Ok(())
            })
            .unwrap();
        assert_eq!(r, m);
    }

    #[test]
    fn nan_scores_fail_with_user_and_item() {
        let mask = Interactions::from_pairs(1, 3, &[]);
        let truth = Interactions::from_pairs(1, 3, &[(0, 1)]);
        let scorer = FnScorer(|_u: usize, out: &mut [f32]| {
            out.fill(1.0);
            out[2] = f32::NAN;
        });
        let e = Evaluator::from_parts(&mask, &truth, &mask)
            .evaluate(&scorer)
            .unwrap_err()
            .to_string();
        assert!(e.contains("user 0, item 2"), "{e}");
        // a NaN on a masked item is fine
        let mask = Interactions::from_pairs(1, 3, &[(0, 2)]);
        assert!(
            Evaluator::from_parts(&mask, &truth, &mask)
                .evaluate(&scorer)
                .is_ok()
        );
    }

    #[test]
    fn masked_items_never_recommended() {
        let mask = Interactions::from_pairs(1, 4, &[(0, 0), (0, 1)]);
        let truth = Interactions::from_pairs(1, 4, &[(0, 0)]);
        // the masked relevant item can never be a hit
        let scorer = FnScorer(|_u: usize, out: &mut [f32]| out.fill(1.0));
        let m = Evaluator::from_parts(&mask, &truth, &mask)
            .evaluate(&scorer)
            .unwrap();
        assert_eq!(m["hr@10"], 0.0);
        assert!(
            Evaluator::from_parts(&mask, &truth, &mask)
                .with_ks(&[0])
                .evaluate(&scorer)
                .is_err()
        );
    }
}
