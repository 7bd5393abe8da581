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

/// A guardrail: a metric that must not get worse. Limits come at two levels: *attention*
/// (a person decides) and *hard* (blocks). Each level can be relative to production (`attention`,
/// `hard`: 0.05 = 5 % worse) and/or absolute (`attention_max`/`max` for a metric that should stay
/// low, such as a latency budget in ms; `attention_min`/`min` for one that should stay high).
/// At least one limit must be set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    /// Key in the metrics JSON.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// Relative harm that escalates to a person (e.g. 0.05 = 5 % worse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<f64>,
    /// Relative harm that blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<f64>,
    /// Absolute value above which a person decides (direction `decrease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_max: Option<f64>,
    /// Absolute value above which the candidate is blocked (direction `decrease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Absolute value below which a person decides (direction `increase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_min: Option<f64>,
    /// Absolute value below which the candidate is blocked (direction `increase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// How far past its limits a guardrail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailLevel {
    /// Within every limit.
    Ok,
    /// Past an attention limit: a person decides.
    Attention,
    /// Past a hard limit: blocked.
    Hard,
}

/// The plain-code comparison of one guardrail between production and a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailCheck {
    /// Guardrail name.
    pub name: String,
    /// Production's value.
    pub production: f64,
    /// The candidate's value.
    pub candidate: f64,
    /// Relative harm (positive = worse; 0 when production is 0 and the candidate is not worse).
    pub relative_harm: f64,
    /// The level reached.
    pub level: GuardrailLevel,
    /// The limit that set the level, in words (`"hard: at most 25 % worse"`, `"max 5"`); empty
    /// when within every limit.
    pub limit: String,
}

impl std::fmt::Display for GuardrailCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // a negative harm is an improvement: say so rather than print "-265% harm"
        let change = if self.relative_harm > 0.0 {
            format!("{:.1}% worse", self.relative_harm * 100.0)
        } else if self.relative_harm < 0.0 {
            format!("{:.1}% better", -self.relative_harm * 100.0)
        } else {
            "unchanged".to_string()
        };
        write!(
            f,
            "{} {:.4} -> {:.4} ({change})",
            self.name, self.production, self.candidate
        )?;
        if !self.limit.is_empty() {
            write!(f, ", past {}", self.limit)?;
        }
        Ok(())
    }
}

impl GuardrailSpec {
    /// A guardrail with relative limits only.
    pub fn relative(name: &str, direction: Direction, attention: f64, hard: f64) -> GuardrailSpec {
        GuardrailSpec {
            name: name.to_string(),
            direction,
            attention: Some(attention),
            hard: Some(hard),
            attention_max: None,
            max: None,
            attention_min: None,
            min: None,
        }
    }

    /// True when a relative limit is set (what an online test of harm needs).
    pub fn has_relative_limits(&self) -> bool {
        self.attention.is_some() || self.hard.is_some()
    }

    /// Relative (attention, hard) thresholds for online tests: a missing level takes the other's
    /// value; `None` when the guardrail has only absolute limits.
    pub fn relative_limits(&self) -> Option<(f64, f64)> {
        match (self.attention, self.hard) {
            (Some(a), Some(h)) => Some((a, h)),
            (Some(a), None) => Some((a, a)),
            (None, Some(h)) => Some((h, h)),
            (None, None) => None,
        }
    }

    /// Relative harm of `candidate` against `production` (positive = worse).
    pub fn relative_harm(&self, production: f64, candidate: f64) -> f64 {
        let worse = -self.direction.sign() * (candidate - production);
        if production != 0.0 {
            worse / production.abs()
        } else if worse > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }

