//! Train / validation / holdout splits (see `shared/reference/anchors.md`).
//!
//! Every split assigns each row of a [`Dataset`] to exactly one of train, validation or holdout.
//! Which data a model is fitted on, which items are masked when ranking and which items count as
//! relevant depend on the evaluation [`Target`]; [`Split::fit_data`], [`Split::mask`] and
//! [`Split::truth`] encode that per protocol:
//!
//! | protocol | target | fit on | mask | relevant |
//! |---|---|---|---|---|
//! | A | validation | train | train ∪ holdout | validation |
//! | A | holdout | train ∪ validation | train ∪ validation | holdout |
//! | B | validation | train | train ∪ holdout | validation |
//! | B | holdout | train | train ∪ validation | holdout |
//! | temporal | validation | train | train ∪ holdout | validation |
//! | temporal | holdout | train ∪ validation | train ∪ validation | holdout |
//!
//! Validation masks the holdout items as well: they are positives the model was not shown, so
//! ranking them high must not count as a miss (that would reward popularity over personalisation);
//! they are neither fitted on nor relevant, and the holdout stays sealed.
//!
//! **Protocol A** (per-user random 80/20, the anchors' protocol): per user (in index order, one
//! `Pcg64` seeded with `seed` for the whole pass) the user's rows, in dataset order, are shuffled;
//! the first `h = max(1, round(0.2·n))` go to the holdout — exactly the anchors' 20 % test set, so
//! holdout numbers are comparable to the anchors. The validation set is carved from the remaining
//! `m = n − h` rows the same way: the next `v = max(1, round(0.2·m))` rows if `m ≥ 2` (else none);
//! the rest is train. So train ∪ validation is the anchors' training set (≈ 64 % + 16 %).
//!
//! **Protocol B** (RecBole-GNN replica): apply [`Protocol::prepare`] first (ratings ≥ 3, users and
//! items without rows dropped). Per user, shuffle the rows and cut 80/10/10 with RecBole's
//! `_calcu_split_ids`: `valid = ⌊0.1·n⌋`, `test = ⌊0.1·n⌋`, `train = n − valid − test`; then, while
//! `train > 1`, a part whose share `0.1·n` lies in (0, 1) gets one row from train (test first,
//! then valid). Order: train, validation, test (= holdout).
//!
//! **Temporal leave-last-out**: per user, rows sorted by timestamp (ties keep dataset order); the
//! last goes to the holdout, the second-to-last to validation when the user has ≥ 3 rows, the rest
//! to train. The seed is unused.

use crate::Interactions;
use crate::data::Dataset;
use crate::error::{RecError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A splitting protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Per-user random 80/20 holdout, validation carved from the 80 %.
    A,
    /// RecBole-GNN replica: ratings ≥ 3, per-user 80/10/10.
    B,
    /// Per-user temporal leave-last-out.
    Temporal,
}

impl Protocol {
    /// The name on the command line (`a`, `b`, `temporal`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::A => "a",
            Protocol::B => "b",
            Protocol::Temporal => "temporal",
        }
    }

    /// The dataset this protocol splits: protocol B keeps ratings ≥ 3 (and re-indexes), the others
    /// use every rating.
    pub fn prepare(self, ds: &Dataset) -> Dataset {
        match self {
            Protocol::B => ds.with_min_rating(3.0),
            _ => ds.clone(),
        }
    }
}

impl FromStr for Protocol {
    type Err = RecError;
    fn from_str(s: &str) -> Result<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "a" => Ok(Protocol::A),
            "b" => Ok(Protocol::B),
            "temporal" | "loo" | "leave-last-out" => Ok(Protocol::Temporal),
            _ => Err(RecError::Spec {
                location: "protocol".into(),
                reason: format!("unknown protocol {s:?}; expected a, b or temporal"),
            }),
        }
    }
}

/// What an evaluation measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The validation part (agents see these numbers).
    Validation,
    /// The sealed holdout (agents only learn pass/fail).
    Holdout,
}

