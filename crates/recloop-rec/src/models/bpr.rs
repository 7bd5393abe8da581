//! BPR-MF (Rendle et al. 2009): matrix factorisation trained by stochastic gradient ascent on the
//! pairwise log-likelihood `ln σ(x̂_ui − x̂_uj)` of an observed item `i` over a sampled unobserved
//! item `j`, with `x̂_ui = p_u · q_i + b_i`.
//!
//! **Deterministic parallel SGD.** Hogwild (lock-free shared updates) depends on thread timing, so
//! instead users and items are split into `BLOCKS` fixed blocks (seeded permutations), and each
//! epoch runs `BLOCKS` sub-epochs; in sub-epoch `s` block pair `(b, (b + s) mod BLOCKS)` is handled
//! by one task for every `b`. Tasks touch disjoint users and disjoint items, so they can run in
//! parallel, and each task draws from its own RNG seeded by `(seed, epoch, sub-epoch, block)`:
//! results are identical for a given seed whatever the number of threads. The negative item `j` is
//! drawn uniformly from the positive item's block (a random ~1/`BLOCKS` of the catalogue), never
//! one the user interacted with.

use super::factor_scores::ItemFactors;
use super::hparams::{self, HyperParam};
use super::kernels::{dot, simd, simd_kernel};
use super::objective::{LossForm, ObjectiveForm};
use super::persist::{Reader, Writer};
use crate::error::{RecError, Result};
use crate::{Interactions, Model};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Number of user and item blocks of the stratified schedule (fixed, so results do not depend on
/// the thread count).
const BLOCKS: usize = 8;

/// The hyper-parameters BPR accepts (names as in `pipeline.toml`).
pub const PARAMS: &[HyperParam] = &[
    HyperParam {
        name: "factors",
        default: 64.0,
        min: 1.0,
        max: 1024.0,
        integer: true,
    },
    HyperParam {
        name: "lr",
        default: 0.05,
        min: 1e-6,
        max: 10.0,
        integer: false,
    },
    HyperParam {
        name: "reg",
        default: 0.0025,
        min: 0.0,
        max: 10.0,
        integer: false,
    },
    HyperParam {
        name: "epochs",
        default: 30.0,
        min: 1.0,
        max: 10_000.0,
        integer: true,
    },
    HyperParam {
        name: "seed",
        default: 42.0,
        min: 0.0,
        max: 9.007_199_254_740_992e15,
        integer: true,
    },
];

/// BPR hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BprParams {
    /// Latent dimensions.
    pub factors: usize,
    /// SGD learning rate.
    pub lr: f32,
    /// L2 regularisation of the touched user, item and bias parameters.
    pub reg: f32,
    /// Passes over the training interactions.
    pub epochs: usize,
    /// Seed of the initialisation, the blocks and the sampling.
    pub seed: u64,
}

impl Default for BprParams {
    fn default() -> Self {
        BprParams {
            factors: 64,
            lr: 0.05,
            reg: 0.0025,
            epochs: 30,
            seed: 42,
        }
    }
}

impl BprParams {
    /// Read from a parameter map (missing keys take the defaults above).
    pub fn from_map(params: &BTreeMap<String, f64>) -> Result<BprParams> {
        let v = hparams::resolve("bpr", params, PARAMS)?;
        Ok(BprParams {
            factors: v[0] as usize,
            lr: v[1] as f32,
            reg: v[2] as f32,
            epochs: v[3] as usize,
            seed: v[4] as u64,
        })
    }

    fn validate(&self) -> Result<()> {
        let vals = [
            self.factors as f64,
            self.lr as f64,
            self.reg as f64,
            self.epochs as f64,
            self.seed as f64,
        ];
        for (d, v) in PARAMS.iter().zip(vals) {
            hparams::check("bpr", d, v)?;
        }
        Ok(())
    }
}

/// A fitted (or unfitted) BPR-MF model. Item biases are stored as an extra factor column
/// (`q_i = [factors…, b_i]`, `p_u = [factors…, 1]`), so scoring is one dot product.
#[derive(Debug, Clone)]
pub struct Bpr {
    params: BprParams,
    /// User factors, row-major `n_users × (factors + 1)`, last column 1.
    user_factors: Vec<f32>,
    /// Item factors, row-major `n_items × (factors + 1)`, last column the bias (and packed for
    /// scoring).
    item_factors: ItemFactors,
    n_users: usize,
    n_items: usize,
}

impl Bpr {
    /// A new model with the given hyper-parameters.
    pub fn new(params: BprParams) -> Result<Bpr> {
        params.validate()?;
        Ok(Bpr {
            params,
            user_factors: Vec::new(),
            item_factors: ItemFactors::default(),
            n_users: 0,
            n_items: 0,
        })
    }

