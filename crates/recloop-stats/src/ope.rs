//! Off-policy evaluation of ranking policies from logged bandit feedback with positions
//! (Open Bandit Pipeline 0.5.7 formulas), each estimator with its normal-approximation
//! standard error `std(round_rewards, ddof = 1)/√n`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StatsError, finite, non_negative};

/// Values indexed by (row, action, position): an evaluation policy π_e(a | x, k) or a reward
/// model q̂(x, a, k). A *shared* tensor holds one (action × position) table for every row.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionTensor {
    n_rows: usize,
    n_actions: usize,
    len_list: usize,
    shared: bool,
    values: Vec<f64>,
}

impl ActionTensor {
    /// A per-row tensor; `values` is row-major (row, action, position).
    pub fn per_row(
        n_rows: usize,
        n_actions: usize,
        len_list: usize,
        values: Vec<f64>,
    ) -> Result<Self> {
        if values.len() != n_rows * n_actions * len_list {
            return Err(StatsError::invalid(
                "values",
                format!(
                    "has {} entries, expected {n_rows}×{n_actions}×{len_list}",
                    values.len()
                ),
            ));
        }
        Self::checked(ActionTensor {
            n_rows,
            n_actions,
            len_list,
            shared: false,
            values,
        })
    }

    /// One (action × position) table shared by every row; `values` is (action, position) row-major.
    pub fn shared(n_actions: usize, len_list: usize, values: Vec<f64>) -> Result<Self> {
        if values.len() != n_actions * len_list {
            return Err(StatsError::invalid(
                "values",
                format!(
                    "has {} entries, expected {n_actions}×{len_list}",
                    values.len()
                ),
            ));
        }
        Self::checked(ActionTensor {
            n_rows: 0,
            n_actions,
            len_list,
            shared: true,
            values,
        })
    }

    fn checked(t: Self) -> Result<Self> {
        if t.n_actions == 0 || t.len_list == 0 {
            return Err(StatsError::invalid(
                "values",
                "needs at least one action and one position",
            ));
        }
        for (i, &v) in t.values.iter().enumerate() {
            finite(&format!("values[{i}]"), v)?;
        }
        Ok(t)
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// Number of positions.
    pub fn len_list(&self) -> usize {
        self.len_list
    }

    /// Value at (row, action, position). Indices must be in range (checked by the estimators).
    pub fn get(&self, row: usize, action: usize, position: usize) -> f64 {
        let base = if self.shared {
            0
        } else {
            row * self.n_actions * self.len_list
        };
        self.values[base + action * self.len_list + position]
    }

    fn check_rows(&self, rows: usize, field: &str) -> Result<()> {
        if !self.shared && self.n_rows != rows {
            return Err(StatsError::invalid(
                field,
                format!("has {} rows, the log has {rows}", self.n_rows),
            ));
        }
        Ok(())
    }
}

/// Logged bandit feedback: for each round the chosen action, its slate position, the reward and
/// the behaviour policy's propensity π_b(a | x).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoggedFeedback {
    /// Chosen action per round.
    pub actions: Vec<usize>,
    /// Slate position per round (0-based); all zero for non-ranking data.
    pub positions: Vec<usize>,
    /// Observed reward per round.
    pub rewards: Vec<f64>,
    /// Behaviour-policy propensity per round, in (0, 1].
    pub pscores: Vec<f64>,
    /// Number of distinct actions.
    pub n_actions: usize,
    /// Number of slate positions.
    pub len_list: usize,
}

