//! The ground truth: user and item factors (true affinity), item quality, clickbait and topics.

use crate::error::{Result, SimError};
use crate::params::{Params, TOPICS};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use recloop_rec::models::ials::{Ials, IalsParams};
use recloop_rec::{Interactions, Model};
use serde::{Deserialize, Serialize};

/// Latent dimension of the ground-truth factorisation.
pub const DIM: usize = 16;

/// The simulated world's ground truth. Profiles are real (or generated) users whose tastes
/// simulated users copy; items are the catalogue, indexed like the recommender's item ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// Number of user profiles.
    pub n_profiles: usize,
    /// Number of items.
    pub n_items: usize,
    /// Profile factors, `n_profiles × DIM`.
    pub user_factors: Vec<f32>,
    /// Item factors, `n_items × DIM`.
    pub item_factors: Vec<f32>,
    /// Mean of raw dot products over random pairs (for standardising affinity).
    pub affinity_mean: f32,
    /// Standard deviation of raw dot products over random pairs.
    pub affinity_sd: f32,
    /// Item quality in (0, 1), tied to the mean rating.
    pub quality: Vec<f32>,
    /// Item clickbait score in (0, 1), partly anti-correlated with quality.
    pub clickbait: Vec<f32>,
    /// Item topic in `0..TOPICS`.
    pub topic: Vec<u8>,
    /// Item popularity (interaction count, or a generated one).
    pub popularity: Vec<f32>,
    /// Mean item factors per topic, `TOPICS × DIM`.
    pub topic_centroids: Vec<f32>,
    /// Items each profile already consumed in the source data (never shown again as "new").
    pub seen: Vec<Vec<u32>>,
    /// Behaviour constants.
    pub params: Params,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn normal(rng: &mut Pcg64) -> f32 {
    // Box–Muller
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn standardise(v: &[f32]) -> Vec<f32> {
    let n = v.len().max(1) as f32;
    let m = v.iter().sum::<f32>() / n;
    let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n)
        .sqrt()
        .max(1e-6);
    v.iter().map(|x| (x - m) / sd).collect()
}

impl World {
    /// Raw dot product of a user vector with item `item`.
    #[inline]
    pub fn dot(&self, user: &[f32], item: u32) -> f32 {
        let iv = &self.item_factors[item as usize * DIM..(item as usize + 1) * DIM];
        let mut s = 0.0;
        for k in 0..DIM {
            s += user[k] * iv[k];
        }
        s
    }

    /// Standardised true affinity of a user vector to an item.
    #[inline]
    pub fn affinity(&self, user: &[f32], item: u32) -> f32 {
        (self.dot(user, item) - self.affinity_mean) / self.affinity_sd
    }

    /// Raw affinity of profile `p` to the centroid of topic `t`.
    pub fn topic_affinity(&self, p: usize, t: usize) -> f32 {
        let c = &self.topic_centroids[t * DIM..(t + 1) * DIM];
        self.profile(p).iter().zip(c).map(|(a, b)| a * b).sum()
    }

    /// Factors of profile `p`.
    pub fn profile(&self, p: usize) -> &[f32] {
        &self.user_factors[p * DIM..(p + 1) * DIM]
    }

    /// Factors of item `i`.
    pub fn item(&self, i: usize) -> &[f32] {
        &self.item_factors[i * DIM..(i + 1) * DIM]
    }

