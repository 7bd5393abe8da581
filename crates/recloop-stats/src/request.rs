//! The JSON contract of `recloop stats run`: request types per `kind`, and a dispatcher that
//! turns one request (or an array of them) into results or error objects naming the field.
//!
//! Kinds: `compare`, `srm`, `srm_sequential`, `adjust`, `msprt`, `ope`, plus `power` and
//! `group_sequential`. Datasets named in `ope` requests are loaded through a [`DatasetLoader`]
//! supplied by the caller (this crate does no I/O).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::compare::{CompareRequest, compare};
use crate::error::{Result, StatsError, finite, open_probability};
use crate::multiple::{adjusted_interval, benjamini_hochberg, bonferroni, holm};
use crate::ope::{
    ActionTensor, EstimatorKind, LoggedFeedback, OpeEstimate, estimate, smoothed_ctr_model,
    softmax_policy, uniform_policy,
};
use crate::power::{PowerSpec, minimum_detectable_effect, sample_size};
use crate::sequential::{MsprtRequest, lan_demets_bounds, msprt};
use crate::srm::{srm_chi2, srm_sequential};

/// `kind: "srm"`: fixed-horizon χ² SRM check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrmRequest {
    /// Observed units per arm.
    pub counts: Vec<f64>,
    /// Intended split (any positive scale); equal when absent.
    #[serde(default)]
    pub weights: Vec<f64>,
}

/// `kind: "srm_sequential"`: Dirichlet–multinomial sequential SRM test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrmSequentialRequest {
    /// Cumulative units per arm.
    pub counts: Vec<f64>,
    /// Intended split; equal when absent.
    #[serde(default)]
    pub weights: Vec<f64>,
    /// Dirichlet concentration k (default 10000, as Optimizely `ssrm`).
    #[serde(default = "default_concentration")]
    pub concentration: f64,
    /// p-value of the previous look (the result never exceeds it).
    #[serde(default)]
    pub previous_p: Option<f64>,
}

fn default_concentration() -> f64 {
    10000.0
}

/// Multiple-testing method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustMethod {
    /// Bonferroni.
    Bonferroni,
    /// Holm–Bonferroni.
    Holm,
    /// Benjamini–Hochberg.
    #[serde(alias = "benjamini_hochberg", alias = "fdr_bh")]
    Bh,
}

/// `kind: "adjust"`: adjust p-values (and optionally intervals) for multiple testing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Method.
    pub method: AdjustMethod,
    /// Raw p-values.
    pub p: Vec<f64>,
    /// Effect estimates, one per p-value, to get adjusted intervals.
    #[serde(default)]
    pub estimates: Option<Vec<f64>>,
    /// Level of the adjusted intervals.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_alpha() -> f64 {
    0.05
}

/// A numeric table of 2 (row, action) or 3 (row, action, position) dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NestedTable {
    /// (row, action).
    Rows2(Vec<Vec<f64>>),
    /// (row, action, position).
    Rows3(Vec<Vec<Vec<f64>>>),
}

/// Smoothed-CTR reward model parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmoothedCtr {
    /// Prior weight w in (clicks + w·CTR̄)/(impressions + w).
    pub prior_weight: f64,
}

/// A reward model: an explicit table, or one fitted from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RewardModelSpec {
    /// q̂ given row by row.
    Table(NestedTable),
    /// `{"smoothed_ctr": {"prior_weight": w}}`.
    Fitted {
        /// The smoothed-CTR model.
        smoothed_ctr: SmoothedCtr,
    },
}

/// Evaluation policy for dataset-based OPE requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySpec {
    /// Uniform over all actions at each position.
    Uniform,
    /// π(a) ∝ exp(β·feature(a)).
    Softmax {
        /// Item feature column used as score.
        item_feature: String,
        /// Inverse temperature β.
        beta: f64,
    },
    /// π(a) ∝ exp(β·score(a)) over explicit per-action scores (e.g. a model's predicted CTR).
    Scores {
        /// One score per action.
        scores: Vec<f64>,
        /// Inverse temperature β.
        beta: f64,
    },
}

