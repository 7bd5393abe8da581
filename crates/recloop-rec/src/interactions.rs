//! Compact, id-mapped implicit-feedback interactions in compressed sparse row form.

use serde::{Deserialize, Serialize};

/// A binary user × item matrix stored as CSR: the items of user `u` are
/// `indices[indptr[u]..indptr[u + 1]]`, sorted ascending and without duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// Number of users (rows).
    pub n_users: usize,
    /// Number of items (columns).
    pub n_items: usize,
    /// Row pointers, `n_users + 1` entries.
    pub indptr: Vec<usize>,
    /// Item ids, sorted within each row.
    pub indices: Vec<u32>,
}

impl Interactions {
    /// Build from (user, item) pairs; duplicates are merged.
    pub fn from_pairs(n_users: usize, n_items: usize, pairs: &[(u32, u32)]) -> Interactions {
        let mut counts = vec![0usize; n_users + 1];
        for &(u, _) in pairs {
            counts[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            counts[u + 1] += counts[u];
        }
        let mut indices = vec![0u32; pairs.len()];
        let mut fill = counts.clone();
        for &(u, i) in pairs {
            indices[fill[u as usize]] = i;
            fill[u as usize] += 1;
        }
        // sort and dedup each row, then compact
        let mut indptr = Vec::with_capacity(n_users + 1);
        indptr.push(0);
        let mut out = Vec::with_capacity(indices.len());
        for u in 0..n_users {
            let row = &mut indices[counts[u]..counts[u + 1]];
            row.sort_unstable();
            let mut last = None;
            for &i in row.iter() {
                if last != Some(i) {
                    out.push(i);
                    last = Some(i);
                }
            }
            indptr.push(out.len());
        }
        Interactions {
            n_users,
            n_items,
            indptr,
            indices: out,
        }
    }

    /// Items of one user.
    pub fn items_of(&self, user: usize) -> &[u32] {
        &self.indices[self.indptr[user]..self.indptr[user + 1]]
    }

    /// Number of stored interactions.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Number of interactions per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for &i in &self.indices {
            c[i as usize] += 1;
        }
        c
    }

    /// The transpose: item × user in CSR form.
    pub fn transpose(&self) -> Interactions {
        let mut pairs = Vec::with_capacity(self.nnz());
        for u in 0..self.n_users {
            for &i in self.items_of(u) {
                pairs.push((i, u as u32));
            }
        }
        Interactions::from_pairs(self.n_items, self.n_users, &pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_and_dedups() {
        let m = Interactions::from_pairs(3, 4, &[(0, 3), (0, 1), (0, 3), (2, 0)]);
        assert_eq!(m.items_of(0), &[1, 3]);
        assert_eq!(m.items_of(1), &[] as &[u32]);
        assert_eq!(m.items_of(2), &[0]);
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.item_counts(), vec![1, 1, 0, 1]);
        let t = m.transpose();
        assert_eq!(t.items_of(3), &[0]);
    }
}