    /// Compare `candidate` with `production` against every limit; the highest level reached
    /// wins. A non-finite value is past the hard level.
    pub fn check(&self, production: f64, candidate: f64) -> GuardrailCheck {
        let harm = self.relative_harm(production, candidate);
        let pct = |x: f64| format!("{:.0}%", x * 100.0);
        let mut hits: Vec<(GuardrailLevel, String)> = Vec::new();
        if !candidate.is_finite() || !production.is_finite() {
            hits.push((GuardrailLevel::Hard, "finite value required".into()));
        }
        if let Some(h) = self.hard
            && harm > h
        {
            hits.push((
                GuardrailLevel::Hard,
                format!("hard limit: at most {} worse", pct(h)),
            ));
        }
        if let Some(m) = self.max
            && candidate > m
        {
            hits.push((GuardrailLevel::Hard, format!("hard limit: max {m}")));
        }
        if let Some(m) = self.min
            && candidate < m
        {
            hits.push((GuardrailLevel::Hard, format!("hard limit: min {m}")));
        }
        if let Some(a) = self.attention
            && harm > a
        {
            hits.push((
                GuardrailLevel::Attention,
                format!("attention level: at most {} worse", pct(a)),
            ));
        }
        if let Some(m) = self.attention_max
            && candidate > m
        {
            hits.push((
                GuardrailLevel::Attention,
                format!("attention level: max {m}"),
            ));
        }
        if let Some(m) = self.attention_min
            && candidate < m
        {
            hits.push((
                GuardrailLevel::Attention,
                format!("attention level: min {m}"),
            ));
        }
        let (level, limit) = hits
            .into_iter()
            .max_by_key(|(l, _)| *l)
            .unwrap_or((GuardrailLevel::Ok, String::new()));
        GuardrailCheck {
            name: self.name.clone(),
            production,
            candidate,
            relative_harm: harm,
            level,
            limit,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(attention: Option<f64>, hard: Option<f64>, max: Option<f64>) -> GuardrailSpec {
        GuardrailSpec {
            attention,
            hard,
            max,
            ..GuardrailSpec::relative("latency_p99_ms", Direction::Decrease, 0.0, 0.0)
        }
    }

    #[test]
    fn relative_limits_compare_with_production_in_the_metric_s_direction() {
        let g = latency(Some(0.05), Some(0.20), None);
        assert_eq!(g.check(1.0, 1.04).level, GuardrailLevel::Ok);
        let a = g.check(1.0, 1.10);
        assert_eq!(a.level, GuardrailLevel::Attention);
        assert!(
            a.limit.contains("attention level: at most 5% worse"),
            "{}",
            a.limit
        );
        let h = g.check(0.062, 0.9);
        assert_eq!(h.level, GuardrailLevel::Hard);
        assert!(h.to_string().contains("0.0620 -> 0.9000"), "{h}");
        assert!(
            h.to_string().contains("hard limit: at most 20% worse"),
            "{h}"
        );
        // better is never harm
        assert_eq!(g.check(1.0, 0.5).level, GuardrailLevel::Ok);
        let cov = GuardrailSpec::relative("coverage@10", Direction::Increase, 0.05, 0.25);
        assert_eq!(cov.check(0.2871, 0.1846).level, GuardrailLevel::Hard);
        assert_eq!(cov.check(0.2871, 0.30).level, GuardrailLevel::Ok);
    }

    #[test]
    fn absolute_limits_ignore_production_and_non_finite_values_are_hard() {
        let g = GuardrailSpec {
            attention_max: Some(2.0),
            ..latency(None, None, Some(5.0))
        };
        // +1,000 % relative, but inside the budget
        assert_eq!(g.check(0.062, 0.69).level, GuardrailLevel::Ok);
        assert_eq!(g.check(0.062, 3.0).level, GuardrailLevel::Attention);
        let h = g.check(0.062, 7.0);
        assert_eq!(
            (h.level, h.limit.as_str()),
            (GuardrailLevel::Hard, "hard limit: max 5")
        );
        assert_eq!(g.check(0.062, f64::NAN).level, GuardrailLevel::Hard);
        let floor = GuardrailSpec {
            min: Some(0.1),
            ..GuardrailSpec::relative("coverage@10", Direction::Increase, 0.5, 0.9)
        };
        assert_eq!(floor.check(0.3, 0.05).level, GuardrailLevel::Hard);
        // a production value of 0: any harm is infinite, no harm is none
        let zero = latency(Some(0.05), Some(0.2), None);
        assert_eq!(zero.check(0.0, 0.0).level, GuardrailLevel::Ok);
        assert_eq!(zero.check(0.0, 0.1).level, GuardrailLevel::Hard);
    }
}
