//! ItemKNN: item-item cosine similarity over binary interactions, top-K neighbours per item.
//!
//! Mirrors `implicit`'s `CosineRecommender`: `sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i|·|U_j|)`; each
//! item keeps its `K` most similar items, **itself included** (as `implicit.all_pairs_knn` does),
//! and the score of item `j` for user `u` is `Σ_{i ∈ I_u} sim_K(i, j)`.
//!
//! Fit: for every item (in parallel) the co-occurrence counts are accumulated into a dense `f32`
//! row through the users of that item, then the top `K` are selected (ties: lower item id).

use super::hparams::{self, HyperParam};
use super::persist::{self, Reader, Writer};
use super::top_k_of;
use crate::error::{RecError, Result};
use crate::{Interactions, Model};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The hyper-parameters ItemKNN accepts.
pub const PARAMS: &[HyperParam] = &[HyperParam {
    name: "k",
    default: 20.0,
    min: 1.0,
    max: 100_000.0,
    integer: true,
}];

/// A fitted (or unfitted) ItemKNN model.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemKnn {
    k: usize,
    n_items: usize,
    /// Neighbour rows: the neighbours of item `i` are `nbr[ptr[i]..ptr[i + 1]]`.
    ptr: Vec<u32>,
    nbr: Vec<u32>,
    sim: Vec<f32>,
    train: Option<Interactions>,
}

impl ItemKnn {
    /// An unfitted model keeping `k` neighbours per item.
    pub fn new(k: usize) -> Result<ItemKnn> {
        hparams::check("itemknn", &PARAMS[0], k as f64)?;
        Ok(ItemKnn {
            k,
            n_items: 0,
            ptr: Vec::new(),
            nbr: Vec::new(),
            sim: Vec::new(),
            train: None,
        })
    }

    /// From a parameter map (`k`, default 20).
    pub fn from_params(params: &BTreeMap<String, f64>) -> Result<ItemKnn> {
        let v = hparams::resolve("itemknn", params, PARAMS)?;
        ItemKnn::new(v[0] as usize)
    }

    /// Neighbours per item.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The neighbours of `item` with their similarities (best first).
    pub fn neighbours(&self, item: usize) -> (&[u32], &[f32]) {
        if item + 1 >= self.ptr.len() {
            return (&[], &[]);
        }
        let (a, b) = (self.ptr[item] as usize, self.ptr[item + 1] as usize);
        (&self.nbr[a..b], &self.sim[a..b])
    }

    /// Load a model written by [`Model::save`] (`persist` format: `k`, `n_items`, the neighbour
    /// pointer / id / similarity arrays, then the training interactions).
    pub fn load(path: &Path) -> Result<ItemKnn> {
        let mut r = Reader::open(path, "itemknn")?;
        let k = r.u64()? as usize;
        let n_items = r.u64()? as usize;
        let ptr = r.u32s()?;
        let nbr = r.u32s()?;
        let sim = r.f32s()?;
        let train = persist::read_interactions(&mut r)?;
        let consistent = ptr.len() == n_items + 1
            && ptr.windows(2).all(|w| w[0] <= w[1])
            && ptr.last().is_some_and(|&e| e as usize == nbr.len())
            && nbr.len() == sim.len()
            && nbr.iter().all(|&j| (j as usize) < n_items)
            && train.n_items == n_items;
        if !consistent {
            return Err(r.invalid("neighbour arrays are inconsistent"));
        }
        r.finish()?;
        let mut m = ItemKnn::new(k)?;
        m.n_items = n_items;
        m.ptr = ptr;
        m.nbr = nbr;
        m.sim = sim;
        m.train = Some(train);
        Ok(m)
    }
}

/// Top-`k` cosine neighbours of every item: per item, the (ids, sims) best first.
fn neighbour_lists(train: &Interactions, k: usize) -> Vec<(Vec<u32>, Vec<f32>)> {
    let n = train.n_items;
    let by_item = train.transpose();
    let inv_norm: Vec<f32> = (0..n)
        .map(|i| {
            let c = by_item.items_of(i).len();
            if c == 0 { 0.0 } else { 1.0 / (c as f32).sqrt() }
        })
        .collect();
    (0..n)
        .into_par_iter()
        .with_min_len(16)
        .map_init(
            || {
                (
                    vec![0f32; n],
                    Vec::<u32>::with_capacity(n),
                    Vec::<u32>::new(),
                )
            },
            |(acc, touched, best), i| {
                // branch-free accumulation; the non-zeros are collected afterwards (O(n_items))
                for &u in by_item.items_of(i) {
                    for &j in train.items_of(u as usize) {
                        acc[j as usize] += 1.0;
                    }
                }
                let ni = inv_norm[i];
                touched.clear();
                for (j, a) in acc.iter_mut().enumerate() {
                    if *a != 0.0 {
                        *a *= ni * inv_norm[j];
                        touched.push(j as u32);
                    }
                }
                best.clear();
                best.extend_from_slice(touched);
                top_k_of(acc, k, best);
                let sims: Vec<f32> = best.iter().map(|&j| acc[j as usize]).collect();
                acc.fill(0.0);
                (best.clone(), sims)
            },
        )
        .collect()
}

