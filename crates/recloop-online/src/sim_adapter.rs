//! The simulator adapter: an experiment's arms served to simulated users.

use crate::adapter::{Adapter, DayReport};
use crate::analysis::MetricStats;
use crate::assign::Assignment;
use crate::error::Result;
use crate::experiment::{
    Ack, ExperimentEvent, ExperimentReport, ExperimentSettings, run_with_adapter,
};
use recloop_core::{Direction, GuardrailSpec, Manifest};
use recloop_sim::{LogRecord, Policy, Simulation, UserSummary, World};
use std::sync::Arc;

/// Metrics the simulator reports, per exposed user.
pub const SIM_METRICS: [&str; 9] = [
    "ctr",
    "hide_rate",
    "clicks_per_user",
    "watch_time_per_user",
    "active_days_per_user",
    "sessions_per_user",
    "likes_per_user",
    "retention_d7",
    "retention_d30",
];

/// The guardrails the platform always watches in the simulator: watch time per user and the hide
/// rate (relative thresholds: attention 2 %, hard 5 %; hide rate 5 % / 15 %). Active days are
/// reported but not a veto guardrail: a small, discrete per-user count made the always-valid test
/// anti-conservative in A/A calibration (6 % false vetoes over 100 runs).
pub fn default_sim_guardrails() -> Vec<GuardrailSpec> {
    vec![
        GuardrailSpec::relative("watch_time_per_user", Direction::Increase, 0.02, 0.05),
        GuardrailSpec::relative("hide_rate", Direction::Decrease, 0.05, 0.15),
    ]
}

/// Aggregate user summaries into per-arm sufficient statistics of [`SIM_METRICS`].
pub fn aggregate(day: u32, summaries: impl Iterator<Item = UserSummary>) -> DayReport {
    let mut m = [[MetricStats::default(); 2]; SIM_METRICS.len()];
    let mut units = [0u64; 2];
    for s in summaries {
        let a = s.arm.min(1);
        units[a] += 1;
        m[0][a].push_ratio(f64::from(s.clicks), f64::from(s.impressions));
        m[1][a].push_ratio(f64::from(s.hides), f64::from(s.clicks));
        m[2][a].push_mean(f64::from(s.clicks));
        m[3][a].push_mean(f64::from(s.watch_min));
        m[4][a].push_mean(f64::from(s.active_days));
        m[5][a].push_mean(f64::from(s.sessions));
        m[6][a].push_mean(f64::from(s.likes));
        if s.observed_days > 7 {
            m[7][a].push_mean(f64::from(u8::from(s.returned_d7)));
        }
        if s.observed_days > 30 {
            m[8][a].push_mean(f64::from(u8::from(s.returned_d30)));
        }
    }
    DayReport {
        day,
        units,
        metrics: SIM_METRICS
            .iter()
            .zip(m)
            .map(|(n, s)| (n.to_string(), s))
            .collect(),
    }
}

/// Adapter that serves `control` and `treatment` to a simulated population.
pub struct SimAdapter<'p> {
    sim: Simulation,
    assignment: Assignment,
    policies: [&'p dyn Policy; 2],
    logs: Option<Vec<LogRecord>>,
}

impl<'p> SimAdapter<'p> {
    /// A population of `users` simulated users; `seed` drives both assignment and behaviour.
    pub fn new(
        world: Arc<World>,
        users: usize,
        seed: u64,
        control: &'p dyn Policy,
        treatment: &'p dyn Policy,
    ) -> Result<SimAdapter<'p>> {
        Ok(SimAdapter {
            sim: Simulation::new(world, users, seed)?,
            assignment: Assignment {
                seed: seed ^ 0x5EED_A551_6E00,
            },
            policies: [control, treatment],
            logs: None,
        })
    }

    /// Keep interaction logs (exposures and events) in memory.
    pub fn with_logs(mut self) -> Self {
        self.logs = Some(Vec::new());
        self
    }

    /// Take the collected logs.
    pub fn take_logs(&mut self) -> Vec<LogRecord> {
        self.logs.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

impl Adapter for SimAdapter<'_> {
    fn name(&self) -> &str {
        "simulator"
    }

    fn metrics(&self) -> Vec<String> {
        SIM_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn run_day(&mut self, day: u32, share: f64) -> Result<DayReport> {
        let a = self.assignment;
        let assign = move |u: u64| a.arm(u, share).map(|arm| arm.index());
        let policies: [&dyn Policy; 2] = self.policies;
        self.sim
            .step_day(day, &assign, &policies, self.logs.as_mut())?;
        Ok(aggregate(day, self.sim.summaries(day)))
    }
}

/// Everything a simulated experiment needs besides the manifest and the two policies.
#[derive(Clone)]
pub struct ExperimentConfig {
    /// Platform settings (id, seed, approve mode, overrides).
    pub settings: ExperimentSettings,
    /// The simulated world.
    pub world: Arc<World>,
    /// Simulated population; at a 50 % step each arm holds half of it.
    pub users: usize,
}

impl ExperimentConfig {
    /// Settings with the simulator's default guardrails added.
    pub fn new(world: Arc<World>, users: usize, seed: u64) -> ExperimentConfig {
        ExperimentConfig {
            settings: ExperimentSettings {
                seed,
                online_guardrails: default_sim_guardrails(),
                ..Default::default()
            },
            world,
            users,
        }
    }
}

/// Run a guarded A/B test of `treatment` against `control` on simulated users: ramp, health gate,
/// harm veto, escalations and verdict. Every event reaches `observer` before the platform acts.
pub fn run_experiment(
    manifest: &Manifest,
    control: &dyn Policy,
    treatment: &dyn Policy,
    config: &ExperimentConfig,
    observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
) -> Result<ExperimentReport> {
    let mut adapter = SimAdapter::new(
        config.world.clone(),
        config.users,
        config.settings.seed,
        control,
        treatment,
    )?;
    run_with_adapter(manifest, &mut adapter, &config.settings, observer)
}
