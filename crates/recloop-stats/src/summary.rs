//! Per-arm sufficient statistics and their reduction to (mean, per-unit variance), with CUPED.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StatsError, finite, non_negative};

/// The kind of metric a pair of arm summaries describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Per-unit mean of a real value: needs `n`, `sum`, `sum_squares`.
    #[default]
    Mean,
    /// Share of units that converted: needs `n`, `successes`.
    Proportion,
    /// Ratio of sums Σm/Σd (e.g. clicks per impression): needs `n`, `m_sum`, `m_sum_squares`,
    /// `d_sum`, `d_sum_squares`, `m_d_sum_of_products`.
    Ratio,
}

/// Sufficient statistics of one arm, as they appear in the JSON contract.
///
/// Which fields are required depends on the [`MetricKind`]; the constructors
/// [`ArmSummary::mean`], [`ArmSummary::proportion`] and [`ArmSummary::ratio`] fill the right ones.
/// The `pre_*` fields carry the pre-period covariate for CUPED.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSummary {
    /// Number of units (users) in the arm.
    pub n: f64,
    /// Σy (mean metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Σy² (mean metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_squares: Option<f64>,
    /// Number of converted units (proportion metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successes: Option<f64>,
    /// Σm, numerator sum (ratio metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_sum: Option<f64>,
    /// Σm² (ratio metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_sum_squares: Option<f64>,
    /// Σd, denominator sum (ratio metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_sum: Option<f64>,
    /// Σd² (ratio metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_sum_squares: Option<f64>,
    /// Σm·d (ratio metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_d_sum_of_products: Option<f64>,
    /// Σx of the pre-period covariate (CUPED, mean and proportion metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_sum: Option<f64>,
    /// Σx² of the pre-period covariate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_sum_squares: Option<f64>,
    /// Σy·x, post × pre products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_pre_sum_of_products: Option<f64>,
    /// Σm_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pre_sum: Option<f64>,
    /// Σm_pre² (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pre_sum_squares: Option<f64>,
    /// Σd_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_pre_sum: Option<f64>,
    /// Σd_pre² (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_pre_sum_squares: Option<f64>,
    /// Σm_pre·d_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pre_d_pre_sum_of_products: Option<f64>,
    /// Σm·m_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_post_m_pre_sum_of_products: Option<f64>,
    /// Σd·d_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_post_d_pre_sum_of_products: Option<f64>,
    /// Σm·d_pre (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_post_d_pre_sum_of_products: Option<f64>,
    /// Σm_pre·d (ratio CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pre_d_post_sum_of_products: Option<f64>,
}

impl ArmSummary {
    /// A mean metric: n units, Σy, Σy².
    pub fn mean(n: f64, sum: f64, sum_squares: f64) -> Self {
        ArmSummary {
            n,
            sum: Some(sum),
            sum_squares: Some(sum_squares),
            ..Default::default()
        }
    }

    /// A proportion metric: n units of which `successes` converted.
    pub fn proportion(n: f64, successes: f64) -> Self {
        ArmSummary {
            n,
            successes: Some(successes),
            ..Default::default()
        }
    }

    /// A ratio metric Σm/Σd with the per-unit cross moments.
    pub fn ratio(
        n: f64,
        m_sum: f64,
        m_sum_squares: f64,
        d_sum: f64,
        d_sum_squares: f64,
        m_d_sum_of_products: f64,
    ) -> Self {
        ArmSummary {
            n,
            m_sum: Some(m_sum),
            m_sum_squares: Some(m_sum_squares),
            d_sum: Some(d_sum),
            d_sum_squares: Some(d_sum_squares),
            m_d_sum_of_products: Some(m_d_sum_of_products),
            ..Default::default()
        }
    }

    /// Attach a pre-period covariate (CUPED) to a mean or proportion summary.
    pub fn with_pre_period(
        mut self,
        pre_sum: f64,
        pre_sum_squares: f64,
        post_pre_sum_of_products: f64,
    ) -> Self {
        self.pre_sum = Some(pre_sum);
        self.pre_sum_squares = Some(pre_sum_squares);
        self.post_pre_sum_of_products = Some(post_pre_sum_of_products);
        self
    }