impl Model for ItemKnn {
    fn name(&self) -> &'static str {
        "itemknn"
    }

    fn fit(&mut self, train: &Interactions) -> Result<()> {
        if train.n_items >= u32::MAX as usize {
            return Err(RecError::Model {
                model: "itemknn".into(),
                reason: "too many items".into(),
            });
        }
        let lists = neighbour_lists(train, self.k);
        let total: usize = lists.iter().map(|l| l.0.len()).sum();
        let mut ptr = Vec::with_capacity(train.n_items + 1);
        let mut nbr = Vec::with_capacity(total);
        let mut sim = Vec::with_capacity(total);
        ptr.push(0u32);
        for (ids, sims) in lists {
            nbr.extend_from_slice(&ids);
            sim.extend_from_slice(&sims);
            ptr.push(nbr.len() as u32);
        }
        self.n_items = train.n_items;
        self.ptr = ptr;
        self.nbr = nbr;
        self.sim = sim;
        self.train = Some(train.clone());
        Ok(())
    }

    /// Unfitted, for an unknown user, or with `out` of the wrong length, scores are all 0.
    fn score_into(&self, user: usize, out: &mut [f32]) {
        out.fill(0.0);
        let Some(train) = &self.train else { return };
        if user >= train.n_users || out.len() != self.n_items {
            return;
        }
        for &i in train.items_of(user) {
            let (ids, sims) = self.neighbours(i as usize);
            for (&j, &s) in ids.iter().zip(sims) {
                out[j as usize] += s;
            }
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let Some(train) = &self.train else {
            return Err(RecError::Model {
                model: "itemknn".into(),
                reason: "save before fit".into(),
            });
        };
        let mut w = Writer::new("itemknn");
        w.u64(self.k as u64);
        w.u64(self.n_items as u64);
        w.u32s(&self.ptr);
        w.u32s(&self.nbr);
        w.f32s(&self.sim);
        persist::write_interactions(&mut w, train);
        w.finish(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::recommend;

    /// Brute-force cosine for checking.
    fn cosine(train: &Interactions, i: u32, j: u32) -> f32 {
        let t = train.transpose();
        let (a, b) = (t.items_of(i as usize), t.items_of(j as usize));
        let inter = a.iter().filter(|u| b.contains(u)).count() as f32;
        if inter == 0.0 {
            0.0
        } else {
            inter / ((a.len() as f32) * (b.len() as f32)).sqrt()
        }
    }

    fn fixture() -> Interactions {
        // 5 users × 5 items
        Interactions::from_pairs(
            5,
            5,
            &[
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (1, 2),
                (2, 1),
                (2, 2),
                (3, 3),
                (3, 4),
                (4, 0),
                (4, 4),
            ],
        )
    }

    #[test]
    fn neighbours_match_brute_force_cosine() {
        let train = fixture();
        let mut m = ItemKnn::new(3).unwrap();
        m.fit(&train).unwrap();
        for i in 0..5u32 {
            let mut all: Vec<(u32, f32)> = (0..5u32)
                .map(|j| (j, cosine(&train, i, j)))
                .filter(|p| p.1 > 0.0)
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(3);
            let (ids, sims) = m.neighbours(i as usize);
            assert_eq!(ids, all.iter().map(|p| p.0).collect::<Vec<_>>(), "item {i}");
            for (s, p) in sims.iter().zip(&all) {
                assert!((s - p.1).abs() < 1e-6);
            }
            // self-similarity is 1 and comes first
            assert_eq!(ids[0], i);
        }
    }

    #[test]
    fn scores_sum_neighbour_similarities() {
        let train = fixture();
        let mut m = ItemKnn::new(5).unwrap();
        m.fit(&train).unwrap();
        // user 2 has items 1, 2: score(j) = cos(1, j) + cos(2, j)
        let s = m.score(2, 5);
        for j in 0..5u32 {
            let want = cosine(&train, 1, j) + cosine(&train, 2, j);
            assert!((s[j as usize] - want).abs() < 1e-6, "item {j}");
        }
        let rec = recommend(&m, 2, 5, 1, train.items_of(2));
        assert_eq!(rec[0].0, 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("knn.bin");
        m.save(&p).unwrap();
        assert_eq!(ItemKnn::load(&p).unwrap(), m);
        assert!(ItemKnn::new(0).is_err());
    }
}
