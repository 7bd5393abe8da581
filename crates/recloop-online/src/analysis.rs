//! Per-arm sufficient statistics collected by the adapters, and the comparisons the platform makes
//! with them. Every formula (Welch t, delta method for ratios, always-valid one-sided harm test,
//! non-inferiority, SRM, Holm) is `recloop-stats`'; this module only accumulates per-unit sums
//! and maps the platform's questions onto that crate's requests.

use crate::error::{OnlineError, Result};
use recloop_core::Direction;
use recloop_stats::{
    Alternative, ArmSummary, CompareRequest, Distribution, GoodDirection, MarginKind, MetricKind,
    NonInferiority, compare, non_inferiority_test, sequential_harm_test,
};
use serde::{Deserialize, Serialize};

/// Sufficient statistics of one metric in one arm: per-unit numerator `m` and denominator `d`
/// (`d = 1` for plain means), with their sums of squares and cross products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// Units.
    pub n: u64,
    /// Σm.
    pub sum: f64,
    /// Σm².
    pub sum_sq: f64,
    /// Σd (equals n for a mean metric).
    pub den: f64,
    /// Σd².
    pub den_sq: f64,
    /// Σm·d.
    pub cross: f64,
    /// True for a ratio of sums (e.g. clicks / impressions).
    pub ratio: bool,
}

impl MetricStats {
    /// Add one unit's value of a mean metric.
    pub fn push_mean(&mut self, m: f64) {
        self.push_ratio(m, 1.0);
        self.ratio = false;
    }

    /// Add one unit's numerator and denominator of a ratio metric.
    pub fn push_ratio(&mut self, m: f64, d: f64) {
        self.n += 1;
        self.sum += m;
        self.sum_sq += m * m;
        self.den += d;
        self.den_sq += d * d;
        self.cross += m * d;
        self.ratio = true;
    }

    /// Merge another part of the same arm into this one.
    pub fn merge(&mut self, o: &MetricStats) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.den += o.den;
        self.den_sq += o.den_sq;
        self.cross += o.cross;
        self.ratio |= o.ratio;
    }

    /// Point estimate: mean, or ratio of sums (0 when undefined).
    pub fn value(&self) -> f64 {
        if self.ratio {
            if self.den > 0.0 {
                self.sum / self.den
            } else {
                0.0
            }
        } else if self.n > 0 {
            self.sum / self.n as f64
        } else {
            0.0
        }
    }

    /// The metric kind in `recloop-stats` terms.
    pub fn kind(&self) -> MetricKind {
        if self.ratio {
            MetricKind::Ratio
        } else {
            MetricKind::Mean
        }
    }

    /// The arm summary of the `recloop-stats` JSON contract.
    pub fn summary(&self) -> ArmSummary {
        let n = self.n as f64;
        if self.ratio {
            ArmSummary::ratio(n, self.sum, self.sum_sq, self.den, self.den_sq, self.cross)
        } else {
            ArmSummary::mean(n, self.sum, self.sum_sq)
        }
    }

    /// Build from an arm summary of `recloop-stats` (as the logs aggregation produces).
    pub fn from_summary(s: &ArmSummary) -> MetricStats {
        match (s.m_sum, s.d_sum) {
            (Some(m), Some(d)) => MetricStats {
                n: s.n as u64,
                sum: m,
                sum_sq: s.m_sum_squares.unwrap_or(0.0),
                den: d,
                den_sq: s.d_sum_squares.unwrap_or(0.0),
                cross: s.m_d_sum_of_products.unwrap_or(0.0),
                ratio: true,
            },
            _ => {
                let (sum, sum_sq) = match (s.sum, s.successes) {
                    (Some(sum), _) => (sum, s.sum_squares.unwrap_or(0.0)),
                    (None, Some(k)) => (k, k),
                    (None, None) => (0.0, 0.0),
                };
                MetricStats {
                    n: s.n as u64,
                    sum,
                    sum_sq,
                    den: s.n,
                    den_sq: s.n,
                    cross: sum,
                    ratio: false,
                }
            }
        }
    }

    fn finite(&self) -> bool {
        [self.sum, self.sum_sq, self.den, self.den_sq, self.cross]
            .iter()
            .all(|x| x.is_finite())
    }
}

/// The good direction of a metric in `recloop-stats` terms.
pub fn good_direction(d: Direction) -> GoodDirection {
    match d {
        Direction::Increase => GoodDirection::Increase,
        Direction::Decrease => GoodDirection::Decrease,
    }
}

/// A confidence interval; `None` bounds are infinite.
pub type Interval = (Option<f64>, Option<f64>);

