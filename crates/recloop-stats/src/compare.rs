//! Two-arm comparison: frequentist (Welch t or z, fixed horizon or always-valid sequential),
//! Bayesian, non-inferiority, with optional CUPED — GrowthBook's formulas.

use serde::{Deserialize, Serialize};

use crate::bayesian::{GaussianPrior, gaussian_posterior};
use crate::distributions::Reference;
use crate::error::{Result, StatsError, computed, finite, non_negative, open_probability};
use crate::sequential::{
    growthbook_rho, mixture_halfwidth_one_sided, mixture_halfwidth_two_sided, mixture_p_one_sided,
    mixture_p_two_sided,
};
use crate::summary::{AdjustedArm, ArmSummary, MetricKind, adjust, arm_moments, pooled_theta};

/// The alternative hypothesis about treatment − control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Alternative {
    /// Δ ≠ Δ₀.
    #[default]
    #[serde(rename = "two-sided", alias = "two_sided")]
    TwoSided,
    /// Δ > Δ₀ (treatment greater).
    #[serde(rename = "greater")]
    Greater,
    /// Δ < Δ₀ (treatment lesser).
    #[serde(rename = "lesser", alias = "less")]
    Lesser,
}

/// Reference distribution of the test statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Welch t with Satterthwaite degrees of freedom (default).
    #[default]
    T,
    /// Standard normal.
    Z,
}

/// Inference method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// p-values and confidence intervals.
    #[default]
    Frequentist,
    /// Gaussian posterior, chance to win and risk.
    Bayesian,
}

/// Always-valid sequential testing: the normal-mixture engine with GrowthBook's tuning N*
/// (`tuning`) or the mSPRT mixing variance τ² on the effect scale (`tau2`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialSpec {
    /// GrowthBook's `sequential_tuning_parameter` N* (default 5000 when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<f64>,
    /// Mixing variance τ² of the effect (absolute or relative, matching the test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau2: Option<f64>,
}

/// Direction in which the metric is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoodDirection {
    /// Higher is better.
    #[default]
    Increase,
    /// Lower is better (latency, error rate).
    Decrease,
}

/// How a non-inferiority margin is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarginKind {
    /// A fraction of the control mean (default; Spotify NIM).
    #[default]
    Relative,
    /// In the metric's own units.
    Absolute,
}

/// A non-inferiority test: H₀ the treatment is worse than control by at least the margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonInferiority {
    /// Margin δ ≥ 0.
    pub margin: f64,
    /// Direction in which the metric is good.
    #[serde(default)]
    pub direction: GoodDirection,
    /// Whether `margin` is relative to the control mean (default) or absolute.
    #[serde(default)]
    pub margin_kind: MarginKind,
}

/// A two-arm comparison (`kind: "compare"` in the JSON contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// Metric kind of both arms.
    #[serde(default)]
    pub metric: MetricKind,
    /// Control arm (A).
    pub control: ArmSummary,
    /// Treatment arm (B).
    pub treatment: ArmSummary,
    /// Relative lift (B − A)/|A| by the delta method instead of the absolute difference.
    #[serde(default)]
    pub relative: bool,
    /// Alternative hypothesis.
    #[serde(default)]
    pub alternative: Alternative,
    /// Level α (CI at 1 − α).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// t (default) or z.
    #[serde(default)]
    pub distribution: Distribution,
    /// Frequentist (default) or Bayesian.
    #[serde(default)]
    pub method: Method,
    /// Always-valid sequential inference instead of fixed horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialSpec>,
    /// Apply CUPED with the pre-period covariate in both arms.
    #[serde(default)]
    pub cuped: bool,
    /// Turn the test into a one-sided non-inferiority test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_inferiority: Option<NonInferiority>,
    /// Proper prior for the Bayesian method (flat when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<GaussianPrior>,
    /// Null value Δ₀ (default 0); ignored for non-inferiority tests.
    #[serde(default)]
    pub null: f64,
}

fn default_alpha() -> f64 {
    0.05
}

