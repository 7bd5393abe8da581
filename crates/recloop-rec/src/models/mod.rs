//! Recommendation models behind one trait.

pub mod bpr;
pub mod ease;
mod factor_scores;
pub mod hparams;
pub mod ials;
pub mod itemknn;
pub mod kernels;
pub mod mostpop;
pub mod objective;
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

    /// The training objective of the fitted model ([`objective`]); `None` for count-based
    /// models, which minimize nothing.
    fn objective_form(&self) -> Option<objective::ObjectiveForm> {
        None
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
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
    let mut best = Vec::with_capacity(k);
    top_k_unmasked(scores, k, exclude, &mut best);
    best
}

/// [`top_k`] into `best` (cleared first), in one pass over `scores` that keeps the running best
/// `k` sorted, so most items cost one comparison with the current `k`-th. Returns the first
/// item not in `exclude` whose score is NaN (skipped), if any.
pub fn top_k_unmasked(
    scores: &[f32],
    k: usize,
    exclude: &[u32],
    best: &mut Vec<u32>,
) -> Option<u32> {
    best.clear();
    let mut first_nan = None;
    if k == 0 {
        return first_nan;
    }
    // ascending ids: an item that ties an earlier one ranks after it
    let mut worst = f32::NAN; // score of best[k - 1] once best is full
    let mut ex = 0;
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        if best.len() == k && !s.total_cmp(&worst).is_gt() && !s.is_nan() {
            continue;
        }
        while ex < exclude.len() && exclude[ex] < i {
            ex += 1;
        }
        if ex < exclude.len() && exclude[ex] == i {
            continue;
        }
        if s.is_nan() {
            first_nan.get_or_insert(i);
            continue;
        }
        let at = best.partition_point(|&b| scores[b as usize].total_cmp(&s).is_ge());
        if best.len() == k {
            best.pop();
        }
        best.insert(at, i);
        if best.len() == k {
            worst = scores[best[k - 1] as usize];
        }
    }
    first_nan
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// The reference: every unmasked, non-NaN item, fully sorted (score descending by
    /// `total_cmp`, then id ascending), cut at `k`.
    fn sorted_reference(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
        let mut all: Vec<u32> = (0..scores.len() as u32)
            .filter(|i| !exclude.contains(i) && !scores[*i as usize].is_nan())
            .collect();
        all.sort_by(|a, b| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(a.cmp(b))
        });
        all.truncate(k);
        all
    }

    #[test]
    fn one_pass_top_k_matches_a_full_sort() {
        let mut rng = Pcg64::seed_from_u64(5);
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
        for case in 0..2000 {
            let n = rng.random_range(0..60);
            // few distinct values, so ties are common
            let scores: Vec<f32> = (0..n)
                .map(|_| match rng.random_range(0..10) {
                    0 => specials[rng.random_range(0..specials.len())],
                    _ => rng.random_range(0..6) as f32 * 0.5,
                })
                .collect();
            let exclude: Vec<u32> = (0..n as u32).filter(|_| rng.random_bool(0.3)).collect();
            let k = rng.random_range(0..25);
            let mut got = vec![99];
            let nan = top_k_unmasked(&scores, k, &exclude, &mut got);
            assert_eq!(
                got,
                sorted_reference(&scores, k, &exclude),
                "case {case}: {scores:?}"
            );
            let want_nan = (0..n as u32)
                .find(|i| !exclude.contains(i) && scores[*i as usize].is_nan())
                .filter(|_| k > 0);
            assert_eq!(nan, want_nan, "case {case}");
            let mut cand: Vec<u32> = (0..n as u32)
                .filter(|i| !exclude.contains(i) && !scores[*i as usize].is_nan())
                .collect();
            top_k_of(&scores, k, &mut cand);
            assert_eq!(cand, got, "case {case}: top_k_of differs");
        }
    }
}
