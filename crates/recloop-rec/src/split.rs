//! Train / validation / holdout splits (see `shared/reference/anchors.md`).
//!
//! Every split assigns each row of a [`Dataset`] to exactly one of train, validation or holdout.
//! Which data a model is fitted on, which items are masked when ranking and which items count as
//! relevant depend on the evaluation [`Target`]; [`Split::fit_data`], [`Split::mask`] and
//! [`Split::truth`] encode that per protocol:
//!
//! | protocol | target | fit on | mask | relevant |
//! |---|---|---|---|---|
//! | A | validation | train | train | validation (test rows of the validation users) |
//! | A | holdout | train | train | holdout (test rows of the holdout users) |
//! | B | validation | train | train ∪ holdout | validation |
//! | B | holdout | train | train ∪ validation | holdout |
//! | temporal | validation | train | train ∪ holdout | validation |
//! | temporal | holdout | train ∪ validation | train ∪ validation | holdout |
//!
//! Where validation and holdout share users (B, temporal), validation masks the holdout items as
//! well: they are positives the model was not shown, so ranking them high must not count as a miss
//! (that would reward popularity over personalisation); they are neither fitted on nor relevant,
//! and the holdout stays sealed.
//!
//! **Protocol A** (per-user random 80/20, the anchors' protocol): per user (in index order, one
//! `Pcg64` seeded with `seed` for the whole pass) the user's rows, in dataset order, are shuffled;
//! the first `h = max(1, round(0.2·n))` are the user's test rows and the rest is train — exactly
//! the anchors' 80/20 split. The users are then dealt into two halves by a second `Pcg64` (seeded
//! with `seed ^ USER_HALVES_SALT`): the test rows of one half are the validation set, those of the
//! other half the sealed holdout. Both are scored with a model fitted on the anchors' training set,
//! so validation and holdout numbers are each comparable to the anchors (and to each other: a gap
//! between them means a change overfitted the validation users), and
//! [`Split::benchmark_truth`] (validation ∪ holdout) is the anchors' whole test set.
//!
//! **Protocol B** (the anchors' RecBole-GNN replica): apply [`Protocol::prepare`] first (ratings
//! ≥ 3, users and items without rows dropped). Per user, shuffle the rows and cut them at
//! `⌊0.8·n⌋` and `⌊0.9·n⌋`: train, validation, test (= holdout). So the test part is
//! `n − ⌊0.9·n⌋ ≈ ⌈0.1·n⌉` rows. This is the cut that reproduces the anchors' protocol-B numbers
//! (both NDCG@10 and RecBole's recall@10, for all four models); RecBole 1.2.1's own
//! `_calcu_split_ids` floors the test part instead (`⌊0.1·n⌋`, about half a row fewer per user),
//! which scores every model about 4 % lower (EASE 0.287 against the anchors' 0.300).
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
    /// Per-user random 80/20; the 20 % of half the users is validation, of the others holdout.
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
    /// The anchors' test set, which `recloop rec bench` scores: validation ∪ holdout under
    /// protocol A, the holdout otherwise.
    pub benchmark_truth: Interactions,
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
            (_, Target::Validation) | (Protocol::A | Protocol::B, Target::Holdout) => &self.train,
            (Protocol::Temporal, Target::Holdout) => &self.train_validation,
        }
    }

    /// Row indices of [`Split::fit_data`] (for models that need ratings or timestamps).
    pub fn fit_rows(&self, target: Target) -> Vec<usize> {
        match (self.protocol, target) {
            (_, Target::Validation) | (Protocol::A | Protocol::B, Target::Holdout) => {
                self.train_rows.clone()
            }
            (Protocol::Temporal, Target::Holdout) => {
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

    /// What `recloop rec bench` fits on: the anchors' training set.
    pub fn benchmark_fit(&self) -> &Interactions {
        self.fit_data(Target::Holdout)
    }

    /// What `recloop rec bench` masks: everything it fits on plus, under protocol B, validation.
    pub fn benchmark_mask(&self) -> &Interactions {
        match self.protocol {
            Protocol::A => &self.train,
            Protocol::B | Protocol::Temporal => &self.train_validation,
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

/// Per-user split of protocol A: the number of test rows of a user with `n` rows
/// (`max(1, round(0.2·n))`, the anchors' 20 %).
pub fn protocol_a_test_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    ((0.2 * n as f64).round() as usize).max(1).min(n)
}

/// Salt of the seed that deals protocol A's users into validation and holdout halves (kept apart
/// from the row shuffle, so the test rows are the anchors' whatever the halves).
const USER_HALVES_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// Protocol A's halves: `true` for the users whose test rows are the holdout. Exactly
/// `⌊n_users / 2⌋` users are holdout users.
fn protocol_a_holdout_users(n_users: usize, seed: u64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..n_users).collect();
    order.shuffle(&mut Pcg64::seed_from_u64(seed ^ USER_HALVES_SALT));
    let mut holdout = vec![false; n_users];
    for &u in &order[..n_users / 2] {
        holdout[u] = true;
    }
    holdout
}

/// Per-user split of protocol B: (train, validation, test) sizes for `n` rows, cut at `⌊0.8·n⌋`
/// and `⌊0.9·n⌋` (as `numpy.split(rows, [int(0.8 * n), int(0.9 * n)])`).
pub fn protocol_b_sizes(n: usize) -> (usize, usize, usize) {
    let first_cut = (0.8 * n as f64) as usize;
    let second_cut = ((0.9 * n as f64) as usize).max(first_cut);
    (first_cut, second_cut - first_cut, n - second_cut)
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
    let holdout_users = match protocol {
        Protocol::A => protocol_a_holdout_users(ds.n_users(), seed),
        Protocol::B | Protocol::Temporal => Vec::new(),
    };
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
                let h = protocol_a_test_size(n);
                let test = if holdout_users[u] {
                    &mut holdout_rows
                } else {
                    &mut validation_rows
                };
                test.extend_from_slice(&user_rows[..h]);
                train_rows.extend_from_slice(&user_rows[h..]);
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
    let benchmark_truth = match protocol {
        Protocol::A => {
            let mut test = validation_rows.clone();
            test.extend_from_slice(&holdout_rows);
            ds.interactions_of(&test)
        }
        Protocol::B | Protocol::Temporal => holdout.clone(),
    };
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
        benchmark_truth,
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
        assert_eq!(protocol_a_test_size(0), 0);
        assert_eq!(protocol_a_test_size(1), 1);
        assert_eq!(protocol_a_test_size(2), 1);
        assert_eq!(protocol_a_test_size(3), 1);
        assert_eq!(protocol_a_test_size(8), 2);
        assert_eq!(protocol_a_test_size(20), 4);
        assert_eq!(protocol_a_test_size(22), 4);
        // cuts at ⌊0.8·n⌋ and ⌊0.9·n⌋ (RecBole's floor would give 13/1/1 for 15, 3/1/1 for 5)
        assert_eq!(protocol_b_sizes(20), (16, 2, 2));
        assert_eq!(protocol_b_sizes(30), (24, 3, 3));
        assert_eq!(protocol_b_sizes(15), (12, 1, 2));
        assert_eq!(protocol_b_sizes(19), (15, 2, 2));
        assert_eq!(protocol_b_sizes(5), (4, 0, 1));
        assert_eq!(protocol_b_sizes(2), (1, 0, 1));
        assert_eq!(protocol_b_sizes(1), (0, 0, 1));
        assert_eq!(protocol_b_sizes(0), (0, 0, 0));
        for n in 0..2000 {
            let (tr, va, te) = protocol_b_sizes(n);
            assert_eq!(tr + va + te, n);
            assert!(
                te + 1 >= n.div_ceil(10) && te <= n.div_ceil(10),
                "n = {n}: test {te}"
            );
        }
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
            let h = protocol_a_test_size(n);
            let (va, ho) = (a.validation.items_of(u).len(), a.holdout.items_of(u).len());
            assert!(
                (va, ho) == (h, 0) || (va, ho) == (0, h),
                "user {u}: {va} + {ho}"
            );
            assert_eq!(a.train.items_of(u).len(), n - h);
            assert_eq!(a.benchmark_truth.items_of(u).len(), h);
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
        assert_eq!(a.fit_data(Target::Holdout), &a.train);
        assert_eq!(a.fit_rows(Target::Holdout).len(), a.train.nnz());
        assert_eq!(a.benchmark_fit(), &a.train);
        assert_eq!(a.benchmark_mask(), &a.train);
        let t = split(&ds, Protocol::Temporal, 0).unwrap();
        assert_eq!(t.fit_data(Target::Holdout), &t.train_validation);
        assert_eq!(t.benchmark_truth, t.holdout);
        let b = split(&ds, Protocol::B, 0).unwrap();
        assert_eq!(b.fit_data(Target::Holdout), &b.train);
        assert_eq!(b.mask(Target::Holdout), &b.train_validation);
        assert_eq!(b.truth(Target::Validation), &b.validation);
    }

    #[test]
    fn protocol_a_halves_users_and_keeps_the_anchors_test_rows() {
        let ds = fixture(13);
        let a = split(&ds, Protocol::A, 11).unwrap();
        let holdout_users = (0..13)
            .filter(|&u| !a.holdout.items_of(u).is_empty())
            .count();
        let validation_users = (0..13)
            .filter(|&u| !a.validation.items_of(u).is_empty())
            .count();
        assert_eq!((holdout_users, validation_users), (6, 7));
        // the halves come from their own stream: the test rows do not depend on them
        let mut test = a.validation_rows.clone();
        test.extend_from_slice(&a.holdout_rows);
        test.sort_unstable();
        let other = split(&ds, Protocol::A, 11).unwrap();
        let mut other_test = other.validation_rows.clone();
        other_test.extend_from_slice(&other.holdout_rows);
        other_test.sort_unstable();
        assert_eq!(test, other_test);
        assert_eq!(a.benchmark_truth.nnz(), test.len());
        // another seed deals the users differently
        let b = split(&ds, Protocol::A, 12).unwrap();
        let halves = |s: &Split| {
            (0..13)
                .map(|u| s.holdout.items_of(u).is_empty())
                .collect::<Vec<_>>()
        };
        assert_ne!(halves(&a), halves(&b));
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