impl FromStr for Target {
    type Err = RecError;
    fn from_str(s: &str) -> Result<Target> {
        match s {
            "validation" | "valid" => Ok(Target::Validation),
            "holdout" | "test" => Ok(Target::Holdout),
            _ => Err(RecError::Spec {
                location: "split".into(),
                reason: format!("unknown split {s:?}; expected validation or holdout"),
            }),
        }
    }
}

/// A dataset split into train, validation and holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The protocol used.
    pub protocol: Protocol,
    /// The seed used.
    pub seed: u64,
    /// Rows (indices into the split dataset) in train.
    pub train_rows: Vec<usize>,
    /// Rows in validation.
    pub validation_rows: Vec<usize>,
    /// Rows in the holdout.
    pub holdout_rows: Vec<usize>,
    /// Train as a binary CSR matrix.
    pub train: Interactions,
    /// Validation as a binary CSR matrix.
    pub validation: Interactions,
    /// Holdout as a binary CSR matrix.
    pub holdout: Interactions,
    /// Train ∪ validation.
    pub train_validation: Interactions,
    /// Train ∪ holdout: the mask when evaluating on validation.
    pub train_holdout: Interactions,
}

impl Split {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.train.n_users
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.train.n_items
    }

    /// The interactions a model is fitted on before being evaluated on `target`.
    pub fn fit_data(&self, target: Target) -> &Interactions {
        match (self.protocol, target) {
            (_, Target::Validation) | (Protocol::B, Target::Holdout) => &self.train,
            (_, Target::Holdout) => &self.train_validation,
        }
    }

    /// Row indices of [`Split::fit_data`] (for models that need ratings or timestamps).
    pub fn fit_rows(&self, target: Target) -> Vec<usize> {
        match (self.protocol, target) {
            (_, Target::Validation) | (Protocol::B, Target::Holdout) => self.train_rows.clone(),
            (_, Target::Holdout) => {
                let mut r = self.train_rows.clone();
                r.extend_from_slice(&self.validation_rows);
                r.sort_unstable();
                r
            }
        }
    }

    /// The items excluded from ranking when evaluating `target`.
    pub fn mask(&self, target: Target) -> &Interactions {
        match target {
            Target::Validation => &self.train_holdout,
            Target::Holdout => &self.train_validation,
        }
    }

    /// The relevant items when evaluating `target`.
    pub fn truth(&self, target: Target) -> &Interactions {
        match target {
            Target::Validation => &self.validation,
            Target::Holdout => &self.holdout,
        }
    }
}

/// Per-user split of protocol A: (holdout, validation) sizes for `n` rows.
pub fn protocol_a_sizes(n: usize) -> (usize, usize) {
    let round = |x: usize| (0.2 * x as f64).round() as usize;
    if n == 0 {
        return (0, 0);
    }
    let h = round(n).max(1).min(n);
    let m = n - h;
    let v = if m >= 2 { round(m).max(1) } else { 0 };
    (h, v)
}

/// Per-user split of protocol B: (train, validation, test) sizes for `n` rows, as RecBole's
/// `_calcu_split_ids` with ratios [0.8, 0.1, 0.1].
pub fn protocol_b_sizes(n: usize) -> (usize, usize, usize) {
    let ratios = [0.8f64, 0.1, 0.1];
    let tot = n as f64;
    let mut cnt: Vec<usize> = ratios.iter().map(|r| (r * tot) as usize).collect();
    cnt[0] = n - cnt[1] - cnt[2];
    for i in 1..ratios.len() {
        if cnt[0] <= 1 {
            break;
        }
        let share = ratios[ratios.len() - i] * tot;
        if 0.0 < share && share < 1.0 {
            let last = cnt.len() - i;
            cnt[last] += 1;
            cnt[0] -= 1;
        }
    }
    (cnt[0], cnt[1], cnt[2])
}

