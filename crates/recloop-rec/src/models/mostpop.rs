//! MostPop: every user gets the items with the most training interactions.

use super::hparams::{self, HyperParam};
use super::persist::{Reader, Writer};
use crate::error::Result;
use crate::{Interactions, Model};
use std::collections::BTreeMap;
use std::path::Path;

/// MostPop takes no hyper-parameters.
pub const PARAMS: &[HyperParam] = &[];

/// Popularity model: the score of an item is its number of training interactions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MostPop {
    counts: Vec<f32>,
}

impl MostPop {
    /// An unfitted model.
    pub fn new() -> MostPop {
        MostPop::default()
    }

    /// From a parameter map (must be empty).
    pub fn from_params(params: &BTreeMap<String, f64>) -> Result<MostPop> {
        hparams::resolve("mostpop", params, PARAMS)?;
        Ok(MostPop::new())
    }

    /// Training interaction count per item (empty before `fit`).
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }

    /// Load a model written by [`Model::save`] (the `persist` format: `n_items`, then the counts).
    pub fn load(path: &Path) -> Result<MostPop> {
        let mut r = Reader::open(path, "mostpop")?;
        let n = r.u64()? as usize;
        let counts = r.f32s()?;
        if counts.len() != n {
            return Err(r.invalid("count vector does not match the item count"));
        }
        r.finish()?;
        Ok(MostPop { counts })
    }
}

impl Model for MostPop {
    fn name(&self) -> &'static str {
        "mostpop"
    }

    fn fit(&mut self, train: &Interactions) -> Result<()> {
        self.counts = train.item_counts().into_iter().map(|c| c as f32).collect();
        Ok(())
    }

    /// Unfitted, or with `out` of a different length than the catalog, scores are all 0.
    fn score_into(&self, _user: usize, out: &mut [f32]) {
        if out.len() == self.counts.len() {
            out.copy_from_slice(&self.counts);
        } else {
            out.fill(0.0);
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let mut w = Writer::new("mostpop");
        w.u64(self.counts.len() as u64);
        w.f32s(&self.counts);
        w.finish(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::recommend;

    #[test]
    fn ranks_by_count_and_round_trips() {
        let train =
            Interactions::from_pairs(3, 4, &[(0, 1), (1, 1), (2, 1), (0, 3), (1, 3), (2, 0)]);
        let mut m = MostPop::new();
        m.fit(&train).unwrap();
        assert_eq!(m.score(0, 4), vec![1.0, 3.0, 0.0, 2.0]);
        let rec = recommend(&m, 0, 4, 2, train.items_of(0));
        assert_eq!(rec, vec![(0, 1.0), (2, 0.0)]);
        let rec = recommend(&m, 0, 4, 2, &[]);
        assert_eq!(rec, vec![(1, 3.0), (3, 2.0)]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        m.save(&p).unwrap();
        assert_eq!(MostPop::load(&p).unwrap(), m);
        assert!(MostPop::from_params(&[("k".to_string(), 1.0)].into()).is_err());
    }
}
