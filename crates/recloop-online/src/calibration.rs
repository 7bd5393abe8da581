//! A/A calibration and repeated A/B runs over many seeds.

use crate::error::Result;
use crate::experiment::{Ack, Outcome};
use crate::sim_adapter::{ExperimentConfig, run_experiment};
use rayon::prelude::*;
use recloop_core::{Decision, Manifest};
use recloop_sim::Policy;
use serde::{Deserialize, Serialize};

/// Summary of many runs of the same experiment with different seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatedRuns {
    /// Runs.
    pub runs: u32,
    /// Runs judged KEEP.
    pub keep: u32,
    /// Runs judged EXTEND.
    pub extend: u32,
    /// Runs judged DISCARD.
    pub discard: u32,
    /// Runs rolled back by the harm veto (or a rejected escalation).
    pub rolled_back: u32,
    /// Rolled back at the first or second ramp step.
    pub rolled_back_by_step2: u32,
    /// Runs whose treatment traffic reached the third step (20 % by default) or more.
    pub reached_step3: u32,
    /// Rollbacks per guardrail.
    pub vetoes_by_metric: std::collections::BTreeMap<String, u32>,
    /// Runs held by the health gate.
    pub held: u32,
    /// Runs with at least one attention escalation.
    pub escalated: u32,
    /// keep / runs.
    pub keep_rate: f64,
    /// rolled_back / runs.
    pub veto_rate: f64,
    /// First seed used (run i uses seed + i).
    pub seed: u64,
}

/// Run the experiment `runs` times with seeds `seed, seed + 1, ...` (runs in parallel).
pub fn repeated_runs(
    manifest: &Manifest,
    control: &dyn Policy,
    treatment: &dyn Policy,
    config: &ExperimentConfig,
    runs: u32,
    seed: u64,
) -> Result<RepeatedRuns> {
    let ramp = &manifest.online.ramp;
    let step3 = ramp.get(2).copied().unwrap_or(f64::INFINITY);
    let step2 = ramp.get(1).copied().unwrap_or(ramp[0]);
    let reports: Vec<_> = (0..runs)
        .into_par_iter()
        .map(|i| {
            let mut c = config.clone();
            c.settings.seed = seed.wrapping_add(u64::from(i));
            c.settings.id = format!("{}-{i}", config.settings.id);
            run_experiment(manifest, control, treatment, &c, &mut |_| Ack::Continue)
        })
        .collect::<Result<_>>()?;
    let mut s = RepeatedRuns {
        runs,
        keep: 0,
        extend: 0,
        discard: 0,
        rolled_back: 0,
        rolled_back_by_step2: 0,
        vetoes_by_metric: Default::default(),
        reached_step3: 0,
        held: 0,
        escalated: 0,
        keep_rate: 0.0,
        veto_rate: 0.0,
        seed,
    };
    for r in &reports {
        match r.verdict.decision {
            Decision::Keep => s.keep += 1,
            Decision::Extend => s.extend += 1,
            Decision::Discard => s.discard += 1,
        }
        match &r.outcome {
            Outcome::RolledBack { share, metric, .. } => {
                s.rolled_back += 1;
                *s.vetoes_by_metric.entry(metric.clone()).or_default() += 1;
                if *share <= step2 {
                    s.rolled_back_by_step2 += 1;
                }
            }
            Outcome::Held { .. } => s.held += 1,
            Outcome::Completed => {}
        }
        if r.max_share >= step3 {
            s.reached_step3 += 1;
        }
        if r.escalations > 0 {
            s.escalated += 1;
        }
    }
    let n = f64::from(runs.max(1));
    s.keep_rate = f64::from(s.keep) / n;
    s.veto_rate = f64::from(s.rolled_back) / n;
    Ok(s)
}
