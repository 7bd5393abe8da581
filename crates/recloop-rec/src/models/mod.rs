//! Recommendation models behind one trait.

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

    /// Scores for one user as a new vector.
    fn score(&self, user: usize, n_items: usize) -> Vec<f32> {
        let mut out = vec![0.0; n_items];
        self.score_into(user, &mut out);
        out
    }
}
