//! GrowthBook's Gaussian Bayesian engine: posterior of the effect, credible interval,
//! chance to win and risk, with an improper flat prior or a proper normal prior.

use serde::{Deserialize, Serialize};

use crate::distributions::{normal_cdf, normal_pdf, normal_quantile};
use crate::error::{Result, StatsError, computed, finite, non_negative};

/// A proper normal prior N(mean, variance) on the effect (absolute or relative, matching the test).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianPrior {
    /// Prior mean μ₀.
    pub mean: f64,
    /// Prior variance σ₀² (> 0).
    pub variance: f64,
}

/// Posterior summary of the effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// Posterior mean.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// Credible interval at level 1 − α.
    pub ci: [f64; 2],
    /// P(effect > 0).
    pub chance_to_win: f64,
    /// [risk of choosing control, risk of choosing treatment].
    pub risk: [f64; 2],
}

/// Posterior of an effect estimated as N(`estimate`, `variance`), with an optional proper prior.
pub fn gaussian_posterior(
    estimate: f64,
    variance: f64,
    prior: Option<GaussianPrior>,
    alpha: f64,
) -> Result<Posterior> {
    let estimate = finite("estimate", estimate)?;
    let variance = non_negative("variance", variance)?;
    if variance == 0.0 {
        return Err(StatsError::invalid(
            "variance",
            "the effect has zero variance; no posterior",
        ));
    }
    let (mean, var) = match prior {
        None => (estimate, variance),
        Some(p) => {
            let pm = finite("prior.mean", p.mean)?;
            let pv = non_negative("prior.variance", p.variance)?;
            if pv == 0.0 {
                return Err(StatsError::invalid("prior.variance", "must be > 0"));
            }
            let precision = 1.0 / variance + 1.0 / pv;
            ((estimate / variance + pm / pv) / precision, 1.0 / precision)
        }
    };
    let sd = var.sqrt();
    let zq = normal_quantile(1.0 - alpha / 2.0)?;
    let ci = [mean - zq * sd, mean + zq * sd];
    let z0 = mean / sd;
    let p_ctrl_better = normal_cdf(-z0);
    let p_win = normal_cdf(z0);
    // E[Δ | Δ > 0] = μ + σ φ(μ/σ)/Φ(μ/σ); E[Δ | Δ < 0] = μ − σ φ(μ/σ)/Φ(−μ/σ).
    let tail_pos = if p_win > 0.0 {
        mean + sd * normal_pdf(z0) / p_win
    } else {
        0.0
    };
    let tail_neg = if p_ctrl_better > 0.0 {
        mean - sd * normal_pdf(z0) / p_ctrl_better
    } else {
        0.0
    };
    let risk_ctrl = p_win * tail_pos;
    let risk_trt = -p_ctrl_better * tail_neg;
    Ok(Posterior {
        mean,
        sd,
        ci,
        chance_to_win: computed("chance_to_win", p_win)?,
        risk: [
            computed("risk", risk_ctrl.max(0.0))?,
            computed("risk", risk_trt.max(0.0))?,
        ],
    })
}