impl PolicySpec {
    /// The policy's action distribution over `ds`'s actions and positions.
    pub fn tensor(&self, ds: &LoggedDataset) -> Result<ActionTensor> {
        let (n_actions, len_list) = (ds.feedback.n_actions, ds.feedback.len_list);
        match self {
            PolicySpec::Uniform => uniform_policy(n_actions, len_list),
            PolicySpec::Softmax { item_feature, beta } => {
                let scores = ds.item_features.get(item_feature).ok_or_else(|| {
                    StatsError::invalid(
                        "policy.softmax.item_feature",
                        format!(
                            "unknown item feature {item_feature:?}; available: {}",
                            ds.item_features
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                if scores.len() != n_actions {
                    return Err(StatsError::invalid(
                        "policy.softmax.item_feature",
                        "has one value per item missing",
                    ));
                }
                softmax_policy(scores, *beta, len_list).map_err(|e| e.within("policy.softmax"))
            }
            PolicySpec::Scores { scores, beta } => {
                if scores.len() != n_actions {
                    return Err(StatsError::invalid(
                        "policy.scores.scores",
                        format!("has {} scores for {n_actions} actions", scores.len()),
                    ));
                }
                softmax_policy(scores, *beta, len_list).map_err(|e| e.within("policy.scores"))
            }
        }
    }
}

/// A logged dataset named in an OPE request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Dataset name (`obd`).
    pub name: String,
    /// Behaviour policy (`random` | `bts`).
    #[serde(default = "default_behavior")]
    pub behavior: String,
    /// Campaign (`all` | `men` | `women`).
    #[serde(default = "default_campaign")]
    pub campaign: String,
}

fn default_behavior() -> String {
    "random".into()
}
fn default_campaign() -> String {
    "all".into()
}

/// Hyper-parameters of one estimator. `estimator` names the estimator when the map key is a label.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimatorParams {
    /// λ (clipping threshold, switch threshold, shrinkage or sub-Gaussian parameter).
    #[serde(default)]
    pub lambda: Option<f64>,
    /// Estimator name when the map key is a free label.
    #[serde(default)]
    pub estimator: Option<String>,
}

/// `kind: "ope"`: off-policy estimates from inline arrays or a named dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeRequest {
    /// Chosen actions.
    #[serde(default)]
    pub actions: Option<Vec<f64>>,
    /// Slate positions (default all 0).
    #[serde(default)]
    pub positions: Option<Vec<f64>>,
    /// Rewards.
    #[serde(default)]
    pub rewards: Option<Vec<f64>>,
    /// Behaviour propensities.
    #[serde(default)]
    pub pscores: Option<Vec<f64>>,
    /// Evaluation policy per row.
    #[serde(default)]
    pub action_dist: Option<NestedTable>,
    /// Named dataset instead of inline arrays.
    #[serde(default)]
    pub dataset: Option<DatasetSpec>,
    /// Evaluation policy for a named dataset.
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// Reward model (needed by DM and the DR family).
    #[serde(default)]
    pub reward_model: Option<RewardModelSpec>,
    /// Estimators to run: name (or label) → parameters. Default: every estimator with defaults.
    #[serde(default)]
    pub estimators: Option<BTreeMap<String, EstimatorParams>>,
}

/// `kind: "power"`: MDE for `n`, or the sample size for `effect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    /// Planning inputs.
    #[serde(flatten)]
    pub spec: PowerSpec,
    /// Control units (asks for the MDE).
    #[serde(default)]
    pub n: Option<f64>,
    /// Absolute effect (asks for the sample size).
    #[serde(default)]
    pub effect: Option<f64>,
}

/// `kind: "group_sequential"`: Lan–DeMets α·t^ρ bounds for planned looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSequentialRequest {
    /// Information fractions of the looks, increasing, in (0, 1].
    pub information: Vec<f64>,
    /// Overall level α.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Spending exponent ρ (default 2).
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// 1 or 2 sides (default 2).
    #[serde(default = "default_sides")]
    pub sides: u8,
}

