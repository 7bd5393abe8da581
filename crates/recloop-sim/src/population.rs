//! A population of simulated users, advanced day by day in parallel.

use crate::engine::{LogRecord, Scratch, UserState, user_day};
use crate::error::{Result, SimError};
use crate::policy::Policy;
use crate::world::World;
use rand::SeedableRng;
use rand_pcg::Pcg32;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Totals of one day per arm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayTotals {
    /// Day.
    pub day: u32,
    /// Users with a session that day, per arm.
    pub active: Vec<u64>,
    /// Impressions per arm.
    pub impressions: Vec<u64>,
    /// Clicks per arm.
    pub clicks: Vec<u64>,
    /// Watch minutes per arm.
    pub watch_min: Vec<f64>,
}

/// Per-user outcome summary at the end of a day, the unit of analysis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    /// Unit id.
    pub unit: u64,
    /// Arm index.
    pub arm: usize,
    /// Days observed since first exposure (including the current day).
    pub observed_days: u32,
    /// Distinct active days.
    pub active_days: u32,
    /// Sessions.
    pub sessions: u32,
    /// Impressions.
    pub impressions: u32,
    /// Clicks.
    pub clicks: u32,
    /// Minutes watched.
    pub watch_min: f32,
    /// Likes.
    pub likes: u32,
    /// Hides.
    pub hides: u32,
    /// Returned on a day ≥ entry + 7 (meaningful when `observed_days > 7`).
    pub returned_d7: bool,
    /// Returned on a day ≥ entry + 30 (meaningful when `observed_days > 30`).
    pub returned_d30: bool,
    /// Churned (away beyond the horizon).
    pub churned: bool,
}

/// The simulated population.
pub struct Simulation {
    world: Arc<World>,
    users: Vec<UserState>,
    seed: u64,
}