    /// A small generated world for tests: clustered tastes, no download.
    pub fn synthetic(n_profiles: usize, n_items: usize, seed: u64) -> Result<World> {
        if n_profiles == 0 || n_items < 50 {
            return Err(SimError::Param {
                name: "synthetic world size".into(),
                reason: format!("need ≥ 1 profile and ≥ 50 items, got {n_profiles} × {n_items}"),
            });
        }
        let mut rng = Pcg64::seed_from_u64(seed);
        let scale = 1.0 / (DIM as f32).sqrt();
        let mut item_factors = vec![0.0f32; n_items * DIM];
        for v in item_factors.iter_mut() {
            *v = normal(&mut rng) * scale * 1.5;
        }
        let mut user_factors = vec![0.0f32; n_profiles * DIM];
        for u in 0..n_profiles {
            // a taste = a mix of two items' directions plus noise
            let a = rng.random_range(0..n_items);
            let b = rng.random_range(0..n_items);
            for k in 0..DIM {
                user_factors[u * DIM + k] = 0.7 * item_factors[a * DIM + k]
                    + 0.5 * item_factors[b * DIM + k]
                    + 0.3 * normal(&mut rng) * scale;
            }
        }
        let q_z: Vec<f32> = (0..n_items).map(|_| normal(&mut rng)).collect();
        let pop_z: Vec<f32> = q_z.iter().map(|q| 0.4 * q + normal(&mut rng)).collect();
        let popularity = pop_z.iter().map(|z| (1.5 * z).exp() * 100.0).collect();
        World::assemble(
            user_factors,
            item_factors,
            &q_z,
            &pop_z,
            popularity,
            vec![Vec::new(); n_profiles],
            &mut rng,
        )
    }

    /// Fit the ground truth on real ratings `(user, item, rating)`: recloop-rec's implicit ALS
    /// (`DIM` factors) gives true affinity; quality comes from
    /// the shrunk mean rating; clickbait from popularity minus quality plus noise.
    pub fn from_ratings(
        n_users: usize,
        n_items: usize,
        ratings: &[(u32, u32, f32)],
        seed: u64,
    ) -> Result<World> {
        if ratings.is_empty() || n_users == 0 || n_items < 50 {
            return Err(SimError::GroundTruth(format!(
                "need ratings over ≥ 50 items, got {} ratings, {n_users} users, {n_items} items",
                ratings.len()
            )));
        }
        for (k, &(u, i, r)) in ratings.iter().enumerate() {
            if u as usize >= n_users || i as usize >= n_items || !r.is_finite() {
                return Err(SimError::GroundTruth(format!(
                    "rating #{k} ({u}, {i}, {r}) is out of range for {n_users} users × {n_items} items"
                )));
            }
        }
        let mut rng = Pcg64::seed_from_u64(seed);
        let (user_factors, item_factors) = implicit_als(n_users, n_items, ratings, seed)?;
        let mut sum = vec![0.0f64; n_items];
        let mut cnt = vec![0.0f64; n_items];
        let mut seen = vec![Vec::new(); n_users];
        for &(u, i, r) in ratings {
            sum[i as usize] += f64::from(r);
            cnt[i as usize] += 1.0;
            seen[u as usize].push(i);
        }
        for s in seen.iter_mut() {
            s.sort_unstable();
            s.dedup();
        }
        let global = sum.iter().sum::<f64>() / cnt.iter().sum::<f64>().max(1.0);
        let shrunk: Vec<f32> = (0..n_items)
            .map(|i| ((sum[i] + 10.0 * global) / (cnt[i] + 10.0)) as f32)
            .collect();
        let q_z = standardise(&shrunk);
        let log_pop: Vec<f32> = cnt.iter().map(|c| (c + 1.0).ln() as f32).collect();
        let pop_z = standardise(&log_pop);
        let popularity = cnt.iter().map(|&c| c as f32).collect();
        World::assemble(
            user_factors,
            item_factors,
            &q_z,
            &pop_z,
            popularity,
            seen,
            &mut rng,
        )
    }