fn default_rho() -> f64 {
    2.0
}
fn default_sides() -> u8 {
    2
}

/// A logged bandit dataset as loaded by a [`DatasetLoader`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoggedDataset {
    /// The feedback rows.
    pub feedback: LoggedFeedback,
    /// Item features by column name, indexed by action.
    pub item_features: BTreeMap<String, Vec<f64>>,
}

/// Why a [`DatasetLoader`] could not load a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The loader does not know the dataset's name.
    #[error("unknown dataset {name:?}; expected {expected}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names the loader knows.
        expected: String,
    },
    /// The dataset is known but could not be read (download, checksum, parse).
    #[error("{0}")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Loads named datasets for `ope` requests (implemented by callers that can do I/O).
pub trait DatasetLoader {
    /// Load the dataset; the error is reported under the field `dataset`.
    fn load(&self, spec: &DatasetSpec) -> std::result::Result<LoggedDataset, DatasetError>;
}

fn parse<T: DeserializeOwned>(value: &Value) -> Result<T> {
    let mut v = value.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("kind");
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        StatsError::invalid(field, e.into_inner().to_string())
    })
}

fn to_value<T: Serialize>(x: &T) -> Result<Value> {
    serde_json::to_value(x).map_err(|e| StatsError::invalid("result", e.to_string()))
}

