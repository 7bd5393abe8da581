//! The typed mutation space over `pipeline.toml` that the built-in brain searches.
//!
//! A [`Mutation`] switches or blends models, tunes a hyper-parameter (log-scale search ranges per
//! parameter), changes normalisation or weights, or changes the reranking stage. Applying it to a
//! [`PipelineSpec`] gives the candidate's spec; [`features`] turns a spec into the coordinates the
//! TPE search models.

use rand::Rng;
use recloop_rec::ModelKind;
use recloop_rec::pipeline::params::{ALL_KINDS, kind_name};
use recloop_rec::pipeline::{CandidateModelSpec, Normalize, PipelineSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Search range of one hyper-parameter (narrower than its valid range: where good values live).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Smallest value searched.
    pub lo: f64,
    /// Largest value searched.
    pub hi: f64,
    /// Search on a log scale.
    pub log: bool,
    /// Whole numbers only.
    pub integer: bool,
}

impl Range {
    /// A range from `lo` to `hi`.
    pub const fn new(lo: f64, hi: f64, log: bool, integer: bool) -> Range {
        Range {
            lo,
            hi,
            log,
            integer,
        }
    }

    /// Map a value to [0, 1] in search coordinates.
    pub fn to_unit(&self, v: f64) -> f64 {
        let (a, b, x) = if self.log {
            (self.lo.ln(), self.hi.ln(), v.max(1e-12).ln())
        } else {
            (self.lo, self.hi, v)
        };
        if b > a {
            ((x - a) / (b - a)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// Map a unit coordinate back to a value (rounded for integers).
    pub fn from_unit(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        let v = if self.log {
            (self.lo.ln() + u * (self.hi.ln() - self.lo.ln())).exp()
        } else {
            self.lo + u * (self.hi - self.lo)
        };
        if self.integer {
            v.round()
        } else {
            round_sig(v)
        }
    }
}

/// Round to 3 significant digits (keeps specs readable and comparable).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let d = 3 - v.abs().log10().ceil() as i32;
    let f = 10f64.powi(d);
    (v * f).round() / f
}

/// Search range of `param` of `kind`, if searched.
pub fn param_range(kind: ModelKind, param: &str) -> Option<Range> {
    Some(match (kind, param) {
        (ModelKind::ItemKnn, "k") => Range::new(5.0, 400.0, true, true),
        (ModelKind::Ease, "lambda") => Range::new(10.0, 5000.0, true, false),
        (ModelKind::Ials, "factors") => Range::new(16.0, 128.0, true, true),
        (ModelKind::Ials, "reg") => Range::new(0.001, 10.0, true, false),
        (ModelKind::Ials, "alpha") => Range::new(0.1, 30.0, true, false),
        (ModelKind::Ials, "iterations") => Range::new(5.0, 20.0, false, true),
        (ModelKind::Bpr, "factors") => Range::new(16.0, 128.0, true, true),
        (ModelKind::Bpr, "lr") => Range::new(0.005, 0.2, true, false),
        (ModelKind::Bpr, "reg") => Range::new(1e-5, 0.05, true, false),
        (ModelKind::Bpr, "epochs") => Range::new(10.0, 60.0, true, true),
        _ => return None,
    })
}

/// Searched parameters of a kind.
pub fn searched_params(kind: ModelKind) -> &'static [&'static str] {
    match kind {
        ModelKind::MostPop => &[],
        ModelKind::ItemKnn => &["k"],
        ModelKind::Ease => &["lambda"],
        ModelKind::Ials => &["factors", "reg", "alpha", "iterations"],
        ModelKind::Bpr => &["factors", "lr", "reg", "epochs"],
    }
}

/// Range of a blend weight.
pub const WEIGHT: Range = Range::new(0.05, 2.0, true, false);
/// Range of the MMR trade-off.
pub const MMR: Range = Range::new(0.0, 0.5, false, false);
/// Range of the popularity penalty.
pub const POP_PENALTY: Range = Range::new(0.0, 1.0, false, false);
/// Genre caps searched.
pub const GENRE_CAPS: [usize; 5] = [0, 2, 3, 4, 5];

/// The search ranges as JSON (per model kind its searched parameters, the blend weight, the
/// normalisations, the reranking ranges), so another optimiser can search the same space.
pub fn ranges_json() -> serde_json::Value {
    let range =
        |r: Range| serde_json::json!({"lo": r.lo, "hi": r.hi, "log": r.log, "integer": r.integer});
    let params: serde_json::Map<String, serde_json::Value> = ALL_KINDS
        .iter()
        .map(|k| {
            let p: serde_json::Map<String, serde_json::Value> = searched_params(*k)
                .iter()
                .filter_map(|p| Some(((*p).to_string(), range(param_range(*k, p)?))))
                .collect();
            (kind_name(*k).to_string(), serde_json::Value::Object(p))
        })
        .collect();
    serde_json::json!({
        "params": params,
        "weight": range(WEIGHT),
        "normalize": ["none", "minmax", "zscore", "rank"],
        "mmr_lambda": range(MMR),
        "popularity_penalty": range(POP_PENALTY),
        "genre_caps": GENRE_CAPS,
    })
}

/// One typed change to a pipeline specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Set a hyper-parameter of the model labelled `model`.
    SetParam {
        /// Model label.
        model: String,
        /// Parameter name.
        param: String,
        /// New value.
        value: f64,
    },
    /// Replace the model labelled `model` with another kind.
    SwitchModel {
        /// Model label replaced.
        model: String,
        /// New kind.
        kind: String,
        /// Its hyper-parameters.
        params: BTreeMap<String, f64>,
    },
    /// Add a model to the blend.
    AddModel {
        /// Kind.
        kind: String,
        /// Blend weight.
        weight: f64,
        /// Hyper-parameters.
        params: BTreeMap<String, f64>,
    },
    /// Remove a model from the blend.
    RemoveModel {
        /// Model label.
        model: String,
    },
    /// Change a blend weight.
    SetWeight {
        /// Model label.
        model: String,
        /// New weight.
        weight: f64,
    },
    /// Change the score normalisation before blending.
    SetNormalize {
        /// `none` | `minmax` | `zscore` | `rank`.
        normalize: String,
    },
    /// Change a reranking field (`mmr_lambda`, `popularity_penalty`, `genre_cap`).
    SetRerank {
        /// Field.
        field: String,
        /// New value.
        value: f64,
    },
    /// Change what the models learn from: interactions rated below `min_rating` are not
    /// positives (the reward persona's lever).
    SetPositives {
        /// New threshold (0: every interaction).
        min_rating: f64,
    },
}

