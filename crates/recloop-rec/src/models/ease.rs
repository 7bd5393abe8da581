//! EASE (Steck 2019): a closed-form item-item linear autoencoder.
//!
//! `G = XᵀX + λI` (dense, built from the sparse training matrix), `P = G⁻¹` through a Cholesky
//! factorisation (`faer`, in parallel), `B = −P / diag(P)` column-wise with `diag(B) = 0`.
//! The score of user `u` is `x_u · B`, the sum of the rows of `B` of the items `u` interacted with.
//!
//! Everything is `f32`: the Gram matrix of a binary matrix is exact in `f32` (counts < 2²⁴), and
//! with `λ` in the hundreds the system is well conditioned (the unit tests compare against an
//! `f64` dense solve).
//!
//! Reproducibility: a fit is deterministic on one machine, but faer's blocked factorisation picks
//! its kernels by the detected vector width, so weights fitted on an AVX-512 machine may differ in
//! the last bits from weights fitted on an AVX2 one. Scoring a given `B` gives the same bits on
//! every machine (fixed summation order, no fused multiply-add).

use super::hparams::{self, HyperParam};
use super::kernels::{simd, simd_kernel};
use super::objective::{LossForm, ObjectiveForm};
use super::persist::{self, Reader, Writer};
use crate::error::{RecError, Result};
use crate::{Interactions, Model};
use faer::MatMut;
use faer::Par;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The hyper-parameters EASE accepts.
pub const PARAMS: &[HyperParam] = &[HyperParam {
    name: "lambda",
    default: 500.0,
    min: 1e-3,
    max: 1e9,
    integer: false,
}];

/// Columns of `B` stored and scored together (see [`Panels`]).
const PANEL: usize = 32;

/// `B` stored in column panels: panel `p` holds columns `p·PANEL .. (p+1)·PANEL` of every row,
/// contiguously (`n` [`PanelRow`]s, the last panel zero-padded). Scoring sums rows of one panel
/// at a time; in this layout the panel is one compact block (470 KB for ML-1M) that stays in L2
/// and in the TLB, where the same columns of a row-major `B` lie on one page per row.
#[derive(Debug, Clone, Default)]
struct Panels {
    n: usize,
    rows: Vec<PanelRow>,
}

/// One row of one panel, cache-line aligned so that it spans exactly `PANEL / 16` lines.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct PanelRow([f32; PANEL]);

impl Panels {
    fn n_panels(n: usize) -> usize {
        n.div_ceil(PANEL)
    }

    /// Pack a row-major `n × n` matrix.
    fn from_row_major(w: &[f32], n: usize) -> Panels {
        let mut rows = vec![PanelRow([0.0; PANEL]); Panels::n_panels(n) * n];
        if n > 0 {
            rows.par_chunks_mut(n).enumerate().for_each(|(p, panel)| {
                let (c0, c1) = (p * PANEL, ((p + 1) * PANEL).min(n));
                for (i, dst) in panel.iter_mut().enumerate() {
                    dst.0[..c1 - c0].copy_from_slice(&w[i * n + c0..i * n + c1]);
                }
            });
        }
        Panels { n, rows }
    }

    /// The matrix row-major again (the on-disk layout).
    fn to_row_major(&self) -> Vec<f32> {
        let n = self.n;
        let mut w = vec![0f32; n * n];
        for (i, row) in w.chunks_mut(n.max(1)).enumerate() {
            for (p, seg) in row.chunks_mut(PANEL).enumerate() {
                seg.copy_from_slice(&self.rows[p * n + i].0[..seg.len()]);
            }
        }
        w
    }

    /// Sum of rows `items` of panel `p`, in item order (deterministic).
    #[inline(always)]
    fn sum_rows(&self, p: usize, items: &[u32]) -> [f32; PANEL] {
        let panel = &self.rows[p * self.n..(p + 1) * self.n];
        let mut acc = [0f32; PANEL];
        for &i in items {
            let seg = &panel[i as usize].0;
            for l in 0..PANEL {
                acc[l] += seg[l];
            }
        }
        acc
    }
}

/// A fitted (or unfitted) EASE model.
#[derive(Debug, Clone)]
pub struct Ease {
    lambda: f64,
    /// `B` in column panels (`n_items` wide); empty until fitted.
    weights: Panels,
    /// The training interactions, whose rows are the users' histories at scoring time.
    train: Option<Interactions>,
}