/// Run one request; `datasets` resolves `ope` requests that name a dataset.
pub fn run_request(request: &Value, datasets: Option<&dyn DatasetLoader>) -> Result<Value> {
    let kind = match request.get("kind") {
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(StatsError::invalid("kind", "must be a string")),
        None => {
            if request.is_object() {
                return Err(StatsError::invalid("kind", "missing"));
            }
            return Err(StatsError::invalid("", "a request must be a JSON object"));
        }
    };
    match kind {
        "compare" => to_value(&compare(&parse::<CompareRequest>(request)?)?),
        "srm" => {
            let r: SrmRequest = parse(request)?;
            to_value(&srm_chi2(&r.counts, &r.weights)?)
        }
        "srm_sequential" => {
            let r: SrmSequentialRequest = parse(request)?;
            to_value(&srm_sequential(
                &r.counts,
                &r.weights,
                r.concentration,
                r.previous_p,
            )?)
        }
        "adjust" => {
            let r: AdjustRequest = parse(request)?;
            let p = match r.method {
                AdjustMethod::Bonferroni => bonferroni(&r.p)?,
                AdjustMethod::Holm => holm(&r.p)?,
                AdjustMethod::Bh => benjamini_hochberg(&r.p)?,
            };
            match r.estimates {
                None => Ok(json!({ "p": p })),
                Some(est) => {
                    if est.len() != p.len() {
                        return Err(StatsError::invalid(
                            "estimates",
                            "must have one entry per p-value",
                        ));
                    }
                    let ci = est
                        .iter()
                        .zip(&p)
                        .enumerate()
                        .map(|(i, (&e, &pa))| {
                            adjusted_interval(e, pa, r.alpha).map_err(|err| match err.field() {
                                "estimates" => {
                                    StatsError::invalid(format!("estimates[{i}]"), err.message())
                                }
                                _ => err,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok(json!({ "p": p, "ci": ci }))
                }
            }
        }
        "msprt" => to_value(&msprt(&parse::<MsprtRequest>(request)?)?),
        "ope" => to_value(&run_ope(&parse::<OpeRequest>(request)?, datasets)?),
        "power" => {
            let r: PowerRequest = parse(request)?;
            match (r.n, r.effect) {
                (Some(n), None) => Ok(json!({ "mde": minimum_detectable_effect(&r.spec, n)? })),
                (None, Some(effect)) => Ok(json!({ "n": sample_size(&r.spec, effect)? })),
                _ => Err(StatsError::invalid(
                    "n",
                    "give exactly one of n (for the MDE) or effect (for the sample size)",
                )),
            }
        }
        "group_sequential" => {
            let r: GroupSequentialRequest = parse(request)?;
            Ok(json!({ "bounds": lan_demets_bounds(&r.information, r.alpha, r.rho, r.sides)? }))
        }
        other => Err(StatsError::invalid(
            "kind",
            format!(
                "unknown kind {other:?}; expected one of compare, srm, srm_sequential, adjust, msprt, ope, power, group_sequential"
            ),
        )),
    }
}

/// The JSON error object for an error: `{"error": {"field": …, "message": …}}`.
pub fn error_value(e: &StatsError) -> Value {
    json!({ "error": { "field": e.field(), "message": e.message() } })
}

/// Run one request or an array of requests; each result is either the output object or an
/// error object. Never panics.
pub fn run_json(input: &Value, datasets: Option<&dyn DatasetLoader>) -> Value {
    let one = |v: &Value| run_request(v, datasets).unwrap_or_else(|e| error_value(&e));
    match input {
        Value::Array(items) => Value::Array(items.iter().map(one).collect()),
        other => one(other),
    }
}

fn index_list(field: &str, xs: &[f64]) -> Result<Vec<usize>> {
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = format!("{field}[{i}]");
            let x = finite(&f, x)?;
            if x < 0.0 || x.fract() != 0.0 || x > u32::MAX as f64 {
                return Err(StatsError::invalid(
                    f,
                    format!("must be a non-negative integer, got {x}"),
                ));
            }
            Ok(x as usize)
        })
        .collect()
}

fn tensor(field: &str, t: &NestedTable, rows: usize, len_list: usize) -> Result<ActionTensor> {
    match t {
        NestedTable::Rows2(r) => {
            if r.len() != rows {
                return Err(StatsError::invalid(
                    field,
                    format!("has {} rows, the log has {rows}", r.len()),
                ));
            }
            let na = r.first().map_or(0, Vec::len);
            let mut values = Vec::with_capacity(rows * na * len_list);
            for (i, row) in r.iter().enumerate() {
                if row.len() != na {
                    return Err(StatsError::invalid(
                        format!("{field}[{i}]"),
                        format!("has {} actions, expected {na}", row.len()),
                    ));
                }
                for &v in row {
                    values.extend(std::iter::repeat_n(v, len_list));
                }
            }
            ActionTensor::per_row(rows, na, len_list, values)
                .map_err(|e| StatsError::invalid(field, e.message()))
        }
        NestedTable::Rows3(r) => {
            if r.len() != rows {
                return Err(StatsError::invalid(
                    field,
                    format!("has {} rows, the log has {rows}", r.len()),
                ));
            }
            let na = r.first().map_or(0, Vec::len);
            let k = r.first().and_then(|a| a.first()).map_or(0, Vec::len);
            let mut values = Vec::with_capacity(rows * na * k);
            for (i, row) in r.iter().enumerate() {
                if row.len() != na {
                    return Err(StatsError::invalid(
                        format!("{field}[{i}]"),
                        format!("has {} actions, expected {na}", row.len()),
                    ));
                }
                for (a, pos) in row.iter().enumerate() {
                    if pos.len() != k {
                        return Err(StatsError::invalid(
                            format!("{field}[{i}][{a}]"),
                            format!("has {} positions, expected {k}", pos.len()),
                        ));
                    }
                    values.extend_from_slice(pos);
                }
            }
            ActionTensor::per_row(rows, na, k, values)
                .map_err(|e| StatsError::invalid(field, e.message()))
        }
    }
}

/// Evaluate an OPE request; named datasets are loaded through `datasets`.
pub fn run_ope(
    req: &OpeRequest,
    datasets: Option<&dyn DatasetLoader>,
) -> Result<BTreeMap<String, OpeEstimate>> {
    let (data, policy) = match &req.dataset {
        Some(spec) => {
            if req.actions.is_some() || req.action_dist.is_some() {
                return Err(StatsError::invalid(
                    "dataset",
                    "give either a dataset or inline arrays, not both",
                ));
            }
            let loader = datasets.ok_or_else(|| {
                StatsError::invalid("dataset", "no dataset loader is available here")
            })?;
            let ds = loader
                .load(spec)
                .map_err(|e| StatsError::invalid("dataset", e.to_string()))?;
            ds.feedback.validate().map_err(|e| e.within("dataset"))?;
            let policy = req
                .policy
                .as_ref()
                .unwrap_or(&PolicySpec::Uniform)
                .tensor(&ds)?;
            (ds.feedback, policy)
        }
        None => {
            if req.policy.is_some() {
                return Err(StatsError::invalid(
                    "policy",
                    "only used with a dataset; give action_dist for inline data",
                ));
            }
            let actions = index_list(
                "actions",
                req.actions
                    .as_deref()
                    .ok_or_else(|| StatsError::invalid("actions", "required"))?,
            )?;
            let n = actions.len();
            let positions = match &req.positions {
                Some(p) => index_list("positions", p)?,
                None => vec![0; n],
            };
            let rewards = req
                .rewards
                .clone()
                .ok_or_else(|| StatsError::invalid("rewards", "required"))?;
            let pscores = req
                .pscores
                .clone()
                .ok_or_else(|| StatsError::invalid("pscores", "required"))?;
            let ad = req
                .action_dist
                .as_ref()
                .ok_or_else(|| StatsError::invalid("action_dist", "required"))?;
            let len_list = match ad {
                NestedTable::Rows2(_) => positions.iter().max().map_or(1, |m| m + 1),
                NestedTable::Rows3(r) => r.first().and_then(|a| a.first()).map_or(0, Vec::len),
            };
            let policy = tensor("action_dist", ad, n, len_list)?;
            let data = LoggedFeedback {
                actions,
                positions,
                rewards,
                pscores,
                n_actions: policy.n_actions(),
                len_list: policy.len_list(),
            };
            data.validate()?;
            (data, policy)
        }
    };
    let reward_model = match &req.reward_model {
        None => None,
        Some(RewardModelSpec::Fitted { smoothed_ctr }) => Some(
            smoothed_ctr_model(&data, smoothed_ctr.prior_weight)
                .map_err(|e| e.within("reward_model.smoothed_ctr"))?,
        ),
        Some(RewardModelSpec::Table(t)) => Some(tensor(
            "reward_model",
            t,
            data.actions.len(),
            data.len_list,
        )?),
    };
    let estimators = match &req.estimators {
        Some(m) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(StatsError::invalid(
                "estimators",
                "must name at least one estimator",
            ));
        }
        None => {
            let mut m = BTreeMap::new();
            for name in [
                "ipw",
                "snipw",
                "dm",
                "dr",
                "sndr",
                "switch_dr",
                "dr_os",
                "sg_ipw",
                "sg_dr",
            ] {
                let kind = EstimatorKind::from_name(name);
                if reward_model.is_none() && kind.is_some_and(EstimatorKind::needs_reward_model) {
                    continue;
                }
                m.insert(name.to_string(), EstimatorParams::default());
            }
            m
        }
    };
    let mut out = BTreeMap::new();
    for (label, params) in &estimators {
        let field = format!("estimators.{label}");
        let name = params.estimator.as_deref().unwrap_or(label);
        let kind = EstimatorKind::from_name(name).ok_or_else(|| {
            StatsError::invalid(
                field.clone(),
                format!("unknown estimator {name:?}; expected ipw, snipw, dm, dr, sndr, switch_dr, dr_os, sg_ipw, sg_dr"),
            )
        })?;
        let est =
            estimate(&data, &policy, reward_model.as_ref(), kind, params.lambda).map_err(|e| {
                match e.field() {
                    "lambda" => e.within(&field),
                    _ => e,
                }
            })?;
        out.insert(label.clone(), est);
    }
    Ok(out)
}

/// Validate a level α (exposed for callers building requests by hand).
pub fn check_alpha(alpha: f64) -> Result<f64> {
    open_probability("alpha", alpha)
}