    fn assemble(
        mut user_factors: Vec<f32>,
        mut item_factors: Vec<f32>,
        q_z: &[f32],
        pop_z: &[f32],
        popularity: Vec<f32>,
        seen: Vec<Vec<u32>>,
        rng: &mut Pcg64,
    ) -> Result<World> {
        let n_profiles = user_factors.len() / DIM;
        let n_items = item_factors.len() / DIM;
        // true affinity is the user-specific part of the fitted preference: centring the profiles
        // removes the item-level term `mean_profile · item` (largely popularity), which quality
        // and clickbait already carry; otherwise most-popular lists look "relevant" to everyone
        let mut centre = [0.0f64; DIM];
        for u in user_factors.chunks(DIM) {
            for k in 0..DIM {
                centre[k] += f64::from(u[k]);
            }
        }
        for u in user_factors.chunks_mut(DIM) {
            for k in 0..DIM {
                u[k] -= (centre[k] / n_profiles.max(1) as f64) as f32;
            }
        }
        // equalise mean norms (the dot product is unchanged) so interest drift mixes like with like
        let mean_norm = |f: &[f32]| {
            f.chunks(DIM)
                .map(|c| c.iter().map(|x| x * x).sum::<f32>().sqrt())
                .sum::<f32>()
                / (f.len() / DIM).max(1) as f32
        };
        let (nu, ni) = (mean_norm(&user_factors), mean_norm(&item_factors));
        if !(nu > 0.0 && ni > 0.0 && nu.is_finite() && ni.is_finite()) {
            return Err(SimError::GroundTruth(
                "degenerate factors (zero or non-finite norm)".into(),
            ));
        }
        let s = (nu / ni).sqrt();
        item_factors.iter_mut().for_each(|x| *x *= s);
        user_factors.iter_mut().for_each(|x| *x /= s);
        let quality: Vec<f32> = q_z.iter().map(|&q| sigmoid(1.2 * q)).collect();
        let clickbait: Vec<f32> = q_z
            .iter()
            .zip(pop_z)
            .map(|(&q, &p)| sigmoid(-q + 0.5 * p + 0.8 * normal(rng) - 1.2))
            .collect();
        let topic: Vec<u8> = item_factors
            .chunks(DIM)
            .map(|v| {
                let (j, x) =
                    v[..TOPICS / 2]
                        .iter()
                        .enumerate()
                        .fold((0, 0.0f32), |best, (j, &x)| {
                            if x.abs() > best.1.abs() { (j, x) } else { best }
                        });
                (2 * j + usize::from(x < 0.0)) as u8
            })
            .collect();
        let mut topic_centroids = vec![0.0f32; TOPICS * DIM];
        let mut topic_counts = [0.0f32; TOPICS];
        for (v, &t) in item_factors.chunks(DIM).zip(&topic) {
            topic_counts[t as usize] += 1.0;
            for k in 0..DIM {
                topic_centroids[t as usize * DIM + k] += v[k];
            }
        }
        for t in 0..TOPICS {
            for k in 0..DIM {
                topic_centroids[t * DIM + k] /= topic_counts[t].max(1.0);
            }
        }
        let mut world = World {
            topic_centroids,
            n_profiles,
            n_items,
            user_factors,
            item_factors,
            affinity_mean: 0.0,
            affinity_sd: 1.0,
            quality,
            clickbait,
            topic,
            popularity,
            seen,
            params: Params::default(),
        };
        let samples: Vec<f32> = (0..20_000)
            .map(|_| {
                let p = rng.random_range(0..n_profiles);
                let i = rng.random_range(0..n_items) as u32;
                world.dot(world.profile(p), i)
            })
            .collect();
        let m = samples.iter().sum::<f32>() / samples.len() as f32;
        let sd =
            (samples.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / samples.len() as f32).sqrt();
        if !(sd > 0.0 && sd.is_finite()) {
            return Err(SimError::GroundTruth("affinity has no spread".into()));
        }
        world.affinity_mean = m;
        world.affinity_sd = sd;
        world.calibrate(rng.random())?;
        Ok(world)
    }

    /// Replace the behaviour constants and recalibrate the click intercept.
    pub fn with_params(mut self, params: Params, seed: u64) -> Result<World> {
        self.params = params;
        self.calibrate(seed)?;
        Ok(self)
    }

    /// Bisect `click_intercept` so that uniformly random slates shown to fresh users have the
    /// target per-impression CTR.
    fn calibrate(&mut self, seed: u64) -> Result<()> {
        let target = self.params.target_random_ctr;
        if !(target > 0.0 && target < 0.5) {
            return Err(SimError::Param {
                name: "target_random_ctr".into(),
                reason: format!("{target} is not in (0, 0.5)"),
            });
        }
        let mut rng = Pcg64::seed_from_u64(seed);
        let k = self.params.slate_size;
        let samples: Vec<(usize, Vec<u32>)> = (0..3000)
            .map(|_| {
                let p = rng.random_range(0..self.n_profiles);
                let slate = (0..k)
                    .map(|_| rng.random_range(0..self.n_items) as u32)
                    .collect();
                (p, slate)
            })
            .collect();
        let (mut lo, mut hi) = (-20.0f32, 5.0f32);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            self.params.click_intercept = mid;
            let ctr: f64 = samples
                .par_iter()
                .map(|(p, slate)| {
                    let user = crate::engine::UserState::fresh(self, *p, 0, 0.0);
                    let mut utilities = [0.0f32; 64];
                    f64::from(crate::engine::click_probability(
                        self,
                        &user,
                        slate,
                        &mut utilities,
                    ))
                })
                .sum::<f64>()
                / (samples.len() * k) as f64;
            if ctr < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.params.click_intercept = 0.5 * (lo + hi);
        Ok(())
    }
}