    /// A new model from a parameter map.
    pub fn from_params(params: &BTreeMap<String, f64>) -> Result<Bpr> {
        Bpr::new(BprParams::from_map(params)?)
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &BprParams {
        &self.params
    }

    /// Load a model written by [`Model::save`].
    pub fn load(path: &Path) -> Result<Bpr> {
        let mut r = Reader::open(path, "bpr")?;
        let params = BprParams {
            factors: r.u64()? as usize,
            lr: r.f64()? as f32,
            reg: r.f64()? as f32,
            epochs: r.u64()? as usize,
            seed: r.u64()?,
        };
        let n_users = r.u64()? as usize;
        let n_items = r.u64()? as usize;
        let user_factors = r.f32s()?;
        let item_factors = r.f32s()?;
        let k = params.factors + 1;
        if user_factors.len() != n_users * k || item_factors.len() != n_items * k {
            return Err(r.invalid("factor matrices do not match their shapes"));
        }
        r.finish()?;
        let mut m = Bpr::new(params)?;
        m.n_users = n_users;
        m.n_items = n_items;
        m.user_factors = user_factors;
        m.item_factors = ItemFactors::new(item_factors, k);
        Ok(m)
    }
}

/// A seeded block id for each of `n` entities: a random permutation cut into `BLOCKS` parts.
fn blocks_of(n: usize, rng: &mut Pcg64) -> Vec<u8> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    let mut block = vec![0u8; n];
    for (pos, &e) in perm.iter().enumerate() {
        block[e] = (pos * BLOCKS / n.max(1)) as u8;
    }
    block
}

/// Raw pointers to the factor matrices, shared by the tasks of one sub-epoch.
///
/// Safety contract: within a sub-epoch, task `b` only touches users of user block `b` and items of
/// item block `(b + s) mod BLOCKS`; blocks partition users and items, so no two tasks touch the
/// same row.
#[derive(Clone, Copy)]
struct Shared {
    users: *mut f32,
    items: *mut f32,
}
// SAFETY: see the contract above; rows are disjoint between concurrently running tasks.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Everything a task needs to run SGD over one stratum.
struct Stratum<'a> {
    /// (user, item) pairs of the stratum, in a fixed order.
    pairs: &'a [(u32, u32)],
    /// Items of the stratum's item block (negatives are drawn from here).
    block_items: &'a [u32],
    train: &'a Interactions,
}