    /// True when the pre-period covariate fields for `kind` are present.
    pub fn has_pre_period(&self, kind: MetricKind) -> bool {
        match kind {
            MetricKind::Mean | MetricKind::Proportion => {
                self.pre_sum.is_some()
                    && self.pre_sum_squares.is_some()
                    && self.post_pre_sum_of_products.is_some()
            }
            MetricKind::Ratio => self.m_pre_sum.is_some() && self.d_pre_sum.is_some(),
        }
    }
}

fn need(field: &str, v: Option<f64>, kind: &str) -> Result<f64> {
    match v {
        Some(x) => finite(field, x),
        None => Err(StatsError::invalid(field, format!("required for {kind}"))),
    }
}

/// Sample variance from sums, validated (Σy² must be ≥ (Σy)²/n up to rounding).
fn sample_variance(field: &str, n: f64, sum: f64, sum_squares: f64) -> Result<f64> {
    let centered = sum_squares - sum * sum / n;
    let scale = sum_squares.abs().max(sum * sum / n).max(1.0);
    if centered < -1e-9 * scale {
        return Err(StatsError::invalid(
            field,
            format!(
                "{sum_squares} is smaller than (Σ)²/n = {}: the variance would be negative",
                sum * sum / n
            ),
        ));
    }
    Ok(centered.max(0.0) / (n - 1.0))
}

/// Sample covariance from sums.
fn sample_covariance(n: f64, sum_a: f64, sum_b: f64, products: f64) -> f64 {
    (products - sum_a * sum_b / n) / (n - 1.0)
}

fn check_n(n: f64) -> Result<f64> {
    let n = non_negative("n", n)?;
    if n < 2.0 {
        return Err(StatsError::invalid(
            "n",
            format!("needs at least 2 units, got {n}"),
        ));
    }
    Ok(n)
}

/// One arm reduced to the quantities the tests need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmMoments {
    /// Units.
    pub n: f64,
    /// Unadjusted mean (or ratio).
    pub mean: f64,
    /// Unadjusted per-unit variance.
    pub variance: f64,
    /// Pre-period covariate moments, when CUPED data is present.
    pub pre: Option<PreMoments>,
}

/// Pre-period covariate moments of one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreMoments {
    /// Mean of the covariate (or pre-period ratio).
    pub mean: f64,
    /// Per-unit variance of the covariate.
    pub variance: f64,
    /// Per-unit covariance between the metric and the covariate.
    pub covariance: f64,
}

/// Joint sums of both arms used to pool θ (mean and proportion metrics).
#[derive(Debug, Clone, Copy, Default)]
struct JointSums {
    n: f64,
    sum: f64,
    sum_squares: f64,
    pre_sum: f64,
    pre_sum_squares: f64,
    products: f64,
}

/// Reduce one arm to moments. `with_pre` asks for the CUPED covariate (error if absent).
pub fn arm_moments(kind: MetricKind, arm: &ArmSummary, with_pre: bool) -> Result<ArmMoments> {
    let n = check_n(arm.n)?;
    match kind {
        MetricKind::Mean => {
            let sum = need("sum", arm.sum, "metric mean")?;
            let ss = non_negative(
                "sum_squares",
                need("sum_squares", arm.sum_squares, "metric mean")?,
            )?;
            let variance = sample_variance("sum_squares", n, sum, ss)?;
            let pre = if with_pre {
                Some(pre_moments(n, sum, arm)?)
            } else {
                None
            };
            Ok(ArmMoments {
                n,
                mean: sum / n,
                variance,
                pre,
            })
        }
        MetricKind::Proportion => {
            let s = non_negative(
                "successes",
                need("successes", arm.successes, "metric proportion")?,
            )?;
            if s > n {
                return Err(StatsError::invalid(
                    "successes",
                    format!("{s} successes exceed n = {n}: the proportion would be outside [0, 1]"),
                ));
            }
            let p = s / n;
            let pre = if with_pre {
                Some(pre_moments(n, s, arm)?)
            } else {
                None
            };
            Ok(ArmMoments {
                n,
                mean: p,
                variance: p * (1.0 - p),
                pre,
            })
        }
        MetricKind::Ratio => ratio_moments(n, arm, with_pre),
    }
}