impl Simulation {
    /// `n_users` users, each copying a profile drawn with replacement from the world (seeded).
    pub fn new(world: Arc<World>, n_users: usize, seed: u64) -> Result<Simulation> {
        if n_users == 0 {
            return Err(SimError::Param {
                name: "users".into(),
                reason: "need at least one simulated user".into(),
            });
        }
        let users = (0..n_users as u64)
            .into_par_iter()
            .map(|unit| {
                let profile = (mix(unit ^ mix(seed)) % world.n_profiles as u64) as usize;
                UserState::fresh(&world, profile, unit, 0.0)
            })
            .collect();
        Ok(Simulation { world, users, seed })
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// All user states.
    pub fn users(&self) -> &[UserState] {
        &self.users
    }

    /// Advance every user assigned to an arm by `assign(unit)` through day `day` under that arm's
    /// policy. Users whose assignment is `None` do not take part (their state is untouched).
    /// With `logs`, interaction records are appended (in unit order).
    pub fn step_day(
        &mut self,
        day: u32,
        assign: &(dyn Fn(u64) -> Option<usize> + Sync),
        policies: &[&dyn Policy],
        logs: Option<&mut Vec<LogRecord>>,
    ) -> Result<DayTotals> {
        let world = &*self.world;
        let seed = self.seed;
        let n_arms = policies.len();
        let want_logs = logs.is_some();
        let chunk = 1024;
        let parts: Vec<(DayTotals, Vec<LogRecord>)> = self
            .users
            .par_chunks_mut(chunk)
            .map(|users| {
                let mut totals = DayTotals {
                    day,
                    active: vec![0; n_arms],
                    impressions: vec![0; n_arms],
                    clicks: vec![0; n_arms],
                    watch_min: vec![0.0; n_arms],
                };
                let mut scratch = Scratch::default();
                let mut log = Vec::new();
                for user in users.iter_mut() {
                    let Some(arm) = assign(user.unit) else {
                        continue;
                    };
                    let Some(policy) = policies.get(arm) else {
                        continue;
                    };
                    user.arm = arm as i8;
                    let mut rng =
                        Pcg32::seed_from_u64(mix(seed ^ mix(user.unit) ^ (u64::from(day) << 48)));
                    let (imp, clk, watch, last) = (
                        user.impressions,
                        user.clicks,
                        user.watch_min,
                        user.last_active_day,
                    );
                    user_day(
                        world,
                        user,
                        *policy,
                        day,
                        &mut rng,
                        &mut scratch,
                        if want_logs { Some(&mut log) } else { None },
                    );
                    totals.impressions[arm] += u64::from(user.impressions - imp);
                    totals.clicks[arm] += u64::from(user.clicks - clk);
                    totals.watch_min[arm] += f64::from(user.watch_min - watch);
                    if user.last_active_day != last {
                        totals.active[arm] += 1;
                    }
                }
                (totals, log)
            })
            .collect();
        let mut out = DayTotals {
            day,
            active: vec![0; n_arms],
            impressions: vec![0; n_arms],
            clicks: vec![0; n_arms],
            watch_min: vec![0.0; n_arms],
        };
        let mut all_logs = logs;
        for (t, log) in parts {
            for a in 0..n_arms {
                out.active[a] += t.active[a];
                out.impressions[a] += t.impressions[a];
                out.clicks[a] += t.clicks[a];
                out.watch_min[a] += t.watch_min[a];
            }
            if let Some(l) = all_logs.as_deref_mut() {
                l.extend(log);
            }
        }
        Ok(out)
    }

    /// Summaries of every exposed user as of the end of day `day`.
    pub fn summaries(&self, day: u32) -> impl Iterator<Item = UserSummary> + '_ {
        self.users
            .iter()
            .filter(|u| u.entered >= 0 && u.arm >= 0)
            .map(move |u| UserSummary {
                unit: u.unit,
                arm: u.arm as usize,
                observed_days: (day as i32 + 1 - u.entered).max(0) as u32,
                active_days: u.active_days,
                sessions: u.sessions,
                impressions: u.impressions,
                clicks: u.clicks,
                watch_min: u.watch_min,
                likes: u.likes,
                hides: u.hides,
                returned_d7: u.returned_d7,
                returned_d30: u.returned_d30,
                churned: u.churned,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{RandomPolicy, relevance_policy};

    #[test]
    fn random_slates_match_the_open_bandit_ctr_and_runs_are_reproducible() {
        let world = Arc::new(World::synthetic(500, 600, 2).unwrap());
        let run = |seed| {
            let mut sim = Simulation::new(world.clone(), 3000, seed).unwrap();
            let (mut imp, mut clk) = (0u64, 0u64);
            for day in 0..3 {
                let t = sim
                    .step_day(day, &|_| Some(0), &[&RandomPolicy], None)
                    .unwrap();
                imp += t.impressions[0];
                clk += t.clicks[0];
            }
            (imp, clk)
        };
        let (imp, clk) = run(9);
        assert_eq!(run(9), (imp, clk));
        assert_ne!(run(10), (imp, clk));
        let ctr = clk as f64 / imp as f64;
        assert!((0.0025..0.0055).contains(&ctr), "random CTR {ctr}");
        let rel = relevance_policy(&world, 1.0, 1);
        let mut sim = Simulation::new(world.clone(), 3000, 9).unwrap();
        let t = sim.step_day(0, &|_| Some(0), &[&rel], None).unwrap();
        assert!(t.clicks[0] as f64 / t.impressions[0] as f64 > 2.0 * ctr);
    }

    #[test]
    fn unassigned_users_are_untouched_and_logs_are_written() {
        let world = Arc::new(World::synthetic(200, 300, 3).unwrap());
        let rel = relevance_policy(&world, 1.0, 1);
        let mut sim = Simulation::new(world, 1000, 1).unwrap();
        let mut logs = Vec::new();
        let assign = |u: u64| {
            if u.is_multiple_of(2) {
                Some((u % 4 / 2) as usize)
            } else {
                None
            }
        };
        let t = sim
            .step_day(0, &assign, &[&rel, &RandomPolicy], Some(&mut logs))
            .unwrap();
        assert!(
            sim.users()
                .iter()
                .filter(|u| u.unit % 2 == 1)
                .all(|u| !u.started)
        );
        let imp = logs.iter().filter(|r| r.event == "impression").count() as u64;
        assert_eq!(imp, t.impressions[0] + t.impressions[1]);
        let clicks = logs.iter().filter(|r| r.event == "click").count() as u64;
        assert_eq!(clicks, t.clicks[0] + t.clicks[1]);
        assert!(logs.iter().all(|r| r.unit % 2 == 0));
    }
}