/// True affinity from recloop-rec's implicit ALS (Hu, Koren, Volinsky; conjugate-gradient rows):
/// `DIM` factors, regularisation 0.1, 15 sweeps of 3 CG steps, every rated item observed with
/// confidence `1 + mean rating` (the average of the paper's `1 + r`; quality carries the rating
/// itself).
fn implicit_als(
    n_users: usize,
    n_items: usize,
    ratings: &[(u32, u32, f32)],
    seed: u64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let pairs: Vec<(u32, u32)> = ratings.iter().map(|&(u, i, _)| (u, i)).collect();
    let train = Interactions::from_pairs(n_users, n_items, &pairs);
    let mean_rating =
        ratings.iter().map(|r| f64::from(r.2)).sum::<f64>() / ratings.len().max(1) as f64;
    let mut model = Ials::new(IalsParams {
        factors: DIM,
        reg: 0.1,
        alpha: (1.0 + mean_rating.max(0.0)) as f32,
        iterations: 15,
        cg_steps: 3,
        seed,
    })?;
    model.fit(&train)?;
    let (x, y) = (model.user_factors().to_vec(), model.item_factors().to_vec());
    if x.len() != n_users * DIM || y.len() != n_items * DIM {
        return Err(SimError::GroundTruth(format!(
            "iALS returned {} user and {} item factors for {n_users} × {n_items} × {DIM}",
            x.len(),
            y.len()
        )));
    }
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_world_is_calibrated_and_deterministic() {
        let w = World::synthetic(300, 400, 5).unwrap();
        let w2 = World::synthetic(300, 400, 5).unwrap();
        assert_eq!(w.item_factors, w2.item_factors);
        assert_eq!(w.params.click_intercept, w2.params.click_intercept);
        assert!(w.quality.iter().all(|q| (0.0..=1.0).contains(q)));
        assert!(w.clickbait.iter().all(|c| (0.0..=1.0).contains(c)));
        // clickbait is partly anti-correlated with quality
        let n = w.n_items as f32;
        let mq = w.quality.iter().sum::<f32>() / n;
        let mc = w.clickbait.iter().sum::<f32>() / n;
        let cov: f32 = w
            .quality
            .iter()
            .zip(&w.clickbait)
            .map(|(q, c)| (q - mq) * (c - mc))
            .sum();
        assert!(cov < 0.0);
        assert!(w.topic.iter().all(|&t| (t as usize) < TOPICS));
    }

    #[test]
    fn from_ratings_fits_and_rejects_bad_rows() {
        // two taste groups: users 0..40 like items 0..60, users 40..80 like items 60..120
        let mut ratings = Vec::new();
        for u in 0..80u32 {
            for k in 0..25u32 {
                let base = if u < 40 { 0 } else { 60 };
                let i = base + (u * 7 + k * 13) % 60;
                ratings.push((u, i, 3.0 + ((u + k) % 3) as f32));
            }
        }
        let w = World::from_ratings(80, 120, &ratings, 1).unwrap();
        let own = w.affinity(w.profile(0), 5);
        let other = w.affinity(w.profile(0), 100);
        assert!(own > other, "{own} vs {other}");
        assert_eq!(w.seen[0].len(), 25);
        let err = World::from_ratings(80, 120, &[(0, 500, 4.0)], 1).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = World::from_ratings(80, 120, &[(0, 5, f32::NAN)], 1).unwrap_err();
        assert!(err.to_string().contains("rating #0"), "{err}");
    }
}
