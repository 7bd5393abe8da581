//! Thin, panic-free wrappers over `statrs` distributions.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

use crate::error::{Result, StatsError};

/// The reference distribution of a test statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// Standard normal.
    Normal,
    /// Student's t with the given degrees of freedom.
    StudentT(f64),
}

fn std_normal() -> Normal {
    Normal::standard()
}

fn student(df: f64) -> Result<StudentsT> {
    StudentsT::new(0.0, 1.0, df)
        .map_err(|e| StatsError::invalid("df", format!("invalid degrees of freedom {df}: {e}")))
}

/// Standard normal CDF Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// Standard normal survival function 1 − Φ(x), accurate in the upper tail.
pub fn normal_sf(x: f64) -> f64 {
    std_normal().sf(x)
}

/// Standard normal density φ(x).
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal quantile Φ⁻¹(p) for p in (0, 1).
pub fn normal_quantile(p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(StatsError::invalid(
            "alpha",
            format!("quantile level {p} is outside (0, 1)"),
        ));
    }
    Ok(std_normal().inverse_cdf(p))
}

impl Reference {
    /// CDF at `x`.
    pub fn cdf(self, x: f64) -> Result<f64> {
        match self {
            Reference::Normal => Ok(normal_cdf(x)),
            Reference::StudentT(df) => Ok(student(df)?.cdf(x)),
        }
    }

    /// Survival function 1 − CDF at `x`.
    pub fn sf(self, x: f64) -> Result<f64> {
        match self {
            Reference::Normal => Ok(normal_sf(x)),
            Reference::StudentT(df) => Ok(student(df)?.sf(x)),
        }
    }

    /// Quantile at level `p` in (0, 1).
    pub fn quantile(self, p: f64) -> Result<f64> {
        if !(p > 0.0 && p < 1.0) {
            return Err(StatsError::invalid(
                "alpha",
                format!("quantile level {p} is outside (0, 1)"),
            ));
        }
        match self {
            Reference::Normal => normal_quantile(p),
            Reference::StudentT(df) => Ok(student(df)?.inverse_cdf(p)),
        }
    }
}

/// Upper tail probability of a χ² variable with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> Result<f64> {
    let d = ChiSquared::new(df).map_err(|e| {
        StatsError::invalid("counts", format!("invalid χ² degrees of freedom {df}: {e}"))
    })?;
    Ok(d.sf(x))
}