/// A two-arm comparison of one metric (treatment − control, absolute), ready for the tests the
/// platform runs on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Control value.
    pub control: f64,
    /// Treatment value.
    pub treatment: f64,
    /// treatment − control.
    pub effect: f64,
    /// Standard error of the effect.
    pub se: f64,
    /// Welch degrees of freedom.
    pub df: f64,
    /// Units in both arms.
    pub n_total: u64,
    kind: MetricKind,
    arms: [ArmSummary; 2],
}

impl Comparison {
    /// Compare the arms `[control, treatment]` of `metric` observed up to `day`.
    ///
    /// Non-finite sums are an error (NaN fails the gate); data that cannot be compared *yet*
    /// (fewer than two units in an arm, no variance at all, a ratio with a zero denominator)
    /// gives `Ok(None)`.
    pub fn of(metric: &str, day: u32, arms: &[MetricStats; 2]) -> Result<Option<Comparison>> {
        for (name, a) in ["control", "treatment"].iter().zip(arms) {
            if !a.finite() {
                return Err(OnlineError::NonFinite {
                    metric: metric.to_string(),
                    day,
                    detail: format!(
                        "{name} arm sums are not finite (Σm {}, Σm² {}, Σd {})",
                        a.sum, a.sum_sq, a.den
                    ),
                });
            }
        }
        if arms[0].ratio != arms[1].ratio {
            return Err(OnlineError::Config {
                field: metric.to_string(),
                reason: "one arm reports a ratio metric and the other a mean".into(),
            });
        }
        let kind = arms[0].kind();
        let summaries = [arms[0].summary(), arms[1].summary()];
        let Ok(e) = recloop_stats::effect(kind, &summaries[0], &summaries[1], false, false) else {
            return Ok(None);
        };
        let se = e.variance.sqrt();
        if !(se > 0.0 && se.is_finite() && e.estimate.is_finite()) {
            return Ok(None);
        }
        Ok(Some(Comparison {
            control: e.control.mean,
            treatment: e.treatment.mean,
            effect: e.estimate,
            se,
            df: e.df,
            n_total: arms[0].n + arms[1].n,
            kind,
            arms: summaries,
        }))
    }

    /// Relative effect (effect / |control|), 0 when the control is 0.
    pub fn relative(&self) -> f64 {
        if self.control.abs() > 0.0 {
            self.effect / self.control.abs()
        } else {
            0.0
        }
    }

    fn request(&self, alpha: f64) -> CompareRequest {
        let mut req = CompareRequest::new(self.kind, self.arms[0].clone(), self.arms[1].clone());
        req.alpha = alpha;
        req
    }

    /// Two-sided fixed-horizon Welch test: p-value and confidence interval at level 1 − alpha.
    pub fn two_sided(&self, alpha: f64) -> Result<(f64, Interval)> {
        let r = compare(&self.request(alpha)).map_err(|e| stats_error("two-sided test", e))?;
        Ok((r.p.unwrap_or(1.0), (r.ci[0], r.ci[1])))
    }

    /// Always-valid one-sided p-value that the metric is harmed (moved against `good`):
    /// `recloop_stats::sequential_harm_test` with tuning N* = `tuning`.
    pub fn harm_p(&self, good: Direction, alpha: f64, tuning: f64) -> Result<f64> {
        let h = sequential_harm_test(
            self.kind,
            &self.arms[0],
            &self.arms[1],
            good_direction(good),
            alpha,
            tuning,
        )
        .map_err(|e| stats_error("sequential harm test", e))?;
        Ok(h.result.p.unwrap_or(1.0))
    }

    /// Fixed-horizon one-sided p-value that the metric is harmed (moved against `good`).
    pub fn fixed_harm_p(&self, good: Direction, alpha: f64) -> Result<f64> {
        let mut req = self.request(alpha);
        req.alternative = match good {
            Direction::Increase => Alternative::Lesser,
            Direction::Decrease => Alternative::Greater,
        };
        let r = compare(&req).map_err(|e| stats_error("one-sided harm test", e))?;
        Ok(r.p.unwrap_or(1.0))
    }

    /// Non-inferiority p-value at relative margin `margin` (Spotify NIM): small when the
    /// treatment is shown not worse than the control by more than `margin`.
    pub fn non_inferiority_p(&self, good: Direction, margin: f64, alpha: f64) -> Result<f64> {
        let r = non_inferiority_test(
            self.kind,
            &self.arms[0],
            &self.arms[1],
            NonInferiority {
                margin,
                direction: good_direction(good),
                margin_kind: MarginKind::Relative,
            },
            alpha,
            Distribution::T,
        )
        .map_err(|e| stats_error("non-inferiority test", e))?;
        Ok(r.p.unwrap_or(1.0))
    }