impl LoggedFeedback {
    /// Check lengths and ranges, naming the first offending entry.
    pub fn validate(&self) -> Result<()> {
        let n = self.actions.len();
        if n < 2 {
            return Err(StatsError::invalid("actions", "needs at least 2 rounds"));
        }
        for (name, len) in [
            ("positions", self.positions.len()),
            ("rewards", self.rewards.len()),
            ("pscores", self.pscores.len()),
        ] {
            if len != n {
                return Err(StatsError::invalid(
                    name,
                    format!("has {len} entries, actions has {n}"),
                ));
            }
        }
        for i in 0..n {
            if self.actions[i] >= self.n_actions {
                return Err(StatsError::invalid(
                    format!("actions[{i}]"),
                    format!(
                        "action {} is outside 0..{}",
                        self.actions[i], self.n_actions
                    ),
                ));
            }
            if self.positions[i] >= self.len_list {
                return Err(StatsError::invalid(
                    format!("positions[{i}]"),
                    format!(
                        "position {} is outside 0..{}",
                        self.positions[i], self.len_list
                    ),
                ));
            }
            finite(&format!("rewards[{i}]"), self.rewards[i])?;
            let p = self.pscores[i];
            if !(p > 0.0 && p <= 1.0) {
                return Err(StatsError::invalid(
                    format!("pscores[{i}]"),
                    format!("propensity {p} is outside (0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// The estimators of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimatorKind {
    /// Inverse probability weighting, optionally clipped at λ.
    Ipw,
    /// Self-normalized IPW.
    Snipw,
    /// Direct method.
    Dm,
    /// Doubly robust, optionally clipped at λ.
    Dr,
    /// Self-normalized doubly robust.
    Sndr,
    /// Switch-DR: IPW correction only where w ≤ λ.
    SwitchDr,
    /// DR with optimistic shrinkage ŵ = λw/(w² + λ).
    DrOs,
    /// Sub-Gaussian IPW ŵ = w/(1 − λ + λw).
    SgIpw,
    /// Sub-Gaussian DR.
    SgDr,
}

impl EstimatorKind {
    /// Parse an estimator name; `ipw_clip`/`dr_clip` are accepted for the clipped variants.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ipw" | "ips" | "ipw_clip" => EstimatorKind::Ipw,
            "snipw" | "snips" => EstimatorKind::Snipw,
            "dm" => EstimatorKind::Dm,
            "dr" | "dr_clip" => EstimatorKind::Dr,
            "sndr" => EstimatorKind::Sndr,
            "switch_dr" => EstimatorKind::SwitchDr,
            "dr_os" => EstimatorKind::DrOs,
            "sg_ipw" => EstimatorKind::SgIpw,
            "sg_dr" => EstimatorKind::SgDr,
            _ => return None,
        })
    }

    /// Whether the estimator needs a reward model.
    pub fn needs_reward_model(self) -> bool {
        !matches!(
            self,
            EstimatorKind::Ipw | EstimatorKind::Snipw | EstimatorKind::SgIpw
        )
    }
}

/// An estimate with its normal-approximation standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpeEstimate {
    /// Policy value estimate.
    pub estimate: f64,
    /// std(round rewards, ddof = 1)/√n.
    pub se: f64,
}

/// Estimate the value of `policy` with estimator `kind` and hyper-parameter `lambda`
/// (obp defaults when `None`: ∞ for IPW/DR/Switch-DR clipping, 0 for DR-os and the sub-Gaussian ones).
pub fn estimate(
    data: &LoggedFeedback,
    policy: &ActionTensor,
    reward_model: Option<&ActionTensor>,
    kind: EstimatorKind,
    lambda: Option<f64>,
) -> Result<OpeEstimate> {
    let round = round_values(data, policy, reward_model, kind, lambda)?;
    finite_estimate(&round)
}

/// The difference `candidate − baseline` in value, estimated on the same logged rounds: the mean
/// and standard error of the per-round differences of the two estimators' terms (paired, so
/// the rounds' shared noise cancels; for the self-normalized estimators each policy keeps its
/// own normalization).
pub fn estimate_difference(
    data: &LoggedFeedback,
    candidate: &ActionTensor,
    baseline: &ActionTensor,
    reward_model: Option<&ActionTensor>,
    kind: EstimatorKind,
    lambda: Option<f64>,
) -> Result<OpeEstimate> {
    let c = round_values(data, candidate, reward_model, kind, lambda)?;
    let b = round_values(data, baseline, reward_model, kind, lambda)?;
    let diff: Vec<f64> = c.iter().zip(&b).map(|(x, y)| x - y).collect();
    finite_estimate(&diff)
}

fn finite_estimate(round: &[f64]) -> Result<OpeEstimate> {
    let (mean, se) = mean_and_se(round);
    if !mean.is_finite() || !se.is_finite() {
        return Err(StatsError::invalid(
            "action_dist",
            "the estimate is not finite; check propensities and λ",
        ));
    }
    Ok(OpeEstimate { estimate: mean, se })
}

/// Per-round terms of an estimator: their mean is its estimate of `policy`'s value.
pub fn round_values(
    data: &LoggedFeedback,
    policy: &ActionTensor,
    reward_model: Option<&ActionTensor>,
    kind: EstimatorKind,
    lambda: Option<f64>,
) -> Result<Vec<f64>> {
    data.validate()?;
    let n = data.actions.len();
    check_shape(policy, data, "action_dist")?;
    let q = if kind.needs_reward_model() {
        let q = reward_model
            .ok_or_else(|| StatsError::invalid("reward_model", "required for this estimator"))?;
        check_shape(q, data, "reward_model")?;
        Some(q)
    } else {
        None
    };
    let lambda = match lambda {
        Some(l) => {
            let l = non_negative("lambda", l)?;
            if matches!(kind, EstimatorKind::SgIpw | EstimatorKind::SgDr) && l > 1.0 {
                return Err(StatsError::invalid(
                    "lambda",
                    "must lie in [0, 1] for sub-Gaussian estimators",
                ));
            }
            l
        }
        None => match kind {
            EstimatorKind::DrOs | EstimatorKind::SgIpw | EstimatorKind::SgDr => 0.0,
            _ => f64::INFINITY,
        },
    };
    let w: Vec<f64> = (0..n)
        .map(|i| policy.get(i, data.actions[i], data.positions[i]) / data.pscores[i])
        .collect();
    let dm_term = |i: usize, q: &ActionTensor| -> f64 {
        (0..data.n_actions)
            .map(|a| policy.get(i, a, data.positions[i]) * q.get(i, a, data.positions[i]))
            .sum()
    };
    let residual = |i: usize, q: &ActionTensor| -> f64 {
        data.rewards[i] - q.get(i, data.actions[i], data.positions[i])
    };
    let mean_w = w.iter().sum::<f64>() / n as f64;
    let sg = |wi: f64| -> f64 { wi / (1.0 - lambda + lambda * wi) };
    let round: Vec<f64> = match (kind, q) {
        (EstimatorKind::Ipw, _) => (0..n).map(|i| w[i].min(lambda) * data.rewards[i]).collect(),
        (EstimatorKind::Snipw, _) => {
            if mean_w == 0.0 {
                return Err(StatsError::invalid(
                    "action_dist",
                    "all importance weights are zero",
                ));
            }
            (0..n).map(|i| w[i] * data.rewards[i] / mean_w).collect()
        }
        (EstimatorKind::SgIpw, _) => (0..n).map(|i| sg(w[i]) * data.rewards[i]).collect(),
        (EstimatorKind::Dm, Some(q)) => (0..n).map(|i| dm_term(i, q)).collect(),
        (EstimatorKind::Dr, Some(q)) => (0..n)
            .map(|i| dm_term(i, q) + w[i].min(lambda) * residual(i, q))
            .collect(),
        (EstimatorKind::Sndr, Some(q)) => {
            if mean_w == 0.0 {
                return Err(StatsError::invalid(
                    "action_dist",
                    "all importance weights are zero",
                ));
            }
            (0..n)
                .map(|i| dm_term(i, q) + w[i] * residual(i, q) / mean_w)
                .collect()
        }
        (EstimatorKind::SwitchDr, Some(q)) => (0..n)
            .map(|i| {
                dm_term(i, q)
                    + if w[i] <= lambda {
                        w[i] * residual(i, q)
                    } else {
                        0.0
                    }
            })
            .collect(),
        (EstimatorKind::DrOs, Some(q)) => (0..n)
            .map(|i| {
                let denom = w[i] * w[i] + lambda;
                let shrunk = if denom > 0.0 {
                    lambda * w[i] / denom
                } else {
                    0.0
                };
                dm_term(i, q) + shrunk * residual(i, q)
            })
            .collect(),
        (EstimatorKind::SgDr, Some(q)) => (0..n)
            .map(|i| dm_term(i, q) + sg(w[i]) * residual(i, q))
            .collect(),
        (_, None) => {
            return Err(StatsError::invalid(
                "reward_model",
                "required for this estimator",
            ));
        }
    };
    Ok(round)
}

fn check_shape(t: &ActionTensor, data: &LoggedFeedback, field: &str) -> Result<()> {
    if t.n_actions() != data.n_actions || t.len_list() != data.len_list {
        return Err(StatsError::invalid(
            field,
            format!(
                "has {} actions × {} positions, the log has {} × {}",
                t.n_actions(),
                t.len_list(),
                data.n_actions,
                data.len_list
            ),
        ));
    }
    t.check_rows(data.actions.len(), field)
}

/// Mean and std(ddof = 1)/√n.
pub fn mean_and_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let ss: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt() / n.sqrt())
}

