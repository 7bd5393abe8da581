//! Policies: what slate a user sees. Any recommender becomes a policy through ranked lists
//! precomputed per profile; built-in test policies cover clickbait, diversity and randomness.

use crate::params::TOPICS;
use crate::world::World;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg32;
use rayon::prelude::*;

/// What a policy knows when it serves a slate.
#[derive(Debug, Clone, Copy)]
pub struct SlateRequest<'a> {
    /// Simulated unit id.
    pub unit: u64,
    /// Profile (the real user id in the recommender's data) the unit copies.
    pub profile: u32,
    /// Time in days.
    pub time: f64,
    /// Slate number within the session (0 = first screen).
    pub page: u32,
    /// Items the unit consumed in the simulation so far.
    pub consumed: &'a [u32],
    /// Slate size.
    pub k: usize,
    /// Random number for stochastic policies (derived from the seeded simulation).
    pub nonce: u64,
}

/// A serving policy: the slate for a user at time t given history.
pub trait Policy: Send + Sync {
    /// Name for reports.
    fn name(&self) -> &str;
    /// Push up to `req.k` item ids into `out` (which is empty on entry). `cursor` starts at 0 in
    /// each session and is the policy's own bookmark between the session's slates.
    fn slate(&self, world: &World, req: &SlateRequest<'_>, cursor: &mut usize, out: &mut Vec<u32>);
}

/// A policy served from a ranked list per profile: each slate of a session shows the next `k`
/// items of the list that the user has not consumed.
#[derive(Debug, Clone)]
pub struct RankedListPolicy {
    name: String,
    len: usize,
    lists: Vec<u32>,
    lens: Vec<u32>,
}

impl RankedListPolicy {
    /// Build from a function giving the ranked list of each profile (computed in parallel, once).
    pub fn from_fn<F>(name: &str, n_profiles: usize, len: usize, f: F) -> RankedListPolicy
    where
        F: Fn(usize) -> Vec<u32> + Sync,
    {
        let rows: Vec<Vec<u32>> = (0..n_profiles).into_par_iter().map(&f).collect();
        let mut lists = vec![0u32; n_profiles * len];
        let mut lens = vec![0u32; n_profiles];
        for (p, row) in rows.iter().enumerate() {
            let n = row.len().min(len);
            lists[p * len..p * len + n].copy_from_slice(&row[..n]);
            lens[p] = n as u32;
        }
        RankedListPolicy {
            name: name.to_string(),
            len,
            lists,
            lens,
        }
    }

    /// Build from a score per (profile, item): the top `len` items not already seen by the profile.
    pub fn from_scores<F>(name: &str, world: &World, len: usize, score: F) -> RankedListPolicy
    where
        F: Fn(usize, usize) -> f32 + Sync,
    {
        RankedListPolicy::from_fn(name, world.n_profiles, len, |p| {
            let seen = world.seen.get(p).map(Vec::as_slice).unwrap_or(&[]);
            let mut scored: Vec<(f32, u32)> = (0..world.n_items)
                .filter(|i| seen.binary_search(&(*i as u32)).is_err())
                .map(|i| (score(p, i), i as u32))
                .collect();
            let n = len.min(scored.len());
            if n == 0 {
                return Vec::new();
            }
            scored.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(n);
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.into_iter().map(|(_, i)| i).collect()
        })
    }

    /// The ranked list of a profile.
    pub fn list(&self, profile: usize) -> &[u32] {
        let n = self.lens.get(profile).copied().unwrap_or(0) as usize;
        &self.lists[profile * self.len..profile * self.len + n]
    }

    /// Rerank every list greedily so that a window of `window` consecutive items holds at most
    /// `per_topic` items of one topic (diversity-aware variant of the same relevance).
    pub fn diversified(
        &self,
        world: &World,
        name: &str,
        window: usize,
        per_topic: usize,
    ) -> RankedListPolicy {
        let n_profiles = self.lens.len();
        RankedListPolicy::from_fn(name, n_profiles, self.len, |p| {
            let mut rest: Vec<u32> = self.list(p).to_vec();
            let mut out: Vec<u32> = Vec::with_capacity(rest.len());
            while !rest.is_empty() {
                let start = out.len().saturating_sub(window.saturating_sub(1));
                let mut counts = [0usize; TOPICS];
                for &i in &out[start..] {
                    counts[world.topic[i as usize] as usize] += 1;
                }
                let pick = rest
                    .iter()
                    .position(|&i| counts[world.topic[i as usize] as usize] < per_topic)
                    .unwrap_or(0);
                out.push(rest.remove(pick));
            }
            out
        })
    }
}

impl Policy for RankedListPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn slate(
        &self,
        _world: &World,
        req: &SlateRequest<'_>,
        cursor: &mut usize,
        out: &mut Vec<u32>,
    ) {
        let list = self.list(req.profile as usize);
        while *cursor < list.len() && out.len() < req.k {
            let item = list[*cursor];
            *cursor += 1;
            if !req.consumed.contains(&item) {
                out.push(item);
            }
        }
    }
}

