//! Recommendation models behind one trait.

pub mod bpr;
pub mod ease;
pub mod hparams;
pub mod ials;
pub mod itemknn;
pub mod kernels;
pub mod mostpop;
pub mod persist;

use crate::Interactions;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The model families the built-in recommender offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    MostPop,
    ItemKnn,
    Ease,
    Ials,
    Bpr,
}

/// A trained (or trainable) recommender.
///
/// `score_into` writes one score per item for a user (higher is better); masking of seen items and
/// top-k selection are shared code (see `recommend`).
pub trait Model: Send + Sync {
    /// Model name as used in reports (`ease`, `ials`, ...).
    fn name(&self) -> &'static str;
    /// Train on the given interactions.
    fn fit(&mut self, train: &Interactions) -> Result<()>;
    /// Write the score of every item for `user` into `out` (`out.len() == n_items`).
    fn score_into(&self, user: usize, out: &mut [f32]);
    /// Serialize the trained state.
    fn save(&self, path: &std::path::Path) -> Result<()>;

    /// Scores of several users, user after user (`out.len() == users.len() * n_items`).
    ///
    /// Gives the same values as `score_into` per user; models override it when a batched product
    /// is faster (EASE, iALS, BPR do). The default scores the users in parallel.
    fn score_batch(&self, users: &[usize], out: &mut [f32]) {
        if users.is_empty() {
            return;
        }
        let n_items = out.len() / users.len();
        if n_items == 0 {
            return;
        }
        use rayon::prelude::*;
        out.par_chunks_mut(n_items)
            .zip(users.par_iter())
            .for_each(|(o, &u)| self.score_into(u, o));
    }

    /// Scores for one user as a new vector.
    fn score(&self, user: usize, n_items: usize) -> Vec<f32> {
        let mut out = vec![0.0; n_items];
        self.score_into(user, &mut out);
        out
    }
}

/// The `k` best items of `scores` (best first; ties broken by the lower item index), skipping the
/// items in `exclude` (sorted ascending) and items whose score is NaN.
///
/// Uses partial selection (`select_nth_unstable_by`), O(n_items + k log k).
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
    let mut cand: Vec<u32> = Vec::with_capacity(scores.len());
    let mut ex = exclude.iter().peekable();
    for (i, s) in scores.iter().enumerate() {
        let i = i as u32;
        while ex.peek().is_some_and(|&&e| e < i) {
            ex.next();
        }
        if ex.peek() == Some(&&i) || s.is_nan() {
            continue;
        }
        cand.push(i);
    }
    top_k_of(scores, k, &mut cand);
    cand
}

/// Reduce `cand` (item ids) to the `k` best by `scores`, sorted best first (ties: lower id first).
pub fn top_k_of(scores: &[f32], k: usize, cand: &mut Vec<u32>) {
    let cmp = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k == 0 {
        cand.clear();
        return;
    }
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, cmp);
        cand.truncate(k);
    }
    cand.sort_unstable_by(cmp);
}

/// The top `k` items for `user` with their scores, best first, never including `exclude`
/// (pass the user's training items for `exclude_seen`, or `&[]`). Works for every [`Model`].
pub fn recommend<M: Model + ?Sized>(
    model: &M,
    user: usize,
    n_items: usize,
    k: usize,
    exclude: &[u32],
) -> Vec<(u32, f32)> {
    let scores = model.score(user, n_items);
    top_k(&scores, k, exclude)
        .into_iter()
        .map(|i| (i, scores[i as usize]))
        .collect()
}