fn pre_moments(n: f64, post_sum: f64, arm: &ArmSummary) -> Result<PreMoments> {
    let ps = need("pre_sum", arm.pre_sum, "CUPED")?;
    let pss = non_negative(
        "pre_sum_squares",
        need("pre_sum_squares", arm.pre_sum_squares, "CUPED")?,
    )?;
    let pp = need(
        "post_pre_sum_of_products",
        arm.post_pre_sum_of_products,
        "CUPED",
    )?;
    Ok(PreMoments {
        mean: ps / n,
        variance: sample_variance("pre_sum_squares", n, ps, pss)?,
        covariance: sample_covariance(n, post_sum, ps, pp),
    })
}

/// Delta-method per-unit variance of a ratio of means with gradient g over (m, d).
fn ratio_moments(n: f64, arm: &ArmSummary, with_pre: bool) -> Result<ArmMoments> {
    let k = "metric ratio";
    let m = need("m_sum", arm.m_sum, k)?;
    let mss = non_negative(
        "m_sum_squares",
        need("m_sum_squares", arm.m_sum_squares, k)?,
    )?;
    let d = need("d_sum", arm.d_sum, k)?;
    let dss = non_negative(
        "d_sum_squares",
        need("d_sum_squares", arm.d_sum_squares, k)?,
    )?;
    let md = need("m_d_sum_of_products", arm.m_d_sum_of_products, k)?;
    if d == 0.0 {
        return Err(StatsError::invalid(
            "d_sum",
            "the denominator sum is zero; the ratio is undefined",
        ));
    }
    let (mbar, dbar) = (m / n, d / n);
    let vm = sample_variance("m_sum_squares", n, m, mss)?;
    let vd = sample_variance("d_sum_squares", n, d, dss)?;
    let cmd = sample_covariance(n, m, d, md);
    let g = [1.0 / dbar, -mbar / (dbar * dbar)];
    let post_cov = [[vm, cmd], [cmd, vd]];
    let variance = quad(&g, &post_cov, &g).max(0.0);
    let pre = if with_pre {
        let kp = "ratio CUPED";
        let mp = need("m_pre_sum", arm.m_pre_sum, kp)?;
        let mpss = non_negative(
            "m_pre_sum_squares",
            need("m_pre_sum_squares", arm.m_pre_sum_squares, kp)?,
        )?;
        let dp = need("d_pre_sum", arm.d_pre_sum, kp)?;
        let dpss = non_negative(
            "d_pre_sum_squares",
            need("d_pre_sum_squares", arm.d_pre_sum_squares, kp)?,
        )?;
        let mpdp = need(
            "m_pre_d_pre_sum_of_products",
            arm.m_pre_d_pre_sum_of_products,
            kp,
        )?;
        let mmp = need(
            "m_post_m_pre_sum_of_products",
            arm.m_post_m_pre_sum_of_products,
            kp,
        )?;
        let ddp = need(
            "d_post_d_pre_sum_of_products",
            arm.d_post_d_pre_sum_of_products,
            kp,
        )?;
        let mdp = need(
            "m_post_d_pre_sum_of_products",
            arm.m_post_d_pre_sum_of_products,
            kp,
        )?;
        let mpd = need(
            "m_pre_d_post_sum_of_products",
            arm.m_pre_d_post_sum_of_products,
            kp,
        )?;
        if dp == 0.0 {
            return Err(StatsError::invalid(
                "d_pre_sum",
                "the pre-period denominator sum is zero",
            ));
        }
        let (mpbar, dpbar) = (mp / n, dp / n);
        let vmp = sample_variance("m_pre_sum_squares", n, mp, mpss)?;
        let vdp = sample_variance("d_pre_sum_squares", n, dp, dpss)?;
        let cmpdp = sample_covariance(n, mp, dp, mpdp);
        let gp = [1.0 / dpbar, -mpbar / (dpbar * dpbar)];
        let pre_cov = [[vmp, cmpdp], [cmpdp, vdp]];
        // Cross block: rows (m, d) post, columns (m_pre, d_pre).
        let cross = [
            [
                sample_covariance(n, m, mp, mmp),
                sample_covariance(n, m, dp, mdp),
            ],
            [
                sample_covariance(n, d, mp, mpd),
                sample_covariance(n, d, dp, ddp),
            ],
        ];
        Some(PreMoments {
            mean: mp / dp,
            variance: quad(&gp, &pre_cov, &gp).max(0.0),
            covariance: quad(&g, &cross, &gp),
        })
    } else {
        None
    };
    Ok(ArmMoments {
        n,
        mean: m / d,
        variance,
        pre,
    })
}