/// Uniformly random slates (the Open Bandit logging policy).
#[derive(Debug, Clone, Default)]
pub struct RandomPolicy;

impl Policy for RandomPolicy {
    fn name(&self) -> &str {
        "random"
    }

    fn slate(
        &self,
        world: &World,
        req: &SlateRequest<'_>,
        _cursor: &mut usize,
        out: &mut Vec<u32>,
    ) {
        let mut rng = Pcg32::seed_from_u64(req.nonce);
        while out.len() < req.k {
            let i = rng.random_range(0..world.n_items) as u32;
            if !out.contains(&i) && !req.consumed.contains(&i) {
                out.push(i);
            }
        }
    }
}

/// Seeded Gaussian noise per (profile, item): the imperfection of a model's knowledge.
pub fn model_noise(seed: u64, profile: usize, item: usize) -> f32 {
    let mut z = seed ^ ((profile as u64) << 32) ^ item as u64;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u1 = ((z >> 40) as f32 + 0.5) / (1u64 << 24) as f32;
    let u2 = ((z & 0xFF_FFFF) as f32) / (1u64 << 24) as f32;
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Length of precomputed ranked lists.
pub const LIST_LEN: usize = 200;

/// A model that knows true affinity up to noise of standard deviation `noise`.
pub fn relevance_policy(world: &World, noise: f32, seed: u64) -> RankedListPolicy {
    RankedListPolicy::from_scores("relevance", world, LIST_LEN, |p, i| {
        world.affinity(world.profile(p), i as u32) + noise * model_noise(seed, p, i)
    })
}

/// The relevance model with clickbait boosted by `boost` (×clickbait score, in affinity units).
pub fn clickbait_boost_policy(
    world: &World,
    noise: f32,
    seed: u64,
    boost: f32,
) -> RankedListPolicy {
    RankedListPolicy::from_scores("clickbait-boost", world, LIST_LEN, |p, i| {
        world.affinity(world.profile(p), i as u32)
            + noise * model_noise(seed, p, i)
            + boost * world.clickbait[i] * 2.0
    })
}

/// A score that ignores relevance: clickbait only.
pub fn clickbait_only_policy(world: &World) -> RankedListPolicy {
    RankedListPolicy::from_scores("clickbait-only", world, LIST_LEN, |_, i| world.clickbait[i])
}

/// The relevance model reranked so that no topic has more than `per_topic` items in any 10.
pub fn diversity_policy(
    world: &World,
    noise: f32,
    seed: u64,
    per_topic: usize,
) -> RankedListPolicy {
    relevance_policy(world, noise, seed).diversified(world, "diversity-aware", 10, per_topic)
}

/// Most popular items (not personalised beyond excluding what the profile has seen).
pub fn most_popular_policy(world: &World) -> RankedListPolicy {
    RankedListPolicy::from_scores("most-popular", world, LIST_LEN, |_, i| world.popularity[i])
}

/// The relevance model that promotes items of topics outside the profile's eight favourite
/// topics by `bonus` (exploration; novel at first, familiar after a few weeks).
pub fn exploration_policy(world: &World, noise: f32, seed: u64, bonus: f32) -> RankedListPolicy {
    RankedListPolicy::from_scores("exploration", world, LIST_LEN, |p, i| {
        let t = world.topic[i] as usize;
        let mine = world.topic_affinity(p, t);
        let better = (0..TOPICS)
            .filter(|&o| world.topic_affinity(p, o) > mine)
            .count();
        world.affinity(world.profile(p), i as u32)
            + noise * model_noise(seed, p, i)
            + if better >= 8 { bonus } else { 0.0 }
    })
}