/// The thresholds the reward persona tries for `[positives] min_rating` (ratings are 1–5).
pub const MIN_RATINGS: [f64; 5] = [0.0, 2.0, 3.0, 4.0, 5.0];

/// The model kind named `s` (`ease`, `ials`, ...).
pub fn parse_kind(s: &str) -> Option<ModelKind> {
    ALL_KINDS.iter().copied().find(|k| kind_name(*k) == s)
}

fn normalize_name(n: Normalize) -> &'static str {
    match n {
        Normalize::None => "none",
        Normalize::MinMax => "minmax",
        Normalize::ZScore => "zscore",
        Normalize::Rank => "rank",
    }
}

fn parse_normalize(s: &str) -> Option<Normalize> {
    Some(match s {
        "none" => Normalize::None,
        "minmax" => Normalize::MinMax,
        "zscore" => Normalize::ZScore,
        "rank" => Normalize::Rank,
        _ => return None,
    })
}

impl Mutation {
    /// The lever this mutation pulls (index field of experiments and failure assets).
    pub fn lever(&self) -> String {
        match self {
            Mutation::SetParam { param, model, .. } => format!("model.{model}.{param}"),
            Mutation::SwitchModel { kind, .. } => format!("candidates.switch.{kind}"),
            Mutation::AddModel { kind, .. } => format!("blend.add.{kind}"),
            Mutation::RemoveModel { model } => format!("blend.remove.{model}"),
            Mutation::SetWeight { model, .. } => format!("blend.weight.{model}"),
            Mutation::SetNormalize { normalize } => format!("blend.normalize.{normalize}"),
            Mutation::SetRerank { field, .. } => format!("rerank.{field}"),
            Mutation::SetPositives { .. } => "positives.min_rating".into(),
        }
    }

