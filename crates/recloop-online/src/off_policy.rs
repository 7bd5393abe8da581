//! Off-policy replay before any traffic (`[online.off_policy]`): production's and the
//! candidate's policies (a JSON file of each checkout) are scored on logged bandit feedback with
//! recorded propensities, and their difference is estimated on the same rounds with its
//! confidence interval. An interval wholly below zero is harm: the candidate gets no traffic.

use crate::ope_data::ObdLoader;
use recloop_core::OffPolicySection;
use recloop_stats::distributions::normal_quantile;
use recloop_stats::ope::{EstimatorKind, estimate, estimate_difference, smoothed_ctr_model};
use recloop_stats::{DatasetLoader, DatasetSpec, PolicySpec};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the replay found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffPolicyCheck {
    /// `name/behavior/campaign`.
    pub dataset: String,
    /// The deciding estimator.
    pub estimator: String,
    /// Logged rounds.
    pub rounds: u64,
    /// Production's estimated value (e.g. click rate).
    pub production: f64,
    /// The candidate's estimated value.
    pub candidate: f64,
    /// Paired estimate of candidate − production.
    pub difference: f64,
    /// Its two-sided confidence interval at 1 − α.
    pub ci: (f64, f64),
    /// The whole interval lies below zero.
    pub harm: bool,
}

impl OffPolicyCheck {
    /// One line for verdicts and caveats.
    pub fn summary(&self) -> String {
        format!(
            "off-policy replay on {} ({} rounds, {}): candidate {:.5} vs production {:.5}, difference {:+.5}, CI [{:+.5}, {:+.5}]",
            self.dataset,
            self.rounds,
            self.estimator,
            self.candidate,
            self.production,
            self.difference,
            self.ci.0,
            self.ci.1
        )
    }
}

/// Read the policy file `file` of the checkout `dir`.
fn policy(dir: &Path, file: &str) -> Result<PolicySpec, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a policy (\"uniform\", {{\"softmax\": {{...}}}} or {{\"scores\": {{...}}}}): {e}",
            path.display()
        )
    })
}

/// Replay production (`production_dir`) and the candidate (`candidate_dir`) on the logged data
/// `spec` names, deciding at level `alpha`.
pub fn off_policy_check(
    spec: &OffPolicySection,
    production_dir: &Path,
    candidate_dir: &Path,
    alpha: f64,
) -> Result<OffPolicyCheck, String> {
    let kind = EstimatorKind::from_name(&spec.estimator)
        .ok_or_else(|| format!("unknown estimator {:?}", spec.estimator))?;
    let ds = ObdLoader
        .load(&DatasetSpec {
            name: spec.dataset.clone(),
            behavior: spec.behavior.clone(),
            campaign: spec.campaign.clone(),
        })
        .map_err(|e| format!("dataset {}: {e}", spec.dataset))?;
    let data = &ds.feedback;
    let tensor = |side: &str, dir: &Path| {
        policy(dir, &spec.policy)?
            .tensor(&ds)
            .map_err(|e| format!("{side} policy {}: {e}", spec.policy))
    };
    let prod = tensor("production", production_dir)?;
    let cand = tensor("candidate", candidate_dir)?;
    let model = if kind.needs_reward_model() {
        Some(smoothed_ctr_model(data, spec.prior_weight).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let stats = |e: recloop_stats::StatsError| e.to_string();
    let p = estimate(data, &prod, model.as_ref(), kind, None).map_err(stats)?;
    let c = estimate(data, &cand, model.as_ref(), kind, None).map_err(stats)?;
    let d = estimate_difference(data, &cand, &prod, model.as_ref(), kind, None).map_err(stats)?;
    let z = normal_quantile(1.0 - alpha / 2.0).map_err(stats)?;
    let ci = (d.estimate - z * d.se, d.estimate + z * d.se);
    Ok(OffPolicyCheck {
        dataset: format!("{}/{}/{}", spec.dataset, spec.behavior, spec.campaign),
        estimator: spec.estimator.clone(),
        rounds: data.actions.len() as u64,
        production: p.estimate,
        candidate: c.estimate,
        difference: d.estimate,
        ci,
        harm: ci.1 < 0.0,
    })
}
