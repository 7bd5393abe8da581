//! Scores of the factor models (iALS, BPR-MF): `score(u, i) = x_u · y_i` for every item.
//!
//! [`ItemFactors`] keeps the item factors row-major (what training, the loss and the file use) and
//! a second time in panels of [`ITEMS`] items, transposed (`k × ITEMS`, row `p` holding factor `p`
//! of the panel's items), so that one factor of 16 items is two vector registers. Users are scored [`USERS`] at a time: each factor value of a user is broadcast and
//! multiplied into the panel's row, so every loaded value is used 4 times and the panel (4 KB at
//! k = 64) stays in L1. Each score is the sum over `p = 0..k` in that order, whatever the group
//! a user is scored in, so a user's scores are the same alone or in a batch, on every machine.

use super::kernels::{simd, simd_kernel};
use rayon::prelude::*;

/// Items per panel.
const ITEMS: usize = 16;
/// Users per register group.
const USERS: usize = 4;
/// Users per parallel task.
const TASK_USERS: usize = 64;

/// Item factors: row-major `n_items × k`, and the same packed for scoring.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemFactors {
    k: usize,
    n_items: usize,
    /// Row-major `n_items × k`.
    rows: Vec<f32>,
    /// Panel `q` at `q·k·ITEMS`: `[p][l]` = factor `p` of item `q·ITEMS + l` (zero past the end).
    panels: Vec<f32>,
}

impl ItemFactors {
    /// The row-major `y` (`n_items × k`), packed for scoring as well.
    pub(crate) fn new(y: Vec<f32>, k: usize) -> ItemFactors {
        let n_items = y.len().checked_div(k).unwrap_or(0);
        let n_panels = n_items.div_ceil(ITEMS);
        let mut panels = vec![0f32; n_panels * k * ITEMS];
        for (q, panel) in panels.chunks_mut((k * ITEMS).max(1)).enumerate() {
            for l in 0..ITEMS.min(n_items.saturating_sub(q * ITEMS)) {
                let item = &y[(q * ITEMS + l) * k..(q * ITEMS + l + 1) * k];
                for (p, &v) in item.iter().enumerate() {
                    panel[p * ITEMS + l] = v;
                }
            }
        }
        ItemFactors {
            k,
            n_items,
            rows: y,
            panels,
        }
    }

    /// The factors, row-major `n_items × k`.
    pub(crate) fn rows(&self) -> &[f32] {
        &self.rows
    }

    /// Scores of `users` (rows of the row-major `x`, `k` wide) into `out` (`users.len() ×
    /// n_items`, row-major). A user without a row in `x` scores 0 everywhere; a wrong `out`
    /// length leaves `out` zeroed.
    pub(crate) fn scores(&self, x: &[f32], users: &[usize], out: &mut [f32]) {
        let n = self.n_items;
        if self.k == 0 || n == 0 || out.len() != users.len() * n {
            out.fill(0.0);
            return;
        }
        out.par_chunks_mut(n * TASK_USERS)
            .zip(users.par_chunks(TASK_USERS))
            .for_each(|(block, us)| {
                let mut xs = vec![[0f32; USERS]; self.k];
                for (rows, group) in block.chunks_mut(n * USERS).zip(us.chunks(USERS)) {
                    xs.fill([0.0; USERS]);
                    for (g, &u) in group.iter().enumerate() {
                        if let Some(xu) = x.get(u * self.k..(u + 1) * self.k) {
                            for (p, &v) in xu.iter().enumerate() {
                                xs[p][g] = v;
                            }
                        }
                    }
                    simd::<ScoreGroup, _>((self, &xs, rows));
                }
            });
    }
}

/// Scores of one group of up to [`USERS`] users: `xs[p][g]` is factor `p` of the group's user
/// `g`; `rows` holds the group's output rows.
#[inline(always)]
fn score_group((factors, xs, rows): (&ItemFactors, &[[f32; USERS]], &mut [f32])) {
    let (k, n) = (factors.k, factors.n_items);
    let n_rows = rows.len() / n;
    for (q, panel) in factors.panels.chunks_exact(k * ITEMS).enumerate() {
        let mut acc = [[0f32; ITEMS]; USERS];
        for (y, x) in panel.chunks_exact(ITEMS).zip(xs) {
            for g in 0..USERS {
                for l in 0..ITEMS {
                    acc[g][l] += x[g] * y[l];
                }
            }
        }
        let (c0, c1) = (q * ITEMS, ((q + 1) * ITEMS).min(n));
        for (g, a) in acc.iter().enumerate().take(n_rows) {
            rows[g * n + c0..g * n + c1].copy_from_slice(&a[..c1 - c0]);
        }
    }
}

simd_kernel!(ScoreGroup = score_group<'a>((&'a ItemFactors, &'a [[f32; USERS]], &'a mut [f32])) -> ());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_dot_products_and_independent_of_the_batch() {
        let (n_items, k, n_users) = (37, 5, 11);
        let y: Vec<f32> = (0..n_items * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..n_users * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let factors = ItemFactors::new(y.clone(), k);
        assert_eq!(factors.rows(), &y[..]);
        let users: Vec<usize> = (0..n_users).chain([n_users + 3]).collect();
        let mut batch = vec![1f32; users.len() * n_items];
        factors.scores(&x, &users, &mut batch);
        for (r, &u) in users.iter().enumerate() {
            let mut alone = vec![0f32; n_items];
            factors.scores(&x, &[u], &mut alone);
            assert_eq!(
                &batch[r * n_items..(r + 1) * n_items],
                &alone[..],
                "user {u}"
            );
            for i in 0..n_items {
                let want: f32 = if u < n_users {
                    (0..k).fold(0.0, |s, p| s + x[u * k + p] * y[i * k + p])
                } else {
                    0.0
                };
                assert_eq!(alone[i], want, "user {u}, item {i}");
            }
        }
        let mut wrong = vec![1f32; 3];
        factors.scores(&x, &[0], &mut wrong);
        assert_eq!(wrong, [0.0; 3]);
    }
}