impl CompareRequest {
    /// A two-sided, fixed-horizon, frequentist absolute comparison at α = 0.05.
    pub fn new(metric: MetricKind, control: ArmSummary, treatment: ArmSummary) -> Self {
        CompareRequest {
            metric,
            control,
            treatment,
            relative: false,
            alternative: Alternative::TwoSided,
            alpha: 0.05,
            distribution: Distribution::T,
            method: Method::Frequentist,
            sequential: None,
            cuped: false,
            non_inferiority: None,
            prior: None,
            null: 0.0,
        }
    }
}

/// Result of a comparison. `ci` bounds that are infinite are `None` (JSON null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareResult {
    /// Effect estimate (posterior mean for Bayesian).
    pub estimate: f64,
    /// Confidence (or credible) interval.
    pub ci: [Option<f64>; 2],
    /// Standard error of the estimate (posterior sd for Bayesian).
    pub se: f64,
    /// p-value (frequentist only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// Welch degrees of freedom (t tests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<f64>,
    /// P(effect > 0) (Bayesian only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chance_to_win: Option<f64>,
    /// [risk of choosing control, risk of choosing treatment] (Bayesian only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<[f64; 2]>,
    /// p < α (frequentist only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significant: Option<bool>,
    /// The null value tested (the non-inferiority threshold when one was requested).
    pub null: f64,
    /// Control mean (CUPED-adjusted when CUPED was applied).
    pub control_mean: f64,
    /// Treatment mean (CUPED-adjusted when CUPED was applied).
    pub treatment_mean: f64,
    /// CUPED coefficient θ when CUPED was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
}

/// The effect estimate with its variance and Welch degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    /// Point estimate.
    pub estimate: f64,
    /// Variance of the estimate.
    pub variance: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Control mean used as baseline (unadjusted).
    pub baseline: f64,
    /// Adjusted arms.
    pub control: AdjustedArm,
    /// Adjusted arms.
    pub treatment: AdjustedArm,
    /// θ when CUPED was applied.
    pub theta: Option<f64>,
}

/// `variance_of_ratios(m, v_m, d, v_d, c) = v_m/d² + v_d m²/d⁴ − 2 c m/d³` (GrowthBook).
pub fn variance_of_ratios(m: f64, v_m: f64, d: f64, v_d: f64, c: f64) -> f64 {
    v_m / (d * d) + v_d * m * m / (d * d * d * d) - 2.0 * c * m / (d * d * d)
}

/// Compute the effect (absolute or relative), its variance and Welch df.
pub fn effect(
    metric: MetricKind,
    control: &ArmSummary,
    treatment: &ArmSummary,
    relative: bool,
    cuped: bool,
) -> Result<Effect> {
    let a_raw = arm_moments(metric, control, cuped).map_err(|e| e.within("control"))?;
    let b_raw = arm_moments(metric, treatment, cuped).map_err(|e| e.within("treatment"))?;
    let theta = if cuped {
        Some(pooled_theta(metric, control, treatment)?)
    } else {
        None
    };
    let a = adjust(a_raw, theta.unwrap_or(0.0));
    let b = adjust(b_raw, theta.unwrap_or(0.0));
    let (va, vb) = (a.variance / a.n, b.variance / b.n);
    if va + vb <= 0.0 {
        return Err(StatsError::invalid(
            "control,treatment",
            "both arms have zero variance; the difference has no standard error",
        ));
    }
    let df = (va + vb).powi(2) / (vb * vb / (b.n - 1.0) + va * va / (a.n - 1.0));
    let baseline = a.raw.mean;
    let (estimate, variance) = if relative {
        if baseline == 0.0 {
            return Err(StatsError::invalid(
                "control",
                "the control mean is zero; a relative effect is undefined",
            ));
        }
        let est = (b.mean - a.mean) / baseline.abs();
        let var = match (theta, a.raw.pre) {
            (Some(th), Some(pre)) => {
                // GrowthBook HEAD `frequentist_variance_relative_cuped`: the adjusted control mean
                // and the unadjusted baseline share the control sample, so their covariance enters.
                let ya = baseline;
                let yb = b.raw.mean;
                let v_trt = b.variance / (b.n * ya * ya);
                let num_ctrl = a.raw.variance * yb * yb / (ya * ya)
                    - 2.0 * th * pre.covariance * yb / ya
                    + th * th * pre.variance;
                v_trt + num_ctrl / (a.n * ya * ya)
            }
            _ => variance_of_ratios(b.mean, vb, a.mean, va, 0.0),
        };
        (est, var)
    } else {
        (b.mean - a.mean, va + vb)
    };
    Ok(Effect {
        estimate: computed("estimate", estimate)?,
        variance: computed("variance", variance.max(0.0))?,
        df: if df.is_finite() { df } else { f64::INFINITY },
        baseline,
        control: a,
        treatment: b,
        theta,
    })
}