    /// The pipeline stage it touches.
    pub fn stage(&self) -> &'static str {
        match self {
            Mutation::SetParam { .. } | Mutation::SwitchModel { .. } => "candidates",
            Mutation::AddModel { .. }
            | Mutation::RemoveModel { .. }
            | Mutation::SetWeight { .. }
            | Mutation::SetNormalize { .. } => "blend",
            Mutation::SetRerank { .. } => "rerank",
            Mutation::SetPositives { .. } => "positives",
        }
    }

    /// Whether it changes the structure of the pipeline (explore) rather than a value (exploit).
    pub fn is_structural(&self) -> bool {
        matches!(
            self,
            Mutation::SwitchModel { .. }
                | Mutation::AddModel { .. }
                | Mutation::RemoveModel { .. }
                | Mutation::SetNormalize { .. }
        )
    }

    /// Whether a failed step on this lever predicts that a longer step the same way fails too
    /// (true for hyper-parameters, weights and rerank strengths; false for the positives
    /// threshold, where each threshold is a different training set: a no-op threshold that
    /// failed says nothing about a stricter one).
    pub fn is_monotone(&self) -> bool {
        !matches!(self, Mutation::SetPositives { .. })
    }

    /// Old and new value of a numeric lever relative to `base` (None for structural changes).
    pub fn numeric_change(&self, base: &PipelineSpec) -> Option<(f64, f64)> {
        match self {
            Mutation::SetParam {
                model,
                param,
                value,
            } => {
                let old = base
                    .models
                    .iter()
                    .find(|m| &m.name == model)
                    .map(|m| {
                        recloop_rec::pipeline::params::resolve(m.kind, &m.params)
                            .get(param.as_str())
                            .copied()
                            .unwrap_or(0.0)
                    })
                    .unwrap_or(0.0);
                Some((old, *value))
            }
            Mutation::SetWeight { model, weight } => {
                let old = base
                    .models
                    .iter()
                    .find(|m| &m.name == model)
                    .map_or(1.0, |m| m.weight);
                Some((old, *weight))
            }
            Mutation::SetRerank { field, value } => {
                let r = &base.rerank;
                let old = match field.as_str() {
                    "mmr_lambda" => r.mmr_lambda,
                    "popularity_penalty" => r.popularity_penalty,
                    "genre_cap" => r.genre_cap as f64,
                    _ => 0.0,
                };
                Some((old, *value))
            }
            Mutation::SetPositives { min_rating } => Some((base.positives.min_rating, *min_rating)),
            _ => None,
        }
    }

    /// Sign of the change of a numeric lever relative to `base` (+1 up, −1 down, 0 structural).
    pub fn direction(&self, base: &PipelineSpec) -> i8 {
        match self.numeric_change(base) {
            Some((old, new)) if new > old => 1,
            Some((old, new)) if new < old => -1,
            _ => 0,
        }
    }

    /// How far a numeric lever moves from `base`: the distance of the logarithms when both values
    /// are positive (λ 50 → 100 is as far as 500 → 1000), else the absolute difference; 0 for
    /// structural changes.
    pub fn step_size(&self, base: &PipelineSpec) -> f64 {
        match self.numeric_change(base) {
            Some((old, new)) if old > 0.0 && new > 0.0 => (new.ln() - old.ln()).abs(),
            Some((old, new)) => (new - old).abs(),
            None => 0.0,
        }
    }

    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            Mutation::SetParam {
                model,
                param,
                value,
            } => format!("set {model}.{param} = {value}"),
            Mutation::SwitchModel {
                model,
                kind,
                params,
            } => {
                format!("replace {model} with {kind} {}", fmt_params(params))
            }
            Mutation::AddModel {
                kind,
                weight,
                params,
            } => {
                format!("blend in {kind} (weight {weight}) {}", fmt_params(params))
            }
            Mutation::RemoveModel { model } => format!("remove {model} from the blend"),
            Mutation::SetWeight { model, weight } => {
                format!("set the blend weight of {model} to {weight}")
            }
            Mutation::SetNormalize { normalize } => format!("normalise scores with {normalize}"),
            Mutation::SetRerank { field, value } => format!("set rerank.{field} = {value}"),
            Mutation::SetPositives { min_rating } if *min_rating <= 0.0 => {
                "learn from every interaction (no positives threshold)".into()
            }
            Mutation::SetPositives { min_rating } => {
                format!("learn only from interactions rated ≥ {min_rating} (positives.min_rating)")
            }
        }
    }

    /// Apply to `base`; `None` when the mutation does not fit the spec (unknown label, etc.).
    pub fn apply(&self, base: &PipelineSpec) -> Option<PipelineSpec> {
        let mut s = base.clone();
        match self {
            Mutation::SetParam {
                model,
                param,
                value,
            } => {
                let m = s.models.iter_mut().find(|m| &m.name == model)?;
                param_range(m.kind, param)?;
                m.params.insert(param.clone(), *value);
            }
            Mutation::SwitchModel {
                model,
                kind,
                params,
            } => {
                let k = parse_kind(kind)?;
                if s.models.iter().any(|m| m.kind == k) {
                    return None;
                }
                let m = s.models.iter_mut().find(|m| &m.name == model)?;
                m.kind = k;
                m.name = kind.clone();
                m.params = params.clone();
            }
            Mutation::AddModel {
                kind,
                weight,
                params,
            } => {
                let k = parse_kind(kind)?;
                if s.models.iter().any(|m| m.kind == k || &m.name == kind) || s.models.len() >= 3 {
                    return None;
                }
                s.models.push(CandidateModelSpec {
                    name: kind.clone(),
                    kind: k,
                    weight: *weight,
                    params: params.clone(),
                });
            }
            Mutation::RemoveModel { model } => {
                if s.models.len() < 2 {
                    return None;
                }
                let before = s.models.len();
                s.models.retain(|m| &m.name != model);
                if s.models.len() == before {
                    return None;
                }
            }
            Mutation::SetWeight { model, weight } => {
                if s.models.len() < 2 {
                    return None;
                }
                s.models.iter_mut().find(|m| &m.name == model)?.weight = *weight;
            }
            Mutation::SetNormalize { normalize } => {
                if s.models.len() < 2 {
                    return None;
                }
                s.blend.normalize = parse_normalize(normalize)?;
            }
            Mutation::SetRerank { field, value } => match field.as_str() {
                "mmr_lambda" => s.rerank.mmr_lambda = *value,
                "popularity_penalty" => s.rerank.popularity_penalty = *value,
                "genre_cap" => s.rerank.genre_cap = *value as usize,
                _ => return None,
            },
            Mutation::SetPositives { min_rating } => {
                if !(0.0..=5.0).contains(min_rating) {
                    return None;
                }
                s.positives.min_rating = *min_rating;
            }
        }
        (s != *base).then_some(s)
    }
}

