//! Metrics as the workspace declares them: name, direction and thresholds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is better.
    Increase,
    /// Lower is better.
    Decrease,
}

impl Direction {
    /// +1 for `Increase`, −1 for `Decrease`: multiply an effect by this to get "improvement".
    pub fn sign(self) -> f64 {
        match self {
            Direction::Increase => 1.0,
            Direction::Decrease => -1.0,
        }
    }

    /// True when `candidate` is better than `baseline` in this direction (ties are not better).
    pub fn is_better(self, candidate: f64, baseline: f64) -> bool {
        (candidate - baseline) * self.sign() > 0.0
    }
}

/// A success metric (primary or north star).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Key in the JSON object that the evaluation command prints.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// Smallest absolute effect worth shipping (in the metric's own units).
    #[serde(default)]
    pub min_effect: f64,
}

/// A guardrail: a metric that must not get worse beyond relative thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    /// Key in the metrics JSON.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// Relative harm that escalates to a person (e.g. 0.05 = 5 % worse).
    pub attention: f64,
    /// Relative harm that blocks.
    pub hard: f64,
}

/// The `[metrics]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// The metric that decides KEEP.
    pub primary: MetricSpec,
    /// The delayed business metric (observed online).
    #[serde(default)]
    pub north_star: Option<MetricSpec>,
    /// Additional success metrics (corrected for multiplicity with the primary).
    #[serde(default)]
    pub secondary: Vec<MetricSpec>,
    /// Metrics that must not be harmed.
    #[serde(default)]
    pub guardrails: Vec<GuardrailSpec>,
    /// Optional composite exchange score: metric name -> weight on its relative effect.
    #[serde(default)]
    pub exchange: BTreeMap<String, f64>,
}

/// One JSON object of metrics as printed by an evaluation command.
pub type MetricValues = BTreeMap<String, f64>;