/// Compare two arms as requested.
pub fn compare(req: &CompareRequest) -> Result<CompareResult> {
    let alpha = open_probability("alpha", req.alpha)?;
    let eff = effect(
        req.metric,
        &req.control,
        &req.treatment,
        req.relative,
        req.cuped,
    )?;
    let se = eff.variance.sqrt();
    if se == 0.0 {
        return Err(StatsError::invalid(
            "control,treatment",
            "the effect has zero standard error",
        ));
    }
    let base = CompareResult {
        estimate: eff.estimate,
        ci: [None, None],
        se,
        p: None,
        df: None,
        chance_to_win: None,
        risk: None,
        significant: None,
        null: 0.0,
        control_mean: eff.control.mean,
        treatment_mean: eff.treatment.mean,
        theta: eff.theta,
    };
    if req.method == Method::Bayesian {
        let post = gaussian_posterior(eff.estimate, eff.variance, req.prior, alpha)?;
        return Ok(CompareResult {
            estimate: post.mean,
            ci: [Some(post.ci[0]), Some(post.ci[1])],
            se: post.sd,
            chance_to_win: Some(post.chance_to_win),
            risk: Some(post.risk),
            ..base
        });
    }
    // Null value and alternative (non-inferiority overrides both).
    let (null, alternative) = match req.non_inferiority {
        None => (finite("null", req.null)?, req.alternative),
        Some(ni) => {
            let margin = non_negative("non_inferiority.margin", ni.margin)?;
            let scale = match (ni.margin_kind, req.relative) {
                (MarginKind::Relative, false) => eff.baseline.abs(),
                (MarginKind::Absolute, true) => {
                    if eff.baseline == 0.0 {
                        return Err(StatsError::invalid("control", "the control mean is zero"));
                    }
                    1.0 / eff.baseline.abs()
                }
                _ => 1.0,
            };
            match ni.direction {
                GoodDirection::Increase => (-margin * scale, Alternative::Greater),
                GoodDirection::Decrease => (margin * scale, Alternative::Lesser),
            }
        }
    };
    let z = (eff.estimate - null) / se;
    let (p, lo, hi) = match req.sequential {
        Some(spec) => {
            let r = match (spec.tuning, spec.tau2) {
                (Some(_), Some(_)) => {
                    return Err(StatsError::invalid(
                        "sequential",
                        "give either tuning or tau2, not both",
                    ));
                }
                (_, Some(tau2)) => {
                    let tau2 = non_negative("sequential.tau2", tau2)?;
                    tau2 / eff.variance
                }
                (tuning, None) => {
                    let n_star = non_negative("sequential.tuning", tuning.unwrap_or(5000.0))?;
                    if n_star == 0.0 {
                        return Err(StatsError::invalid("sequential.tuning", "must be > 0"));
                    }
                    let level = if alternative == Alternative::TwoSided {
                        alpha
                    } else {
                        (2.0 * alpha).min(0.999)
                    };
                    let rho = growthbook_rho(n_star, level);
                    (eff.control.n + eff.treatment.n) * rho * rho
                }
            };
            if r <= 0.0 {
                return Err(StatsError::invalid(
                    "sequential",
                    "the mixing parameter must be > 0",
                ));
            }
            match alternative {
                Alternative::TwoSided => {
                    let hw = se * mixture_halfwidth_two_sided(r, alpha);
                    (
                        mixture_p_two_sided(z, r),
                        Some(eff.estimate - hw),
                        Some(eff.estimate + hw),
                    )
                }
                Alternative::Greater => {
                    let hw = se * mixture_halfwidth_one_sided(r, alpha);
                    (mixture_p_one_sided(z, r), Some(eff.estimate - hw), None)
                }
                Alternative::Lesser => {
                    let hw = se * mixture_halfwidth_one_sided(r, alpha);
                    (mixture_p_one_sided(-z, r), None, Some(eff.estimate + hw))
                }
            }
        }
        None => {
            let dist = match req.distribution {
                Distribution::T if eff.df.is_finite() => Reference::StudentT(eff.df),
                _ => Reference::Normal,
            };
            match alternative {
                Alternative::TwoSided => {
                    let q = dist.quantile(1.0 - alpha / 2.0)?;
                    let p = (2.0 * dist.sf(z.abs())?).min(1.0);
                    (p, Some(eff.estimate - q * se), Some(eff.estimate + q * se))
                }
                Alternative::Greater => {
                    let q = dist.quantile(1.0 - alpha)?;
                    (dist.sf(z)?, Some(eff.estimate - q * se), None)
                }
                Alternative::Lesser => {
                    let q = dist.quantile(1.0 - alpha)?;
                    (dist.cdf(z)?, None, Some(eff.estimate + q * se))
                }
            }
        }
    };
    let p = computed("p", p)?;
    let lo = lo.map(|x| computed("ci", x)).transpose()?;
    let hi = hi.map(|x| computed("ci", x)).transpose()?;
    Ok(CompareResult {
        ci: [lo, hi],
        p: Some(p),
        df: if req.sequential.is_none() && req.distribution == Distribution::T && eff.df.is_finite()
        {
            Some(eff.df)
        } else {
            None
        },
        significant: Some(p < alpha),
        null,
        ..base
    })
}

