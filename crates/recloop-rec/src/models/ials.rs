//! Implicit alternating least squares (Hu, Koren, Volinsky 2008) with the conjugate-gradient row
//! solver of Takács et al. (2011), following the conventions of the Python package `implicit`
//! (0.7):
//!
//! * an observed entry has preference 1 and confidence `c = alpha` (the training matrix is binary,
//!   so `alpha · r = alpha`); unobserved entries have preference 0 and confidence 1. (The paper's
//!   `1 + α·r` is `alpha = 1 + α` here.)
//! * each row solves `(YᵀY + reg·I + Σᵢ (c − 1) yᵢyᵢᵀ) x = Σᵢ c·yᵢ` with `cg_steps` (default 3)
//!   conjugate-gradient steps, warm-started from the previous iterate; `reg` is not scaled by the
//!   row's count;
//! * factors start uniform in `[0, 0.01)` (seeded `Pcg64`); every iteration solves all users,
//!   then all items.
//!
//! Terms with weight `c − 1 = 0` (the default `alpha = 1`) are skipped: they add exactly zero, so
//! the result is the same as evaluating them, only faster. Rows are solved in parallel; each
//! row's arithmetic is fixed, so results do not depend on the number of threads.

use super::factor_scores::ItemFactors;
use super::hparams::{self, HyperParam};
use super::kernels::{axpy, dot, matvec, simd, simd_kernel};
use super::objective::{LossForm, ObjectiveForm};
use super::persist::{Reader, Writer};
use crate::error::{RecError, Result};
use crate::{Interactions, Model};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The hyper-parameters iALS accepts (names as in `pipeline.toml`).
pub const PARAMS: &[HyperParam] = &[
    HyperParam {
        name: "factors",
        default: 64.0,
        min: 1.0,
        max: 1024.0,
        integer: true,
    },
    HyperParam {
        name: "reg",
        default: 0.05,
        min: 0.0,
        max: 1e6,
        integer: false,
    },
    HyperParam {
        name: "alpha",
        default: 1.0,
        min: 1e-6,
        max: 1e6,
        integer: false,
    },
    HyperParam {
        name: "iterations",
        default: 15.0,
        min: 1.0,
        max: 1000.0,
        integer: true,
    },
    HyperParam {
        name: "cg_steps",
        default: 3.0,
        min: 1.0,
        max: 1024.0,
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

/// iALS hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IalsParams {
    /// Latent dimensions.
    pub factors: usize,
    /// L2 regularisation added to `YᵀY` (not scaled by counts, as in `implicit`).
    pub reg: f32,
    /// Confidence of an observed interaction.
    pub alpha: f32,
    /// Alternating sweeps (users then items).
    pub iterations: usize,
    /// Conjugate-gradient steps per row and sweep.
    pub cg_steps: usize,
    /// Seed of the factor initialisation.
    pub seed: u64,
}

impl Default for IalsParams {
    fn default() -> Self {
        IalsParams {
            factors: 64,
            reg: 0.05,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

impl IalsParams {
    /// Read from a parameter map (missing keys take the defaults above).
    pub fn from_map(params: &BTreeMap<String, f64>) -> Result<IalsParams> {
        let v = hparams::resolve("ials", params, PARAMS)?;
        Ok(IalsParams {
            factors: v[0] as usize,
            reg: v[1] as f32,
            alpha: v[2] as f32,
            iterations: v[3] as usize,
            cg_steps: v[4] as usize,
            seed: v[5] as u64,
        })
    }

    fn validate(&self) -> Result<()> {
        let vals = [
            self.factors as f64,
            self.reg as f64,
            self.alpha as f64,
            self.iterations as f64,
            self.cg_steps as f64,
            self.seed as f64,
        ];
        for (d, v) in PARAMS.iter().zip(vals) {
            hparams::check("ials", d, v)?;
        }
        Ok(())
    }
}

/// A fitted (or unfitted) iALS model.
#[derive(Debug, Clone)]
pub struct Ials {
    params: IalsParams,
    /// User factors, row-major `n_users × factors`.
    user_factors: Vec<f32>,
    /// Item factors, row-major `n_items × factors` (and packed for scoring).
    item_factors: ItemFactors,
    n_users: usize,
    n_items: usize,
    /// Training loss (implicit's normalisation) after each iteration, when requested.
    losses: Vec<f64>,
    track_loss: bool,
}

impl Ials {
    /// A new model with the given hyper-parameters.
    pub fn new(params: IalsParams) -> Result<Ials> {
        params.validate()?;
        Ok(Ials {
            params,
            user_factors: Vec::new(),
            item_factors: ItemFactors::default(),
            n_users: 0,
            n_items: 0,
            losses: Vec::new(),
            track_loss: false,
        })
    }

    /// A new model from a parameter map.
    pub fn from_params(params: &BTreeMap<String, f64>) -> Result<Ials> {
        Ials::new(IalsParams::from_map(params)?)
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &IalsParams {
        &self.params
    }

    /// Record the training loss after every iteration (costs one extra pass per iteration).
    pub fn with_loss_tracking(mut self, on: bool) -> Ials {
        self.track_loss = on;
        self
    }

    /// Training losses recorded during the last `fit` (empty unless tracking was on).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// User factors, row-major `n_users × factors`.
    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }

    /// Item factors, row-major `n_items × factors`.
    pub fn item_factors(&self) -> &[f32] {
        self.item_factors.rows()
    }

    /// Load a model written by [`Model::save`].
    pub fn load(path: &Path) -> Result<Ials> {
        let mut r = Reader::open(path, "ials")?;
        let params = IalsParams {
            factors: r.u64()? as usize,
            reg: r.f64()? as f32,
            alpha: r.f64()? as f32,
            iterations: r.u64()? as usize,
            cg_steps: r.u64()? as usize,
            seed: r.u64()?,
        };
        let n_users = r.u64()? as usize;
        let n_items = r.u64()? as usize;
        let user_factors = r.f32s()?;
        let item_factors = r.f32s()?;
        if user_factors.len() != n_users * params.factors
            || item_factors.len() != n_items * params.factors
        {
            return Err(r.invalid("factor matrices do not match their shapes"));
        }
        r.finish()?;
        let mut m = Ials::new(params)?;
        m.n_users = n_users;
        m.n_items = n_items;
        m.user_factors = user_factors;
        m.item_factors = ItemFactors::new(item_factors, params.factors);
        Ok(m)
    }

    /// Implicit's training loss: the weighted squared error over all entries plus the
    /// regularisation, divided by the total confidence.
    pub fn loss(&self, train: &Interactions) -> f64 {
        loss(
            train,
            &self.user_factors,
            self.item_factors.rows(),
            self.params.factors,
            self.params.alpha,
            self.params.reg,
        )
    }
}

/// `YᵀY + reg·I` for row-major `y` (`rows × k`), as a row-major `k × k` matrix.
///
/// Summed in a fixed order (blocks of rows, then blocks in order) so it is deterministic.
fn gram(y: &[f32], k: usize, reg: f32) -> Vec<f32> {
    const BLOCK: usize = 256;
    let partials: Vec<Vec<f64>> = y
        .par_chunks(k * BLOCK)
        .map(|block| simd::<GramBlock, _>((block, k)))
        .collect();
    let mut g = vec![0f64; k * k];
    for p in &partials {
        for (a, b) in g.iter_mut().zip(p) {
            *a += b;
        }
    }
    let mut out: Vec<f32> = g.into_iter().map(|v| v as f32).collect();
    for a in 0..k {
        out[a * k + a] += reg;
    }
    out
}

simd_kernel!(GramBlock = gram_block<'a>((&'a [f32], usize)) -> Vec<f64>);
simd_kernel!(SolveBlock = solve_block<'a, 'c>((&'a CgInputs<'c>, usize, &'a mut [f32])) -> ());
simd_kernel!(LossRow = loss_row<'a>((&'a [f32], &'a [f32], &'a [f32], &'a [u32], f32)) -> (f64, f64));

/// `Σ rowᵀ·row` over the rows of one block (in `f32`), widened to `f64` for the reduction.
#[inline(always)]
fn gram_block((block, k): (&[f32], usize)) -> Vec<f64> {
    let mut g = vec![0f32; k * k];
    for row in block.chunks_exact(k) {
        for (a, &ra) in row.iter().enumerate() {
            axpy(ra, row, &mut g[a * k..(a + 1) * k]);
        }
    }
    g.into_iter().map(f64::from).collect()
}

/// One half-sweep: update every row of `x` (row-major `rows × k`) given the fixed `y`.
fn solve_rows(
    rows: &Interactions,
    x: &mut [f32],
    y: &[f32],
    k: usize,
    alpha: f32,
    reg: f32,
    cg_steps: usize,
) {
    let yty = gram(y, k, reg);
    let w = alpha - 1.0;
    const ROWS: usize = 64;
    let cg = CgInputs {
        rows,
        y,
        yty: &yty,
        k,
        alpha,
        w,
        cg_steps,
    };
    x.par_chunks_mut(k * ROWS)
        .enumerate()
        .for_each(|(c, block)| simd::<SolveBlock, _>((&cg, c * ROWS, block)));
}

/// What the conjugate-gradient update of a block of rows reads.
struct CgInputs<'a> {
    rows: &'a Interactions,
    y: &'a [f32],
    yty: &'a [f32],
    k: usize,
    alpha: f32,
    /// `alpha − 1`, the extra confidence of an observed entry.
    w: f32,
    cg_steps: usize,
}

/// Update the rows of `block` (rows `first_row..`) by `cg_steps` conjugate-gradient steps each.
#[inline(always)]
fn solve_block((cg, first_row, block): (&CgInputs<'_>, usize, &mut [f32])) {
    let CgInputs {
        y,
        yty,
        k,
        alpha,
        w,
        cg_steps,
        ..
    } = *cg;
    let mut r = vec![0f32; k];
    let mut p = vec![0f32; k];
    let mut ap = vec![0f32; k];
    for (o, xu) in block.chunks_exact_mut(k).enumerate() {
        let items = cg.rows.items_of(first_row + o);
        if items.is_empty() {
            xu.fill(0.0);
            continue;
        }
        // r = b − A x, with b = Σ alpha·yᵢ and A = YᵀY + reg I + Σ w yᵢyᵢᵀ
        matvec(yty, xu, &mut r);
        for v in r.iter_mut() {
            *v = -*v;
        }
        for &i in items {
            let yi = &y[i as usize * k..(i as usize + 1) * k];
            let coef = if w != 0.0 {
                alpha - w * dot(yi, xu)
            } else {
                alpha
            };
            axpy(coef, yi, &mut r);
        }
        p.copy_from_slice(&r);
        let mut rsold = dot(&r, &r);
        if rsold < 1e-20 {
            continue;
        }
        for _ in 0..cg_steps {
            matvec(yty, &p, &mut ap);
            if w != 0.0 {
                for &i in items {
                    let yi = &y[i as usize * k..(i as usize + 1) * k];
                    axpy(w * dot(yi, &p), yi, &mut ap);
                }
            }
            let pap = dot(&p, &ap);
            if pap.is_nan() || pap <= 0.0 {
                break;
            }
            let step = rsold / pap;
            axpy(step, &p, xu);
            axpy(-step, &ap, &mut r);
            let rsnew = dot(&r, &r);
            if rsnew < 1e-20 {
                break;
            }
            let beta = rsnew / rsold;
            for (pi, ri) in p.iter_mut().zip(&r) {
                *pi = ri + beta * *pi;
            }
            rsold = rsnew;
        }
    }
}

fn loss(train: &Interactions, x: &[f32], y: &[f32], k: usize, alpha: f32, reg: f32) -> f64 {
    if k == 0 || x.is_empty() {
        return f64::NAN;
    }
    let yty = gram(y, k, 0.0);
    let (err, xnorm): (f64, f64) = x
        .par_chunks(k)
        .enumerate()
        .map(|(u, xu)| simd::<LossRow, _>((&yty, y, xu, train.items_of(u), alpha)))
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let ynorm: f64 = y.chunks(k).map(|r| dot(r, r) as f64).sum();
    let nnz = train.nnz() as f64;
    let total = alpha as f64 * nnz + (train.n_users * train.n_items) as f64 - nnz;
    (err + reg as f64 * (xnorm + ynorm)) / total
}

/// One user's term of the loss and `|x_u|²`: `(yty, y, x_u, items, alpha)`.
#[inline(always)]
fn loss_row((yty, y, xu, items, alpha): (&[f32], &[f32], &[f32], &[u32], f32)) -> (f64, f64) {
    let k = xu.len();
    let w = alpha - 1.0;
    let mut r = vec![0f32; k];
    matvec(yty, xu, &mut r);
    // xᵀYᵀYx + Σ_observed [ (c−1)(x·y)² − 2c(x·y) + c ]
    let mut e = dot(&r, xu) as f64;
    for &i in items {
        let yi = &y[i as usize * k..(i as usize + 1) * k];
        let s = dot(yi, xu) as f64;
        e += w as f64 * s * s - 2.0 * alpha as f64 * s + alpha as f64;
    }
    (e, dot(xu, xu) as f64)
}

impl Model for Ials {
    fn name(&self) -> &'static str {
        "ials"
    }

    fn objective_form(&self) -> Option<ObjectiveForm> {
        if self.user_factors.is_empty() {
            return None;
        }
        let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
        Some(ObjectiveForm {
            name: "confidence-weighted squared error Σ c·(p − x·y)² + reg·(‖X‖² + ‖Y‖²)",
            loss: LossForm::WeightedSquared {
                positive_weight: f64::from(self.params.alpha),
            },
            regularization: f64::from(self.params.reg)
                * (norm(&self.user_factors) + norm(self.item_factors.rows())),
        })
    }

    fn fit(&mut self, train: &Interactions) -> Result<()> {
        let p = self.params;
        let k = p.factors;
        let mut rng = Pcg64::seed_from_u64(p.seed);
        let mut init = |n: usize| -> Vec<f32> {
            (0..n * k)
                .map(|_| rng.random::<f32>() * 0.01)
                .collect::<Vec<f32>>()
        };
        let mut xu = init(train.n_users);
        let mut yi = init(train.n_items);
        let by_item = train.transpose();
        self.losses.clear();
        for _ in 0..p.iterations {
            solve_rows(train, &mut xu, &yi, k, p.alpha, p.reg, p.cg_steps);
            solve_rows(&by_item, &mut yi, &xu, k, p.alpha, p.reg, p.cg_steps);
            if self.track_loss {
                self.losses.push(loss(train, &xu, &yi, k, p.alpha, p.reg));
            }
        }
        if xu.iter().chain(&yi).any(|v| !v.is_finite()) {
            return Err(RecError::Model {
                model: "ials".into(),
                reason: "factors diverged to non-finite values; increase `reg`".into(),
            });
        }
        self.user_factors = xu;
        self.item_factors = ItemFactors::new(yi, k);
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
                model: "ials".into(),
                reason: "saved before fit".into(),
            });
        }
        let p = self.params;
        let mut w = Writer::new("ials");
        w.u64(p.factors as u64);
        w.f64(p.reg as f64);
        w.f64(p.alpha as f64);
        w.u64(p.iterations as u64);
        w.u64(p.cg_steps as u64);
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
    fn gram_adds_reg_on_the_diagonal() {
        let y = [1.0, 2.0, 3.0, 4.0];
        let g = gram(&y, 2, 0.5);
        assert_eq!(g, vec![10.5, 14.0, 14.0, 20.5]);
    }

    #[test]
    fn bad_params_are_named() {
        let p = BTreeMap::from([("factors".to_string(), 0.0)]);
        let e = Ials::from_params(&p).unwrap_err().to_string();
        assert!(e.contains("`factors`"), "{e}");
        let e = Ials::new(IalsParams {
            reg: f32::NAN,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`reg`"), "{e}");
    }
}