    /// p-value that the treatment is worse than the control by more than the relative `margin`
    /// (the mirror of non-inferiority: small when harm beyond the margin is shown).
    pub fn beyond_margin_p(&self, good: Direction, margin: f64, alpha: f64) -> Result<f64> {
        let mut req = self.request(alpha);
        let bound = margin * self.control.abs();
        let (null, alternative) = match good {
            Direction::Increase => (-bound, Alternative::Lesser),
            Direction::Decrease => (bound, Alternative::Greater),
        };
        req.null = null;
        req.alternative = alternative;
        let r = compare(&req).map_err(|e| stats_error("harm-beyond-margin test", e))?;
        Ok(r.p.unwrap_or(1.0))
    }
}

/// Wrap a `recloop-stats` error with what the platform was computing.
pub fn stats_error(context: &str, e: recloop_stats::StatsError) -> OnlineError {
    OnlineError::Stats {
        context: context.to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(values: &[f64]) -> MetricStats {
        let mut s = MetricStats::default();
        for &v in values {
            s.push_mean(v);
        }
        s
    }

    #[test]
    fn welch_matches_hand_computation() {
        let a = arm(&[1.0, 2.0, 3.0, 4.0]);
        let b = arm(&[2.0, 3.0, 4.0, 5.0, 6.0]);
        let c = Comparison::of("m", 0, &[a, b]).unwrap().unwrap();
        assert!((c.effect - 1.5).abs() < 1e-12);
        assert!((c.se - (1.666_666_666_666_666_7 / 4.0 + 0.5f64).sqrt()).abs() < 1e-12);
        // Welch df = 6.981; t = 1.5667 -> p = 0.1613
        assert!((c.df - 6.981).abs() < 1e-3, "{}", c.df);
        let (p, ci) = c.two_sided(0.05).unwrap();
        assert!((p - 0.1613).abs() < 1e-3, "{p}");
        assert!(ci.0.unwrap() < 0.0 && ci.1.unwrap() > 1.5);
    }

    #[test]
    fn degenerate_data_is_not_comparable_and_nan_is_an_error() {
        let one = arm(&[1.0]);
        assert!(Comparison::of("m", 0, &[one, one]).unwrap().is_none());
        let flat = arm(&[2.0, 2.0, 2.0]);
        assert!(Comparison::of("m", 0, &[flat, flat]).unwrap().is_none());
        let nan = arm(&[1.0, f64::NAN]);
        let err = Comparison::of("watch", 3, &[flat, nan]).unwrap_err();
        assert!(err.to_string().contains("`watch`") && err.to_string().contains("day 3"));
        let mut r = MetricStats::default();
        r.push_ratio(0.0, 0.0);
        r.push_ratio(0.0, 0.0);
        assert!(Comparison::of("ctr", 0, &[r, r]).unwrap().is_none());
    }

    #[test]
    fn harm_tests_are_one_sided() {
        let a: Vec<f64> = (0..2000).map(|i| 1.0 + f64::from(i % 7) * 0.1).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 0.1).collect();
        let c = Comparison::of("m", 0, &[arm(&a), arm(&b)])
            .unwrap()
            .unwrap();
        assert!(c.harm_p(Direction::Increase, 0.05, 2000.0).unwrap() < 0.01);
        assert_eq!(c.harm_p(Direction::Decrease, 0.05, 2000.0).unwrap(), 1.0);
        assert!(c.fixed_harm_p(Direction::Increase, 0.05).unwrap() < 0.01);
        assert!(c.fixed_harm_p(Direction::Decrease, 0.05).unwrap() > 0.99);
        // −7.7 % relative: non-inferior at a 20 % margin, not at 1 %; beyond 1 % but not 20 %
        assert!(c.non_inferiority_p(Direction::Increase, 0.2, 0.05).unwrap() < 0.01);
        assert!(
            c.non_inferiority_p(Direction::Increase, 0.01, 0.05)
                .unwrap()
                > 0.5
        );
        assert!(c.beyond_margin_p(Direction::Increase, 0.01, 0.05).unwrap() < 0.01);
        assert!(c.beyond_margin_p(Direction::Increase, 0.2, 0.05).unwrap() > 0.5);
    }

    #[test]
    fn ratio_summaries_round_trip() {
        let mut r = MetricStats::default();
        for (m, d) in [(1.0, 10.0), (0.0, 5.0), (3.0, 12.0)] {
            r.push_ratio(m, d);
        }
        assert_eq!(MetricStats::from_summary(&r.summary()), r);
        let m = arm(&[1.0, 4.0]);
        assert_eq!(MetricStats::from_summary(&m.summary()), m);
    }
}