/// Split `ds` (already [`Protocol::prepare`]d) by `protocol` with `seed`.
pub fn split(ds: &Dataset, protocol: Protocol, seed: u64) -> Result<Split> {
    if ds.is_empty() {
        return Err(RecError::Data {
            name: ds.name.clone(),
            reason: "cannot split an empty dataset".into(),
        });
    }
    let (indptr, rows) = ds.rows_by_user();
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut train_rows = Vec::with_capacity(ds.len());
    let mut validation_rows = Vec::new();
    let mut holdout_rows = Vec::new();
    let mut user_rows: Vec<usize> = Vec::new();
    for u in 0..ds.n_users() {
        user_rows.clear();
        user_rows.extend_from_slice(&rows[indptr[u]..indptr[u + 1]]);
        let n = user_rows.len();
        if n == 0 {
            continue;
        }
        match protocol {
            Protocol::A => {
                user_rows.shuffle(&mut rng);
                let (h, v) = protocol_a_sizes(n);
                holdout_rows.extend_from_slice(&user_rows[..h]);
                validation_rows.extend_from_slice(&user_rows[h..h + v]);
                train_rows.extend_from_slice(&user_rows[h + v..]);
            }
            Protocol::B => {
                user_rows.shuffle(&mut rng);
                let (t, v, _) = protocol_b_sizes(n);
                train_rows.extend_from_slice(&user_rows[..t]);
                validation_rows.extend_from_slice(&user_rows[t..t + v]);
                holdout_rows.extend_from_slice(&user_rows[t + v..]);
            }
            Protocol::Temporal => {
                // stable: equal timestamps keep dataset order
                user_rows.sort_by_key(|&r| ds.timestamps[r]);
                holdout_rows.push(user_rows[n - 1]);
                if n >= 3 {
                    validation_rows.push(user_rows[n - 2]);
                    train_rows.extend_from_slice(&user_rows[..n - 2]);
                } else {
                    train_rows.extend_from_slice(&user_rows[..n - 1]);
                }
            }
        }
    }
    train_rows.sort_unstable();
    validation_rows.sort_unstable();
    holdout_rows.sort_unstable();
    let train = ds.interactions_of(&train_rows);
    let validation = ds.interactions_of(&validation_rows);
    let holdout = ds.interactions_of(&holdout_rows);
    let mut tv = train_rows.clone();
    tv.extend_from_slice(&validation_rows);
    let train_validation = ds.interactions_of(&tv);
    let mut th = train_rows.clone();
    th.extend_from_slice(&holdout_rows);
    let train_holdout = ds.interactions_of(&th);
    Ok(Split {
        protocol,
        seed,
        train_rows,
        validation_rows,
        holdout_rows,
        train,
        validation,
        holdout,
        train_validation,
        train_holdout,
    })
}