simd_kernel!(RunStratum = run_stratum<'a, 's>((&'a Stratum<'s>, Shared, usize, f32, f32, &'a mut Pcg64)) -> ());

/// SGD over one stratum: `(stratum, factors, k, lr, reg, rng)`; run through [`simd`].
#[inline(always)]
fn run_stratum((st, shared, k, lr, reg, rng): (&Stratum<'_>, Shared, usize, f32, f32, &mut Pcg64)) {
    if st.pairs.is_empty() || st.block_items.is_empty() {
        return;
    }
    let mut order: Vec<u32> = (0..st.pairs.len() as u32).collect();
    order.shuffle(rng);
    let kk = k + 1;
    let mut grad_u = vec![0f32; kk];
    for &o in &order {
        let (u, i) = st.pairs[o as usize];
        let seen = st.train.items_of(u as usize);
        // Draw an unobserved item of the block (give up after a few tries on dense users).
        let mut j = None;
        for _ in 0..16 {
            let c = st.block_items[rng.random_range(0..st.block_items.len())];
            if seen.binary_search(&c).is_err() {
                j = Some(c);
                break;
            }
        }
        let Some(j) = j else { continue };
        // SAFETY: u belongs to this task's user block, i and j to its item block (see `Shared`);
        // the three rows are distinct (i ≠ j because j is unobserved and i observed).
        let (pu, qi, qj) = unsafe {
            (
                std::slice::from_raw_parts_mut(shared.users.add(u as usize * kk), kk),
                std::slice::from_raw_parts_mut(shared.items.add(i as usize * kk), kk),
                std::slice::from_raw_parts_mut(shared.items.add(j as usize * kk), kk),
            )
        };
        let x = dot(pu, qi) - dot(pu, qj);
        // d/dx ln σ(x) = σ(−x)
        let z = 1.0 / (1.0 + x.exp());
        for f in 0..k {
            grad_u[f] = z * (qi[f] - qj[f]) - reg * pu[f];
        }
        for f in 0..kk {
            let p = pu[f];
            qi[f] += lr * (z * p - reg * qi[f]);
            qj[f] += lr * (-z * p - reg * qj[f]);
        }
        for f in 0..k {
            pu[f] += lr * grad_u[f];
        }
    }
}

impl Model for Bpr {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn objective_form(&self) -> Option<ObjectiveForm> {
        if self.user_factors.is_empty() {
            return None;
        }
        let k = self.params.factors + 1;
        let sq = |x: f32| f64::from(x) * f64::from(x);
        // the users' constant last column is not a parameter
        let users: f64 = self
            .user_factors
            .chunks(k)
            .map(|r| r[..k - 1].iter().map(|&x| sq(x)).sum::<f64>())
            .sum();
        let items: f64 = self.item_factors.rows().iter().map(|&x| sq(x)).sum();
        Some(ObjectiveForm {
            name: "pairwise log-loss Σ −ln σ(x·y_pos − x·y_neg) + reg·(‖X‖² + ‖Y‖² + ‖b‖²)",
            loss: LossForm::Pairwise,
            regularization: f64::from(self.params.reg) * (users + items),
        })
    }

    fn fit(&mut self, train: &Interactions) -> Result<()> {
        let p = self.params;
        let k = p.factors;
        let kk = k + 1;
        let mut rng = Pcg64::seed_from_u64(p.seed);
        let scale = 1.0 / (k as f32).sqrt();
        let mut users: Vec<f32> = (0..train.n_users * kk)
            .map(|e| {
                if e % kk == k {
                    1.0
                } else {
                    (rng.random::<f32>() - 0.5) * scale
                }
            })
            .collect();
        let mut items: Vec<f32> = (0..train.n_items * kk)
            .map(|e| {
                if e % kk == k {
                    0.0
                } else {
                    (rng.random::<f32>() - 0.5) * scale
                }
            })
            .collect();
        let ublock = blocks_of(train.n_users, &mut rng);
        let iblock = blocks_of(train.n_items, &mut rng);
        let mut block_items: Vec<Vec<u32>> = vec![Vec::new(); BLOCKS];
        for (i, &b) in iblock.iter().enumerate() {
            block_items[b as usize].push(i as u32);
        }
        // strata[ub][ib] = pairs of users in block ub and items in block ib
        let mut strata: Vec<Vec<Vec<(u32, u32)>>> = vec![vec![Vec::new(); BLOCKS]; BLOCKS];
        for u in 0..train.n_users {
            for &i in train.items_of(u) {
                strata[ublock[u] as usize][iblock[i as usize] as usize].push((u as u32, i));
            }
        }
        let shared = Shared {
            users: users.as_mut_ptr(),
            items: items.as_mut_ptr(),
        };
        for epoch in 0..p.epochs {
            for s in 0..BLOCKS {
                (0..BLOCKS).into_par_iter().for_each(|b| {
                    let ib = (b + s) % BLOCKS;
                    let st = Stratum {
                        pairs: &strata[b][ib],
                        block_items: &block_items[ib],
                        train,
                    };
                    let task_seed = p
                        .seed
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(((epoch * BLOCKS + s) * BLOCKS + b) as u64);
                    let mut rng = Pcg64::seed_from_u64(task_seed);
                    simd::<RunStratum, _>((&st, shared, k, p.lr, p.reg, &mut rng));
                });
            }
        }
        if users.iter().chain(&items).any(|v| !v.is_finite()) {
            return Err(RecError::Model {
                model: "bpr".into(),
                reason: "factors diverged to non-finite values; lower `lr`".into(),
            });
        }
        self.user_factors = users;
        self.item_factors = ItemFactors::new(items, kk);
        self.n_users = train.n_users;
        self.n_items = train.n_items;
        Ok(())
    }

    fn score_into(&self, user: usize, out: &mut [f32]) {
        self.item_factors.scores(&self.user_factors, &[user], out);
    }

    fn score_batch(&self, users: &[usize], out: &mut [f32]) {
        self.item_factors.scores(&self.user_factors, users, out);
    }

    fn save(&self, path: &Path) -> Result<()> {
        if self.user_factors.is_empty() && self.n_users == 0 {
            return Err(RecError::Model {
                model: "bpr".into(),
                reason: "saved before fit".into(),
            });
        }
        let p = self.params;
        let mut w = Writer::new("bpr");
        w.u64(p.factors as u64);
        w.f64(p.lr as f64);
        w.f64(p.reg as f64);
        w.u64(p.epochs as u64);
        w.u64(p.seed);
        w.u64(self.n_users as u64);
        w.u64(self.n_items as u64);
        w.f32s(&self.user_factors);
        w.f32s(self.item_factors.rows());
        w.finish(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_partition_evenly() {
        let mut rng = Pcg64::seed_from_u64(1);
        let b = blocks_of(100, &mut rng);
        for blk in 0..BLOCKS as u8 {
            let n = b.iter().filter(|&&x| x == blk).count();
            assert!((12..=13).contains(&n), "{n}");
        }
    }

    #[test]
    fn bad_params_are_named() {
        let p = BTreeMap::from([("lr".to_string(), -0.1)]);
        let e = Bpr::from_params(&p).unwrap_err().to_string();
        assert!(e.contains("`lr`"), "{e}");
        let p = BTreeMap::from([("learning_rate".to_string(), 0.1)]);
        let e = Bpr::from_params(&p).unwrap_err().to_string();
        assert!(e.contains("unknown hyper-parameter `learning_rate`"), "{e}");
    }
}