fn fmt_params(p: &BTreeMap<String, f64>) -> String {
    if p.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("({})", inner.join(", "))
}

/// Canonical hash of a spec (the avoid set's key).
pub fn spec_hash(spec: &PipelineSpec) -> String {
    let mut s = spec.clone();
    s.models.sort_by(|a, b| a.name.cmp(&b.name));
    let json = serde_json::to_string(&s).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))[..16].to_string()
}

/// How far a sampled mutation may move from the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Small steps around current values (exploit).
    Local,
    /// Anywhere in the space (explore / novel).
    Global,
}

/// Parameters of `kind` near the centre of its search ranges (within ±0.3 in unit coordinates).
pub fn sample_params<R: Rng>(kind: ModelKind, rng: &mut R) -> BTreeMap<String, f64> {
    let mut p = BTreeMap::new();
    for name in searched_params(kind) {
        if let Some(r) = param_range(kind, name) {
            // Start near the middle of the range: a sensible default region.
            let u = (0.5 + (rng.random::<f64>() - 0.5) * 0.6).clamp(0.0, 1.0);
            p.insert((*name).to_string(), r.from_unit(u));
        }
    }
    p
}

/// How [`sample_with`] moves: the built-in brain's policy (`crate::brain::policy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchRates {
    /// Probability that a local move is structural.
    pub local_structural: f64,
    /// Probability that a global move is structural.
    pub global_structural: f64,
    /// Width of a local move in unit coordinates.
    pub local_step: f64,
}

