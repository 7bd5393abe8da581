//! Item and user features the pipeline uses: genres (for MMR and caps), year and mean rating
//! (for scripts), popularity and activity (from the training interactions).

use crate::Interactions;

/// Side information about items, indexed by item id. Vectors may be empty when the dataset has no
/// such feature; otherwise they have one entry per item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemFeatures {
    /// Names of the genres; a genre id indexes this list.
    pub genre_names: Vec<String>,
    /// Sorted genre ids of each item.
    pub genres: Vec<Vec<u16>>,
    /// Release year (0 = unknown).
    pub year: Vec<i32>,
    /// Mean explicit rating in the training data (0 = unknown).
    pub mean_rating: Vec<f32>,
}

impl ItemFeatures {
    /// Genre ids of `item` (empty when unknown).
    pub fn genres_of(&self, item: u32) -> &[u16] {
        self.genres.get(item as usize).map_or(&[], |g| g.as_slice())
    }

    /// Release year of `item` (0 when unknown).
    pub fn year_of(&self, item: u32) -> i32 {
        self.year.get(item as usize).copied().unwrap_or(0)
    }

    /// Mean rating of `item` (0 when unknown).
    pub fn mean_rating_of(&self, item: u32) -> f32 {
        self.mean_rating.get(item as usize).copied().unwrap_or(0.0)
    }
}

/// Number of training interactions of every user.
pub fn user_activity(train: &Interactions) -> Vec<u32> {
    (0..train.n_users)
        .map(|u| (train.indptr[u + 1] - train.indptr[u]) as u32)
        .collect()
}

/// Mean rating per item from `(item, rating)` observations (0 for items without any).
pub fn mean_ratings(n_items: usize, ratings: impl IntoIterator<Item = (u32, f32)>) -> Vec<f32> {
    let mut sum = vec![0f64; n_items];
    let mut count = vec![0u32; n_items];
    for (i, r) in ratings {
        if let Some(s) = sum.get_mut(i as usize) {
            *s += f64::from(r);
            count[i as usize] += 1;
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &c)| {
            if c > 0 {
                (s / f64::from(c)) as f32
            } else {
                0.0
            }
        })
        .collect()
}
