//! A small generated dataset with real structure (popularity skew, genre tastes), so tests and
//! examples can run the whole pipeline without downloading anything. Same seed → same data.

use crate::data::Dataset;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

/// Size of the generated dataset (`[synthetic]` in `eval/eval.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Number of users.
    #[serde(default = "default_users")]
    pub users: usize,
    /// Number of items.
    #[serde(default = "default_items")]
    pub items: usize,
    /// Number of genres.
    #[serde(default = "default_genres")]
    pub genres: usize,
    /// Mean interactions per user.
    #[serde(default = "default_per_user")]
    pub per_user: usize,
}

fn default_users() -> usize {
    400
}
fn default_items() -> usize {
    300
}
fn default_genres() -> usize {
    8
}
fn default_per_user() -> usize {
    30
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            users: default_users(),
            items: default_items(),
            genres: default_genres(),
            per_user: default_per_user(),
        }
    }
}

/// Generate the dataset. Each item gets 1–3 genres, a Zipf-like popularity and a year; each user
/// likes 1–2 genres and picks items with probability ∝ popularity × (1 + 8·[genre liked]).
pub fn generate(spec: &SyntheticSpec, seed: u64) -> Dataset {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x5eed_da7a);
    let n_items = spec.items.max(2);
    let n_users = spec.users.max(1);
    let n_genres = spec.genres.clamp(1, 64);
    let mut genres = Vec::with_capacity(n_items);
    let mut year = Vec::with_capacity(n_items);
    let mut pop = Vec::with_capacity(n_items);
    for i in 0..n_items {
        let count = rng.random_range(1..=3usize.min(n_genres));
        let mut g: Vec<u16> = Vec::with_capacity(count);
        while g.len() < count {
            let x = rng.random_range(0..n_genres) as u16;
            if !g.contains(&x) {
                g.push(x);
            }
        }
        g.sort_unstable();
        genres.push(g);
        year.push(rng.random_range(1950..=2000));
        pop.push(1.0 / (1.0 + i as f64).powf(0.8));
    }
    let mut ds = Dataset {
        name: "synthetic".into(),
        ..Dataset::default()
    };
    let mut weights = vec![0f64; n_items];
    for u in 0..n_users {
        let liked: Vec<u16> = (0..rng.random_range(1..=2))
            .map(|_| rng.random_range(0..n_genres) as u16)
            .collect();
        let mut total = 0.0;
        for i in 0..n_items {
            let likes = genres[i].iter().any(|g| liked.contains(g));
            weights[i] = pop[i] * if likes { 9.0 } else { 1.0 };
            total += weights[i];
        }
        let lo = (spec.per_user / 2).max(3);
        let hi = (spec.per_user * 3 / 2).max(lo + 1).min(n_items - 1);
        let n = rng.random_range(lo.min(hi)..=hi);
        let mut chosen = vec![false; n_items];
        let mut picked = 0;
        while picked < n && total > 0.0 {
            let mut x = rng.random::<f64>() * total;
            let mut item = n_items - 1;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    item = i;
                    break;
                }
                x -= w;
            }
            if chosen[item] || weights[item] == 0.0 {
                continue;
            }
            chosen[item] = true;
            total -= weights[item];
            weights[item] = 0.0;
            picked += 1;
            let likes = genres[item].iter().any(|g| liked.contains(g));
            let base: f32 = if likes { 4.0 } else { 3.0 };
            ds.users.push(u as u32);
            ds.items.push(item as u32);
            ds.ratings
                .push((base + rng.random_range(-1.0f32..=1.0)).round());
            ds.timestamps.push(1_000_000 + (u * 1000 + picked) as i64);
        }
    }
    ds.user_ids = (0..n_users).map(|u| format!("u{u}")).collect();
    ds.item_ids = (0..n_items).map(|i| format!("item{i}")).collect();
    ds.item_titles = (0..n_items)
        .map(|i| format!("Item {i} ({})", year[i]))
        .collect();
    ds.genre_names = (0..n_genres).map(|g| format!("genre{g}")).collect();
    ds.item_genres = genres;
    ds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_sane_shape() {
        let spec = SyntheticSpec::default();
        let a = generate(&spec, 7);
        let b = generate(&spec, 7);
        let c = generate(&spec, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.n_users(), 400);
        assert_eq!(a.item_genres.len(), 300);
        let per_user = a.len() as f64 / 400.0;
        assert!((20.0..40.0).contains(&per_user), "{per_user}");
        // popularity is skewed: item 0 is much more popular than the median item
        let counts = a.item_counts();
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert!(counts[0] > 3 * sorted[sorted.len() / 2]);
    }
}