impl Default for SearchRates {
    fn default() -> Self {
        SearchRates {
            local_structural: 0.15,
            global_structural: 0.6,
            local_step: 0.4,
        }
    }
}

fn local_value<R: Rng>(r: &Range, current: f64, width: f64, rng: &mut R) -> f64 {
    let u = r.to_unit(current);
    let step = (rng.random::<f64>() - 0.5) * width;
    let mut v = r.from_unit(u + step);
    if v == current {
        v = r.from_unit(u + if step >= 0.0 { 0.1 } else { -0.1 });
    }
    v
}

/// Sample one mutation of `base` at the default rates. Returns `None` when the sampled kind
/// does not fit.
pub fn sample<R: Rng>(base: &PipelineSpec, step: Step, rng: &mut R) -> Option<Mutation> {
    sample_with(base, step, &SearchRates::default(), rng)
}

/// Sample one mutation of `base` at `rates`. Returns `None` when the sampled kind does not fit.
pub fn sample_with<R: Rng>(
    base: &PipelineSpec,
    step: Step,
    rates: &SearchRates,
    rng: &mut R,
) -> Option<Mutation> {
    let structural = match step {
        Step::Local => rng.random::<f64>() < rates.local_structural,
        Step::Global => rng.random::<f64>() < rates.global_structural,
    };
    if structural {
        let absent: Vec<ModelKind> = ALL_KINDS
            .iter()
            .copied()
            .filter(|k| !base.models.iter().any(|m| m.kind == *k))
            .collect();
        match rng.random_range(0..4u8) {
            0 | 1 if !absent.is_empty() => {
                let k = absent[rng.random_range(0..absent.len())];
                let params = sample_params(k, rng);
                if rng.random::<f64>() < 0.5 || base.models.len() >= 3 {
                    let victim = &base.models[rng.random_range(0..base.models.len())];
                    Some(Mutation::SwitchModel {
                        model: victim.name.clone(),
                        kind: kind_name(k).to_string(),
                        params,
                    })
                } else {
                    Some(Mutation::AddModel {
                        kind: kind_name(k).to_string(),
                        weight: WEIGHT.from_unit(rng.random_range(0.3..0.8)),
                        params,
                    })
                }
            }
            2 if base.models.len() >= 2 => Some(Mutation::RemoveModel {
                model: base.models[rng.random_range(0..base.models.len())]
                    .name
                    .clone(),
            }),
            _ if base.models.len() >= 2 => {
                let n = ["none", "minmax", "zscore", "rank"][rng.random_range(0..4)];
                Some(Mutation::SetNormalize {
                    normalize: n.to_string(),
                })
            }
            _ => None,
        }
    } else {
        // Value changes: parameters, weights, rerank.
        let roll = rng.random::<f64>();
        let tunable: Vec<(&CandidateModelSpec, &str)> = base
            .models
            .iter()
            .flat_map(|m| searched_params(m.kind).iter().map(move |p| (m, *p)))
            .collect();
        if roll < 0.6 && !tunable.is_empty() {
            let (m, p) = tunable[rng.random_range(0..tunable.len())];
            let r = param_range(m.kind, p)?;
            let current = recloop_rec::pipeline::params::resolve(m.kind, &m.params)
                .get(p)
                .copied()
                .unwrap_or(r.from_unit(0.5));
            let value = match step {
                Step::Local => local_value(&r, current, rates.local_step, rng),
                Step::Global => r.from_unit(rng.random()),
            };
            Some(Mutation::SetParam {
                model: m.name.clone(),
                param: p.to_string(),
                value,
            })
        } else if roll < 0.75 && base.models.len() >= 2 {
            let m = &base.models[rng.random_range(0..base.models.len())];
            let weight = match step {
                Step::Local => local_value(&WEIGHT, m.weight, rates.local_step, rng),
                Step::Global => WEIGHT.from_unit(rng.random()),
            };
            Some(Mutation::SetWeight {
                model: m.name.clone(),
                weight,
            })
        } else {
            let r = &base.rerank;
            match rng.random_range(0..3u8) {
                0 => Some(Mutation::SetRerank {
                    field: "mmr_lambda".into(),
                    value: match step {
                        Step::Local => local_value(&MMR, r.mmr_lambda, rates.local_step, rng),
                        Step::Global => MMR.from_unit(rng.random()),
                    },
                }),
                1 => Some(Mutation::SetRerank {
                    field: "popularity_penalty".into(),
                    value: match step {
                        Step::Local => {
                            local_value(&POP_PENALTY, r.popularity_penalty, rates.local_step, rng)
                        }
                        Step::Global => POP_PENALTY.from_unit(rng.random()),
                    },
                }),
                _ => Some(Mutation::SetRerank {
                    field: "genre_cap".into(),
                    value: GENRE_CAPS[rng.random_range(0..GENRE_CAPS.len())] as f64,
                }),
            }
        }
    }
}

