//! The in-memory rating dataset: one row per interaction in parallel columns, ids mapped to dense
//! indices, plus item metadata (titles, genres).

use crate::Interactions;

/// A rating dataset in compact columns. Row `r` is user `users[r]` rating item `items[r]` with
/// `ratings[r]` at unix time `timestamps[r]`. User and item indices are dense (`0..n_users`,
/// `0..n_items`), assigned in order of first appearance in the source file; `user_ids` and
/// `item_ids` map them back to the raw ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Dataset name (`ml-1m`, a fixture name, ...).
    pub name: String,
    /// User index per row.
    pub users: Vec<u32>,
    /// Item index per row.
    pub items: Vec<u32>,
    /// Rating per row.
    pub ratings: Vec<f32>,
    /// Unix timestamp (seconds) per row.
    pub timestamps: Vec<i64>,
    /// Raw user id per user index.
    pub user_ids: Vec<String>,
    /// Raw item id per item index (the title with year for ML-1M).
    pub item_ids: Vec<String>,
    /// Display title per item index (empty when unknown).
    pub item_titles: Vec<String>,
    /// Genre vocabulary; genre `g` is `genre_names[g]`.
    pub genre_names: Vec<String>,
    /// Genres per item index (sorted genre indices; empty when unknown).
    pub item_genres: Vec<Vec<u16>>,
}

impl Dataset {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    /// Number of interactions (rows).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no interactions.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// All interactions as a binary user × item CSR matrix.
    pub fn interactions(&self) -> Interactions {
        let rows: Vec<usize> = (0..self.len()).collect();
        self.interactions_of(&rows)
    }

    /// The given rows as a binary user × item CSR matrix over the full user and item ranges.
    pub fn interactions_of(&self, rows: &[usize]) -> Interactions {
        let pairs: Vec<(u32, u32)> = rows
            .iter()
            .map(|&r| (self.users[r], self.items[r]))
            .collect();
        Interactions::from_pairs(self.n_users(), self.n_items(), &pairs)
    }

    /// Mean rating per item over all rows (0 for an item without ratings).
    pub fn item_mean_ratings(&self) -> Vec<f32> {
        let mut sum = vec![0f64; self.n_items()];
        let mut cnt = vec![0u32; self.n_items()];
        for (&i, &r) in self.items.iter().zip(&self.ratings) {
            sum[i as usize] += f64::from(r);
            cnt[i as usize] += 1;
        }
        sum.iter()
            .zip(&cnt)
            .map(|(&s, &c)| {
                if c == 0 {
                    0.0
                } else {
                    (s / f64::from(c)) as f32
                }
            })
            .collect()
    }

    /// Number of rows per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items()];
        for &i in &self.items {
            c[i as usize] += 1;
        }
        c
    }

    /// Row indices grouped by user: `(indptr, rows)` where the rows of user `u` are
    /// `rows[indptr[u]..indptr[u + 1]]`, in file order.
    pub fn rows_by_user(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.n_users();
        let mut indptr = vec![0usize; n + 1];
        for &u in &self.users {
            indptr[u as usize + 1] += 1;
        }
        for u in 0..n {
            indptr[u + 1] += indptr[u];
        }
        let mut fill = indptr.clone();
        let mut rows = vec![0usize; self.len()];
        for (r, &u) in self.users.iter().enumerate() {
            rows[fill[u as usize]] = r;
            fill[u as usize] += 1;
        }
        (indptr, rows)
    }

    /// A new dataset with only the rows where `keep(row)` holds; users and items left without
    /// rows are dropped and the remaining ones re-indexed in their previous order (as RecBole does
    /// after filtering), so every user and item of the result has at least one row.
    pub fn retain_rows(&self, mut keep: impl FnMut(usize) -> bool) -> Dataset {
        let rows: Vec<usize> = (0..self.len()).filter(|&r| keep(r)).collect();
        let mut user_map = vec![u32::MAX; self.n_users()];
        let mut item_map = vec![u32::MAX; self.n_items()];
        for &r in &rows {
            user_map[self.users[r] as usize] = 0;
            item_map[self.items[r] as usize] = 0;
        }
        let mut out = Dataset {
            name: self.name.clone(),
            genre_names: self.genre_names.clone(),
            ..Dataset::default()
        };
        for (u, m) in user_map.iter_mut().enumerate() {
            if *m == 0 {
                *m = out.user_ids.len() as u32;
                out.user_ids.push(self.user_ids[u].clone());
            }
        }
        for (i, m) in item_map.iter_mut().enumerate() {
            if *m == 0 {
                *m = out.item_ids.len() as u32;
                out.item_ids.push(self.item_ids[i].clone());
                out.item_titles
                    .push(self.item_titles.get(i).cloned().unwrap_or_default());
                out.item_genres
                    .push(self.item_genres.get(i).cloned().unwrap_or_default());
            }
        }
        out.users = rows
            .iter()
            .map(|&r| user_map[self.users[r] as usize])
            .collect();
        out.items = rows
            .iter()
            .map(|&r| item_map[self.items[r] as usize])
            .collect();
        out.ratings = rows.iter().map(|&r| self.ratings[r]).collect();
        out.timestamps = rows.iter().map(|&r| self.timestamps[r]).collect();
        out
    }

    /// Keep only ratings `>= min` (protocol B uses 3).
    pub fn with_min_rating(&self, min: f32) -> Dataset {
        self.retain_rows(|r| self.ratings[r] >= min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            name: "tiny".into(),
            users: vec![0, 0, 1, 2, 2],
            items: vec![0, 1, 1, 2, 0],
            ratings: vec![5.0, 2.0, 4.0, 1.0, 3.0],
            timestamps: vec![1, 2, 3, 4, 5],
            user_ids: vec!["a".into(), "b".into(), "c".into()],
            item_ids: vec!["x".into(), "y".into(), "z".into()],
            item_titles: vec![String::new(); 3],
            genre_names: vec!["G".into()],
            item_genres: vec![vec![0], vec![], vec![0]],
        }
    }

    #[test]
    fn means_counts_and_csr() {
        let d = tiny();
        assert_eq!(d.item_mean_ratings(), vec![4.0, 3.0, 1.0]);
        assert_eq!(d.item_counts(), vec![2, 2, 1]);
        let m = d.interactions();
        assert_eq!(m.items_of(2), &[0, 2]);
        let (ptr, rows) = d.rows_by_user();
        assert_eq!(ptr, vec![0, 2, 3, 5]);
        assert_eq!(rows, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn min_rating_filter_reindexes() {
        let d = tiny().with_min_rating(3.0);
        // rows kept: (a,x,5), (b,y,4), (c,x,3); item z disappears
        assert_eq!(d.len(), 3);
        assert_eq!(d.item_ids, vec!["x", "y"]);
        assert_eq!(d.user_ids, vec!["a", "b", "c"]);
        assert_eq!(d.items, vec![0, 1, 0]);
        assert_eq!(d.item_genres, vec![vec![0], vec![]]);
    }
}