fn quad(a: &[f64; 2], m: &[[f64; 2]; 2], b: &[f64; 2]) -> f64 {
    a[0] * (m[0][0] * b[0] + m[0][1] * b[1]) + a[1] * (m[1][0] * b[0] + m[1][1] * b[1])
}

/// GrowthBook's pooled CUPED coefficient θ over both arms.
///
/// Mean and proportion metrics pool the raw sums of both arms (`compute_theta`); ratio metrics
/// pool the per-arm delta-method covariances and pre-period variances.
pub fn pooled_theta(kind: MetricKind, control: &ArmSummary, treatment: &ArmSummary) -> Result<f64> {
    match kind {
        MetricKind::Mean | MetricKind::Proportion => {
            let mut j = JointSums::default();
            for (name, arm) in [("control", control), ("treatment", treatment)] {
                let post_sum = match kind {
                    MetricKind::Proportion => arm.successes,
                    _ => arm.sum,
                };
                let post_sum = need("sum", post_sum, "CUPED").map_err(|e| e.within(name))?;
                j.n += arm.n;
                j.sum += post_sum;
                j.sum_squares += if kind == MetricKind::Proportion {
                    post_sum
                } else {
                    need("sum_squares", arm.sum_squares, "CUPED").map_err(|e| e.within(name))?
                };
                j.pre_sum += need("pre_sum", arm.pre_sum, "CUPED").map_err(|e| e.within(name))?;
                j.pre_sum_squares += need("pre_sum_squares", arm.pre_sum_squares, "CUPED")
                    .map_err(|e| e.within(name))?;
                j.products += need(
                    "post_pre_sum_of_products",
                    arm.post_pre_sum_of_products,
                    "CUPED",
                )
                .map_err(|e| e.within(name))?;
            }
            let post_var = if kind == MetricKind::Proportion {
                let p = j.sum / j.n;
                p * (1.0 - p)
            } else {
                (j.sum_squares - j.sum * j.sum / j.n) / (j.n - 1.0)
            };
            let pre_var = (j.pre_sum_squares - j.pre_sum * j.pre_sum / j.n) / (j.n - 1.0);
            if pre_var <= 0.0 || post_var <= 0.0 {
                return Ok(0.0);
            }
            Ok(sample_covariance(j.n, j.sum, j.pre_sum, j.products) / pre_var)
        }
        MetricKind::Ratio => {
            let a = arm_moments(kind, control, true).map_err(|e| e.within("control"))?;
            let b = arm_moments(kind, treatment, true).map_err(|e| e.within("treatment"))?;
            match (a.pre, b.pre) {
                (Some(pa), Some(pb)) => {
                    let v = pa.variance + pb.variance;
                    if v <= 0.0 {
                        Ok(0.0)
                    } else {
                        Ok((pa.covariance + pb.covariance) / v)
                    }
                }
                _ => Ok(0.0),
            }
        }
    }
}

/// An arm after (optional) CUPED adjustment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdjustedArm {
    /// Units.
    pub n: f64,
    /// Adjusted mean ȳ − θ x̄ (equal to the raw mean without CUPED).
    pub mean: f64,
    /// Adjusted per-unit variance s²_y + θ² s²_x − 2θ Cov(y, x).
    pub variance: f64,
    /// The raw moments.
    pub raw: ArmMoments,
}

/// Apply CUPED with coefficient θ (no-op when the arm has no pre-period moments).
pub fn adjust(raw: ArmMoments, theta: f64) -> AdjustedArm {
    match raw.pre {
        Some(pre) => AdjustedArm {
            n: raw.n,
            mean: raw.mean - theta * pre.mean,
            variance: (raw.variance + theta * theta * pre.variance - 2.0 * theta * pre.covariance)
                .max(0.0),
            raw,
        },
        None => AdjustedArm {
            n: raw.n,
            mean: raw.mean,
            variance: raw.variance,
            raw,
        },
    }
}