/// Sample one change of what the models learn from (the reward persona's space): a neighbouring
/// threshold (`Local`) or any other one (`Global`).
pub fn sample_positives<R: Rng>(base: &PipelineSpec, step: Step, rng: &mut R) -> Option<Mutation> {
    let current = base.positives.min_rating;
    let at = MIN_RATINGS
        .iter()
        .position(|&v| v >= current)
        .unwrap_or(MIN_RATINGS.len() - 1);
    let choices: Vec<f64> = match step {
        Step::Local => [at.checked_sub(1), Some(at + 1)]
            .into_iter()
            .flatten()
            .filter_map(|k| MIN_RATINGS.get(k).copied())
            .collect(),
        Step::Global => MIN_RATINGS.to_vec(),
    };
    let choices: Vec<f64> = choices.into_iter().filter(|&v| v != current).collect();
    if choices.is_empty() {
        return None;
    }
    Some(Mutation::SetPositives {
        min_rating: choices[rng.random_range(0..choices.len())],
    })
}

/// Sample one mutation for a persona whose scope is `in_scope`: [`sample`]'s draw when it is in
/// scope, else, when `positives` (the persona may change what the models learn from), a change
/// of the positives ([`sample_positives`]). The generalist passes `positives = false`: it
/// searches the space of [`sample`] only.
pub fn sample_in_scope<R: Rng>(
    base: &PipelineSpec,
    step: Step,
    rates: &SearchRates,
    in_scope: &dyn Fn(&str) -> bool,
    positives: bool,
    rng: &mut R,
) -> Option<Mutation> {
    if let Some(m) = sample_with(base, step, rates, rng)
        && in_scope(&m.lever())
    {
        return Some(m);
    }
    if positives {
        return sample_positives(base, step, rng);
    }
    None
}

/// A coordinate of a spec in the search space.
#[derive(Debug, Clone, PartialEq)]
pub enum Coord {
    /// A number in [0, 1].
    Num(f64),
    /// A category.
    Cat(String),
}