/// Smoothed-CTR reward model q̂(a, k) = (clicks(a, k) + w·CTR̄)/(impressions(a, k) + w),
/// context-free, shared by every row.
pub fn smoothed_ctr_model(data: &LoggedFeedback, prior_weight: f64) -> Result<ActionTensor> {
    data.validate()?;
    let w = non_negative("prior_weight", prior_weight)?;
    let (na, k) = (data.n_actions, data.len_list);
    let mut clicks = vec![0.0; na * k];
    let mut imps = vec![0.0; na * k];
    for i in 0..data.actions.len() {
        let j = data.actions[i] * k + data.positions[i];
        clicks[j] += data.rewards[i];
        imps[j] += 1.0;
    }
    let ctr = data.rewards.iter().sum::<f64>() / data.rewards.len() as f64;
    let values = clicks
        .iter()
        .zip(&imps)
        .map(|(&c, &m)| {
            if m + w > 0.0 {
                (c + w * ctr) / (m + w)
            } else {
                ctr
            }
        })
        .collect();
    ActionTensor::shared(na, k, values)
}

/// The uniform random policy over `n_actions` at every position.
pub fn uniform_policy(n_actions: usize, len_list: usize) -> Result<ActionTensor> {
    if n_actions == 0 {
        return Err(StatsError::invalid("n_actions", "must be > 0"));
    }
    ActionTensor::shared(
        n_actions,
        len_list,
        vec![1.0 / n_actions as f64; n_actions * len_list],
    )
}

/// A context-free softmax policy π(a) ∝ exp(β·score_a), identical at every position.
pub fn softmax_policy(scores: &[f64], beta: f64, len_list: usize) -> Result<ActionTensor> {
    let beta = finite("beta", beta)?;
    if scores.is_empty() {
        return Err(StatsError::invalid("scores", "needs at least one action"));
    }
    for (i, &s) in scores.iter().enumerate() {
        finite(&format!("scores[{i}]"), s)?;
    }
    let max = scores
        .iter()
        .map(|s| beta * s)
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (beta * s - max).exp()).collect();
    let total: f64 = e.iter().sum();
    let mut values = Vec::with_capacity(scores.len() * len_list);
    for x in &e {
        values.extend(std::iter::repeat_n(x / total, len_list));
    }
    ActionTensor::shared(scores.len(), len_list, values)
}