/// [`Protocol::prepare`] then [`split`]: the dataset the split indexes, and the split.
pub fn prepare_and_split(ds: &Dataset, protocol: Protocol, seed: u64) -> Result<(Dataset, Split)> {
    let prepared = protocol.prepare(ds);
    let s = split(&prepared, protocol, seed)?;
    Ok((prepared, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n_users` users, user u has `5 + 3u` distinct items with ratings 1..5 cycling.
    fn fixture(n_users: usize) -> Dataset {
        let mut ds = Dataset {
            name: "fx".into(),
            ..Dataset::default()
        };
        let n_items = 40;
        for u in 0..n_users {
            for k in 0..(5 + 3 * u).min(n_items) {
                ds.users.push(u as u32);
                ds.items.push(((u * 7 + k) % n_items) as u32);
                ds.ratings.push((1 + (k % 5)) as f32);
                ds.timestamps.push((1000 - k) as i64);
            }
            ds.user_ids.push(format!("u{u}"));
        }
        ds.item_ids = (0..n_items).map(|i| format!("i{i}")).collect();
        ds.item_titles = vec![String::new(); n_items];
        ds.item_genres = vec![Vec::new(); n_items];
        ds
    }

    #[test]
    fn sizes() {
        assert_eq!(protocol_a_sizes(1), (1, 0));
        assert_eq!(protocol_a_sizes(2), (1, 0));
        assert_eq!(protocol_a_sizes(3), (1, 1));
        assert_eq!(protocol_a_sizes(20), (4, 3));
        assert_eq!(protocol_a_sizes(22), (4, 4));
        // RecBole: 20 → 16/2/2, 5 → 3/1/1, 15 → 13/1/1, 2 → 1/0/1, 1 → 1/0/0
        assert_eq!(protocol_b_sizes(20), (16, 2, 2));
        assert_eq!(protocol_b_sizes(5), (3, 1, 1));
        assert_eq!(protocol_b_sizes(15), (13, 1, 1));
        assert_eq!(protocol_b_sizes(2), (1, 0, 1));
        assert_eq!(protocol_b_sizes(1), (1, 0, 0));
        assert_eq!(protocol_b_sizes(30), (24, 3, 3));
    }

    #[test]
    fn partitions_every_row_once_and_is_deterministic() {
        let ds = fixture(12);
        for p in [Protocol::A, Protocol::B, Protocol::Temporal] {
            let s = split(&ds, p, 7).unwrap();
            let mut all: Vec<usize> = s
                .train_rows
                .iter()
                .chain(&s.validation_rows)
                .chain(&s.holdout_rows)
                .copied()
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..ds.len()).collect::<Vec<_>>(), "{p:?}");
            assert_eq!(split(&ds, p, 7).unwrap(), s, "{p:?} not deterministic");
            assert_eq!(s.train_validation.nnz(), s.train.nnz() + s.validation.nnz());
        }
        let a1 = split(&ds, Protocol::A, 1).unwrap();
        let a2 = split(&ds, Protocol::A, 2).unwrap();
        assert_ne!(a1.holdout_rows, a2.holdout_rows, "seed has no effect");
    }

    #[test]
    fn per_user_sizes_follow_the_protocols() {
        let ds = fixture(12);
        let a = split(&ds, Protocol::A, 3).unwrap();
        let b = split(&ds, Protocol::B, 3).unwrap();
        let t = split(&ds, Protocol::Temporal, 3).unwrap();
        for u in 0..12 {
            let n = 5 + 3 * u;
            let (h, v) = protocol_a_sizes(n);
            assert_eq!(a.holdout.items_of(u).len(), h);
            assert_eq!(a.validation.items_of(u).len(), v);
            assert_eq!(a.train.items_of(u).len(), n - h - v);
            let (tr, va, te) = protocol_b_sizes(n);
            assert_eq!(
                (
                    b.train.items_of(u).len(),
                    b.validation.items_of(u).len(),
                    b.holdout.items_of(u).len()
                ),
                (tr, va, te)
            );
            // timestamps decrease with k, so the newest row is the user's first item
            let first = ((u * 7) % 40) as u32;
            assert_eq!(t.holdout.items_of(u), &[first]);
            assert_eq!(t.validation.items_of(u), &[((u * 7 + 1) % 40) as u32]);
        }
    }

    #[test]
    fn fit_and_mask_per_protocol() {
        let ds = fixture(6);
        let a = split(&ds, Protocol::A, 0).unwrap();
        assert_eq!(a.fit_data(Target::Holdout), &a.train_validation);
        assert_eq!(a.fit_rows(Target::Holdout).len(), a.train_validation.nnz());
        let b = split(&ds, Protocol::B, 0).unwrap();
        assert_eq!(b.fit_data(Target::Holdout), &b.train);
        assert_eq!(b.mask(Target::Holdout), &b.train_validation);
        assert_eq!(b.truth(Target::Validation), &b.validation);
    }

    #[test]
    fn parse_names() {
        assert_eq!("a".parse::<Protocol>().unwrap(), Protocol::A);
        assert_eq!("temporal".parse::<Protocol>().unwrap(), Protocol::Temporal);
        assert!("c".parse::<Protocol>().is_err());
        assert_eq!("holdout".parse::<Target>().unwrap(), Target::Holdout);
        assert!("x".parse::<Target>().is_err());
    }
}