impl Ease {
    /// A new model with regularisation `lambda` (> 0).
    pub fn new(lambda: f64) -> Result<Ease> {
        hparams::check("ease", &PARAMS[0], lambda)?;
        Ok(Ease {
            lambda,
            weights: Panels::default(),
            train: None,
        })
    }

    /// A new model from a parameter map (`lambda`, default 500).
    pub fn from_params(params: &BTreeMap<String, f64>) -> Result<Ease> {
        let v = hparams::resolve("ease", params, PARAMS)?;
        Ease::new(v[0])
    }

    /// The regularisation `λ`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The item-item weight matrix `B` (row-major, `n_items²` entries; empty before `fit`).
    pub fn weights(&self) -> Vec<f32> {
        self.weights.to_row_major()
    }

    /// Load a model written by [`Model::save`].
    pub fn load(path: &Path) -> Result<Ease> {
        let mut r = Reader::open(path, "ease")?;
        let lambda = r.f64()?;
        let n_items = r.u64()? as usize;
        let weights = r.f32s()?;
        let train = persist::read_interactions(&mut r)?;
        if weights.len() != n_items * n_items || train.n_items != n_items {
            return Err(r.invalid("weight matrix does not match the item count"));
        }
        r.finish()?;
        let mut m = Ease::new(lambda)?;
        m.weights = Panels::from_row_major(&weights, n_items);
        m.train = Some(train);
        Ok(m)
    }

    fn not_fitted(&self) -> RecError {
        RecError::Model {
            model: "ease".into(),
            reason: "used before fit".into(),
        }
    }
}

/// Upper triangle (row-major, `j ≥ i`) of `XᵀX + λI`; the lower triangle is left at zero.
fn gram_upper(train: &Interactions, by_item: &Interactions, lambda: f32) -> Vec<f32> {
    let n = train.n_items;
    let mut g = vec![0f32; n * n];
    const ROWS: usize = 8;
    g.par_chunks_mut(n * ROWS)
        .enumerate()
        .for_each(|(c, block)| {
            // Write before the first read: reading a fresh zeroed page first maps the shared
            // zero page, and the write after it costs a copy-on-write fault with a TLB
            // shootdown on every core, page by page.
            block.fill(0.0);
            for (r, row) in block.chunks_mut(n).enumerate() {
                let i = c * ROWS + r;
                for &u in by_item.items_of(i) {
                    let items = train.items_of(u as usize);
                    let start = items.partition_point(|&j| (j as usize) < i);
                    for &j in &items[start..] {
                        row[j as usize] += 1.0;
                    }
                }
                row[i] += lambda;
            }
        });
    g
}

/// Turn the Gram matrix (upper triangle, row-major) into `B` in place.
fn solve_weights(mut g: Vec<f32>, n: usize) -> Result<Vec<f32>> {
    let par = Par::rayon(0);
    // Row-major upper = column-major lower.
    let a = MatMut::from_column_major_slice_mut(&mut g, n, n);
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f32>(
        n,
        par,
        Default::default(),
    ));
    llt::factor::cholesky_in_place(
        a,
        Default::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| RecError::Model {
        model: "ease".into(),
        reason: format!("Gram matrix is not positive definite ({e:?}); increase `lambda`"),
    })?;
    let mut p = vec![0f32; n * n];
    {
        let l = faer::MatRef::from_column_major_slice(&g, n, n);
        let out = MatMut::from_column_major_slice_mut(&mut p, n, n);
        let mut mem = MemBuffer::new(llt::inverse::inverse_scratch::<f32>(n, par));
        llt::inverse::inverse(out, l, par, MemStack::new(&mut mem));
    }
    // `p` holds the lower triangle of P = G⁻¹ column-major, i.e. P[i][j] for i ≥ j at j*n + i.
    // B[i][j] = −P[i][j] / P[j][j] (row-major), B[i][i] = 0.
    let diag: Vec<f32> = (0..n).map(|j| p[j * n + j]).collect();
    if let Some(j) = diag.iter().position(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(RecError::Model {
            model: "ease".into(),
            reason: format!("inverse has a non-positive diagonal at item {j}; increase `lambda`"),
        });
    }
    // L is no longer needed: write B over it, 64 rows at a time so that both the contiguous
    // reads of P's columns and the writes stay in cache.
    let neg_inv: Vec<f32> = diag.iter().map(|d| -1.0 / d).collect();
    let mut b = g;
    const TILE: usize = 64;
    b.par_chunks_mut(n * TILE)
        .enumerate()
        .for_each(|(t, rows)| {
            let i0 = t * TILE;
            let h = rows.len() / n;
            // j < i0 + h: P[i][j] for i ≥ j lives at p[j*n + i] (column j, contiguous in i)
            for j in 0..n {
                let lo = i0.max(j);
                if lo >= i0 + h {
                    continue;
                }
                let scale = neg_inv[j];
                let col = &p[j * n + lo..j * n + i0 + h];
                for (r, &pij) in col.iter().enumerate() {
                    rows[(lo - i0 + r) * n + j] = pij * scale;
                }
            }
            // j > i: P[i][j] = P[j][i] lives at p[i*n + j] (column i, contiguous in j)
            for r in 0..h {
                let i = i0 + r;
                let row = &mut rows[r * n..(r + 1) * n];
                for j in i + 1..n {
                    row[j] = p[i * n + j] * neg_inv[j];
                }
                row[i] = 0.0;
            }
        });
    Ok(b)
}

