//! Counterfactual comparisons: the same users (same seed) living under each policy in turn.

use crate::error::Result;
use crate::policy::Policy;
use crate::population::Simulation;
use crate::world::World;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// North stars and proxies of one policy over a horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// Policy name.
    pub policy: String,
    /// Exposed users.
    pub users: u64,
    /// Clicks per impression.
    pub ctr: f64,
    /// Hides per click.
    pub hide_rate: f64,
    /// Minutes watched per user.
    pub watch_per_user: f64,
    /// Distinct active days per user.
    pub active_days: f64,
    /// Share of users (observed > 7 days) who returned on or after day 7.
    pub retention_d7: f64,
    /// Share of users (observed > 30 days) who returned on or after day 30 (NaN-free: 0 when none).
    pub retention_d30: f64,
    /// Share of users churned.
    pub churned: f64,
    /// CTR per week (days 0–6, 7–13, ...).
    pub weekly_ctr: Vec<f64>,
}

/// Simulate `users` users for `days` days under each policy separately (identical seeds, so the
/// same people with the same random draws until their paths diverge).
pub fn compare_policies(
    world: Arc<World>,
    policies: &[&dyn Policy],
    users: usize,
    days: u32,
    seed: u64,
) -> Result<Vec<PolicyOutcome>> {
    let mut out = Vec::new();
    for policy in policies {
        let mut sim = Simulation::new(world.clone(), users, seed)?;
        let mut weekly = Vec::new();
        let (mut wi, mut wc) = (0u64, 0u64);
        for day in 0..days {
            let t = sim.step_day(day, &|_| Some(0), &[*policy], None)?;
            wi += t.impressions[0];
            wc += t.clicks[0];
            if day % 7 == 6 || day + 1 == days {
                weekly.push(if wi > 0 { wc as f64 / wi as f64 } else { 0.0 });
                wi = 0;
                wc = 0;
            }
        }
        let last = days.saturating_sub(1);
        let (mut n, mut imp, mut clk, mut hides, mut watch, mut active, mut churned) =
            (0u64, 0u64, 0u64, 0u64, 0f64, 0u64, 0u64);
        let (mut n7, mut r7, mut n30, mut r30) = (0u64, 0u64, 0u64, 0u64);
        for s in sim.summaries(last) {
            n += 1;
            imp += u64::from(s.impressions);
            clk += u64::from(s.clicks);
            hides += u64::from(s.hides);
            watch += f64::from(s.watch_min);
            active += u64::from(s.active_days);
            churned += u64::from(s.churned);
            if s.observed_days > 7 {
                n7 += 1;
                r7 += u64::from(s.returned_d7);
            }
            if s.observed_days > 30 {
                n30 += 1;
                r30 += u64::from(s.returned_d30);
            }
        }
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        out.push(PolicyOutcome {
            policy: policy.name().to_string(),
            users: n,
            ctr: ratio(clk, imp),
            hide_rate: ratio(hides, clk),
            watch_per_user: if n > 0 { watch / n as f64 } else { 0.0 },
            active_days: ratio(active, n),
            retention_d7: ratio(r7, n7),
            retention_d30: ratio(r30, n30),
            churned: ratio(churned, n),
            weekly_ctr: weekly,
        });
    }
    Ok(out)
}

/// Result of [`bench_ab`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Users per arm.
    pub users_per_arm: usize,
    /// Days simulated.
    pub days: u32,
    /// Wall-clock seconds of each repetition (world and policies excluded, population included).
    pub seconds: Vec<f64>,
    /// Median of `seconds`.
    pub median_seconds: f64,
    /// Impressions simulated per repetition.
    pub impressions: u64,
    /// Sessions-days: user-days with at least one session, per repetition.
    pub active_user_days: u64,
    /// Threads used.
    pub threads: usize,
}

/// Time a 50/50 A/B test (relevance model against its clickbait-boosted variant) with
/// `users_per_arm` users per arm for `days` days, `runs` times; reports the median.
pub fn bench_ab(
    world: Arc<World>,
    users_per_arm: usize,
    days: u32,
    runs: u32,
) -> Result<BenchResult> {
    let control = crate::policy::relevance_policy(&world, 1.0, 7);
    let treatment = crate::policy::clickbait_boost_policy(&world, 1.0, 7, 1.0);
    let mut seconds = Vec::new();
    let (mut impressions, mut active) = (0u64, 0u64);
    for r in 0..runs.max(1) {
        let start = std::time::Instant::now();
        let mut sim = Simulation::new(world.clone(), 2 * users_per_arm, 100 + u64::from(r))?;
        let (mut imp, mut act) = (0u64, 0u64);
        for day in 0..days {
            let t = sim.step_day(
                day,
                &|u| Some((u & 1) as usize),
                &[&control, &treatment],
                None,
            )?;
            imp += t.impressions.iter().sum::<u64>();
            act += t.active.iter().sum::<u64>();
            // the per-user aggregation the platform does every day
            let n = sim.summaries(day).filter(|s| s.clicks > 0).count();
            std::hint::black_box(n);
        }
        seconds.push(start.elapsed().as_secs_f64());
        impressions = imp;
        active = act;
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(BenchResult {
        users_per_arm,
        days,
        median_seconds: sorted[sorted.len() / 2],
        seconds,
        impressions,
        active_user_days: active,
        threads: rayon::current_num_threads(),
    })
}