/// Outcome of the harm veto on one guardrail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarmCheck {
    /// The sequential one-sided comparison in the harmful direction.
    pub result: CompareResult,
    /// True when the always-valid one-sided interval excludes zero on the harmful side.
    pub harmful: bool,
}

/// GrowthBook Safe-Rollout style harm veto: a sequential one-sided absolute test in the harmful
/// direction (`good` says which direction is good). `tuning` is N* (GrowthBook default 5000).
pub fn sequential_harm_test(
    metric: MetricKind,
    control: &ArmSummary,
    treatment: &ArmSummary,
    good: GoodDirection,
    alpha: f64,
    tuning: f64,
) -> Result<HarmCheck> {
    let mut req = CompareRequest::new(metric, control.clone(), treatment.clone());
    req.alpha = alpha;
    req.sequential = Some(SequentialSpec {
        tuning: Some(tuning),
        tau2: None,
    });
    req.alternative = match good {
        GoodDirection::Increase => Alternative::Lesser,
        GoodDirection::Decrease => Alternative::Greater,
    };
    let result = compare(&req)?;
    let harmful = match good {
        GoodDirection::Increase => result.ci[1].is_some_and(|hi| hi < 0.0),
        GoodDirection::Decrease => result.ci[0].is_some_and(|lo| lo > 0.0),
    };
    Ok(HarmCheck { result, harmful })
}

/// Non-inferiority test (Spotify NIM): H₀ Δ ≤ −δ (increase is good) against H₁ Δ > −δ,
/// with δ relative to the control mean or absolute.
pub fn non_inferiority_test(
    metric: MetricKind,
    control: &ArmSummary,
    treatment: &ArmSummary,
    margin: NonInferiority,
    alpha: f64,
    distribution: Distribution,
) -> Result<CompareResult> {
    let mut req = CompareRequest::new(metric, control.clone(), treatment.clone());
    req.alpha = alpha;
    req.distribution = distribution;
    req.non_inferiority = Some(margin);
    compare(&req)
}