/// Scores of a block of `users` into `block` (`users.len() × n` row-major), one panel of `B` at
/// a time so that the panel stays hot in cache across the block.
#[inline(always)]
fn score_block((weights, train, users, block): (&Panels, &Interactions, &[usize], &mut [f32])) {
    let n = weights.n;
    for p in 0..Panels::n_panels(n) {
        let (c0, c1) = (p * PANEL, ((p + 1) * PANEL).min(n));
        for (row, &u) in block.chunks_mut(n).zip(users) {
            if u < train.n_users {
                let acc = weights.sum_rows(p, train.items_of(u));
                row[c0..c1].copy_from_slice(&acc[..c1 - c0]);
            }
        }
    }
}

simd_kernel!(ScoreBlock = score_block<'a>((&'a Panels, &'a Interactions, &'a [usize], &'a mut [f32])) -> ());

impl Model for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn fit(&mut self, train: &Interactions) -> Result<()> {
        let n = train.n_items;
        let by_item = train.transpose();
        let g = gram_upper(train, &by_item, self.lambda as f32);
        self.weights = Panels::from_row_major(&solve_weights(g, n)?, n);
        self.train = Some(train.clone());
        Ok(())
    }

    fn score_into(&self, user: usize, out: &mut [f32]) {
        self.score_batch(&[user], out);
    }

    fn score_batch(&self, users: &[usize], out: &mut [f32]) {
        out.fill(0.0);
        let Some(train) = &self.train else { return };
        let n = self.weights.n;
        if n == 0 || out.len() != users.len() * n {
            return;
        }
        // Each panel of B is streamed once per chunk of USERS users while it is hot in cache.
        const USERS: usize = 256;
        out.par_chunks_mut(n * USERS)
            .zip(users.par_chunks(USERS))
            .for_each(|(block, users)| simd::<ScoreBlock, _>((&self.weights, train, users, block)));
    }

    fn objective_form(&self) -> Option<ObjectiveForm> {
        self.train.as_ref()?;
        let norm: f64 = self
            .weights
            .rows
            .iter()
            .flat_map(|r| r.0.iter())
            .map(|&w| f64::from(w) * f64::from(w))
            .sum();
        Some(ObjectiveForm {
            name: "squared reconstruction error ‖X − XB‖² + λ‖B‖² (diag B = 0)",
            loss: LossForm::WeightedSquared {
                positive_weight: 1.0,
            },
            regularization: self.lambda * norm,
        })
    }

    fn save(&self, path: &Path) -> Result<()> {
        let Some(train) = &self.train else {
            return Err(self.not_fitted());
        };
        let mut w = Writer::new("ease");
        w.f64(self.lambda);
        w.u64(self.weights.n as u64);
        w.f32s(&self.weights.to_row_major());
        persist::write_interactions(&mut w, train);
        w.finish(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_counts_co_occurrences() {
        let x = Interactions::from_pairs(3, 3, &[(0, 0), (0, 1), (1, 1), (1, 2), (2, 1)]);
        let g = gram_upper(&x, &x.transpose(), 0.5);
        // upper triangle of XᵀX + 0.5 I
        assert_eq!(&g, &[1.5, 1.0, 0.0, 0.0, 3.5, 1.0, 0.0, 0.0, 1.5]);
    }

    #[test]
    fn bad_lambda_is_named() {
        let e = Ease::new(-1.0).unwrap_err().to_string();
        assert!(e.contains("`lambda`"), "{e}");
        let p = BTreeMap::from([("lamda".to_string(), 1.0)]);
        let e = Ease::from_params(&p).unwrap_err().to_string();
        assert!(e.contains("unknown hyper-parameter `lamda`"), "{e}");
    }
}