/// The coordinates of a spec: model presence, weights and parameters, normalisation, rerank.
pub fn features(spec: &PipelineSpec) -> BTreeMap<String, Coord> {
    let mut f = BTreeMap::new();
    for k in ALL_KINDS {
        let name = kind_name(k);
        let m = spec.models.iter().find(|m| m.kind == k);
        f.insert(
            format!("{name}.present"),
            Coord::Cat(if m.is_some() { "1" } else { "0" }.into()),
        );
        if let Some(m) = m {
            if spec.models.len() > 1 {
                f.insert(
                    format!("{name}.weight"),
                    Coord::Num(WEIGHT.to_unit(m.weight)),
                );
            }
            let resolved = recloop_rec::pipeline::params::resolve(k, &m.params);
            for p in searched_params(k) {
                if let (Some(r), Some(v)) = (param_range(k, p), resolved.get(p)) {
                    f.insert(format!("{name}.{p}"), Coord::Num(r.to_unit(*v)));
                }
            }
        }
    }
    f.insert(
        "blend.normalize".into(),
        Coord::Cat(normalize_name(spec.blend.normalize).into()),
    );
    f.insert(
        "rerank.mmr_lambda".into(),
        Coord::Num(MMR.to_unit(spec.rerank.mmr_lambda)),
    );
    f.insert(
        "rerank.popularity_penalty".into(),
        Coord::Num(POP_PENALTY.to_unit(spec.rerank.popularity_penalty)),
    );
    f.insert(
        "rerank.genre_cap".into(),
        Coord::Cat(spec.rerank.genre_cap.to_string()),
    );
    f.insert(
        "positives.min_rating".into(),
        Coord::Cat(spec.positives.min_rating.to_string()),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(crate) fn mostpop() -> PipelineSpec {
        toml::from_str("[[models]]\nname = \"mostpop\"\nkind = \"mostpop\"\n").unwrap()
    }

    #[test]
    fn ranges_round_trip() {
        let r = param_range(ModelKind::Ease, "lambda").unwrap();
        assert!((r.from_unit(r.to_unit(500.0)) - 500.0).abs() < 1.0);
        assert_eq!(r.from_unit(0.0), 10.0);
        let k = param_range(ModelKind::ItemKnn, "k").unwrap();
        assert_eq!(k.from_unit(0.33).fract(), 0.0);
    }

    #[test]
    fn sampled_mutations_apply_and_validate() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut spec = mostpop();
        let mut applied = 0;
        for i in 0..400 {
            let step = if i % 2 == 0 {
                Step::Local
            } else {
                Step::Global
            };
            let Some(m) = sample(&spec, step, &mut rng) else {
                continue;
            };
            let Some(next) = m.apply(&spec) else { continue };
            let text = toml::to_string(&next).unwrap();
            PipelineSpec::parse(&text, std::path::Path::new("pipeline.toml"), None)
                .unwrap_or_else(|e| panic!("{m:?} gave an invalid spec: {e}\n{text}"));
            assert_ne!(spec_hash(&next), spec_hash(&spec));
            spec = next;
            applied += 1;
        }
        assert!(applied > 100, "{applied}");
    }

    #[test]
    fn levers_and_directions() {
        let base: PipelineSpec = toml::from_str(
            "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 500.0\n",
        )
        .unwrap();
        let m = Mutation::SetParam {
            model: "ease".into(),
            param: "lambda".into(),
            value: 200.0,
        };
        assert_eq!(m.lever(), "model.ease.lambda");
        assert_eq!(m.direction(&base), -1);
        assert!(m.apply(&base).is_some());
        let same = Mutation::SetParam {
            model: "ease".into(),
            param: "lambda".into(),
            value: 500.0,
        };
        assert!(same.apply(&base).is_none());
        let f = features(&base);
        assert_eq!(f["ease.present"], Coord::Cat("1".into()));
        assert_eq!(f["ials.present"], Coord::Cat("0".into()));
    }
}
