//! Serde types of `pipeline.toml`.
//!
//! ```toml
//! [[models]]
//! name = "ease"            # a label, unique in the file
//! kind = "ease"            # mostpop | itemknn | ease | ials | bpr
//! weight = 1.0             # weight in the blend
//! [models.params]
//! lambda = 500.0
//!
//! [blend]
//! normalize = "zscore"     # none | minmax | zscore | rank
//!
//! [rerank]
//! candidates = 100         # how many blended items reach the reranker
//! mmr_lambda = 0.0         # 0 = relevance only, 1 = diversity only
//! popularity_penalty = 0.0 # β: score − β·log(1 + popularity)
//! genre_cap = 0            # max items per genre in the top k (0 = no cap)
//!
//! [script]
//! path = "scripts/score.rhai"   # optional
//!
//! [positives]
//! min_rating = 4.0         # what the models learn from: interactions rated at least this
//!                          # (0 = every interaction; the default)
//! ```

use crate::models::ModelKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Candidate models; at least one.
    pub models: Vec<CandidateModelSpec>,
    /// How model scores are combined.
    #[serde(default)]
    pub blend: BlendSpec,
    /// The reranking stage.
    #[serde(default)]
    pub rerank: RerankSpec,
    /// Optional scoring script.
    #[serde(default)]
    pub script: Option<ScriptSpec>,
    /// What the models learn from (omitted from the file while it is the default).
    #[serde(default, skip_serializing_if = "PositivesSpec::is_default")]
    pub positives: PositivesSpec,
}

/// `[positives]`: which interactions count as positives when the models are fitted. Evaluation
/// and the items masked from recommendation are unchanged: every interaction still counts there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositivesSpec {
    /// Interactions rated below this are left out of training (0: every interaction).
    #[serde(default)]
    pub min_rating: f64,
}

impl PositivesSpec {
    /// True when every interaction is a positive (the default).
    pub fn is_default(&self) -> bool {
        self.min_rating <= 0.0
    }
}

/// One candidate model with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateModelSpec {
    /// Label, unique within the pipeline (used by the script as `scores.<name>`).
    pub name: String,
    /// Model family.
    pub kind: ModelKind,
    /// Weight in the blend.
    #[serde(default = "one")]
    pub weight: f64,
    /// Hyper-parameters by name (validated per model kind).
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

/// Score normalisation before blending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    None,
    MinMax,
    #[default]
    ZScore,
    Rank,
}

/// `[blend]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlendSpec {
    /// Per-user normalisation of each model's scores before the weighted sum.
    #[serde(default)]
    pub normalize: Normalize,
}

/// `[rerank]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankSpec {
    /// Number of top blended items passed to the reranker.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// MMR trade-off λ in [0, 1]: 0 is pure relevance.
    #[serde(default)]
    pub mmr_lambda: f64,
    /// Popularity penalty β ≥ 0.
    #[serde(default)]
    pub popularity_penalty: f64,
    /// Maximum items sharing a genre in the final list (0 = no cap).
    #[serde(default)]
    pub genre_cap: usize,
}

fn default_candidates() -> usize {
    100
}

impl Default for RerankSpec {
    fn default() -> Self {
        RerankSpec {
            candidates: default_candidates(),
            mmr_lambda: 0.0,
            popularity_penalty: 0.0,
            genre_cap: 0,
        }
    }
}

/// `[script]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptSpec {
    /// Path of the Rhai script, relative to the workspace.
    pub path: String,
}
