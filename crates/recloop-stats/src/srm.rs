//! Sample-ratio mismatch: fixed-horizon χ² and the sequential Dirichlet–multinomial test.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use crate::distributions::chi2_sf;
use crate::error::{Result, StatsError, non_negative, probability};

/// Result of a fixed-horizon SRM check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrmResult {
    /// p-value of the χ² goodness-of-fit test.
    pub p: f64,
    /// χ² statistic.
    pub chi2: f64,
    /// Degrees of freedom k − 1.
    pub df: f64,
}

/// Validate counts and weights; returns normalised weights (equal split when `weights` is empty).
fn check(counts: &[f64], weights: &[f64]) -> Result<Vec<f64>> {
    if counts.len() < 2 {
        return Err(StatsError::invalid("counts", "needs at least two arms"));
    }
    for (i, &c) in counts.iter().enumerate() {
        non_negative(&format!("counts[{i}]"), c)?;
    }
    let w: Vec<f64> = if weights.is_empty() {
        vec![1.0; counts.len()]
    } else {
        if weights.len() != counts.len() {
            return Err(StatsError::invalid(
                "weights",
                format!(
                    "has {} entries but counts has {}",
                    weights.len(),
                    counts.len()
                ),
            ));
        }
        weights.to_vec()
    };
    for (i, &x) in w.iter().enumerate() {
        let x = non_negative(&format!("weights[{i}]"), x)?;
        if x == 0.0 {
            return Err(StatsError::invalid(format!("weights[{i}]"), "must be > 0"));
        }
    }
    let total: f64 = w.iter().sum();
    Ok(w.iter().map(|x| x / total).collect())
}

/// χ² test of observed counts against the intended split (`weights`, any positive scale).
pub fn srm_chi2(counts: &[f64], weights: &[f64]) -> Result<SrmResult> {
    let w = check(counts, weights)?;
    let total: f64 = counts.iter().sum();
    if total == 0.0 {
        return Err(StatsError::invalid("counts", "all counts are zero"));
    }
    let chi2: f64 = counts
        .iter()
        .zip(&w)
        .map(|(&o, &wi)| {
            let e = wi * total;
            (o - e) * (o - e) / e
        })
        .sum();
    let df = (counts.len() - 1) as f64;
    Ok(SrmResult {
        p: chi2_sf(chi2, df)?,
        chi2,
        df,
    })
}

/// GrowthBook's health rule: unhealthy when p < `threshold` (0.001) and every arm has ≥ 8 units.
pub fn srm_unhealthy(counts: &[f64], weights: &[f64], threshold: f64) -> Result<bool> {
    let r = srm_chi2(counts, weights)?;
    Ok(r.p < threshold && counts.iter().all(|&c| c >= 8.0))
}

/// Result of the sequential SRM test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialSrmResult {
    /// Bayes factor of the Dirichlet–multinomial alternative against the intended split.
    pub bayes_factor: f64,
    /// Natural log of the Bayes factor (finite even when the factor overflows).
    pub log_bayes_factor: f64,
    /// Always-valid p-value min(1, previous p, 1/BF).
    pub p: f64,
}

/// Sequential SRM (Lindon & Malek 2022; Optimizely `ssrm`): Dirichlet prior α₀ = k·θ₀ with
/// concentration `concentration` (ssrm default 10000) over cumulative counts.
pub fn srm_sequential(
    counts: &[f64],
    weights: &[f64],
    concentration: f64,
    previous_p: Option<f64>,
) -> Result<SequentialSrmResult> {
    let theta = check(counts, weights)?;
    let k = non_negative("concentration", concentration)?;
    if k == 0.0 {
        return Err(StatsError::invalid("concentration", "must be > 0"));
    }
    let alpha0: Vec<f64> = theta.iter().map(|t| k * t).collect();
    let ln_b = |a: &[f64]| -> f64 {
        a.iter().map(|&x| ln_gamma(x)).sum::<f64>() - ln_gamma(a.iter().sum())
    };
    let posterior: Vec<f64> = alpha0.iter().zip(counts).map(|(a, x)| a + x).collect();
    let ln_null: f64 = counts.iter().zip(&theta).map(|(&x, &t)| x * t.ln()).sum();
    let log_bf = ln_b(&posterior) - ln_b(&alpha0) - ln_null;
    let mut p = (-log_bf).exp().min(1.0);
    if let Some(prev) = previous_p {
        p = p.min(probability("previous_p", prev)?);
    }
    Ok(SequentialSrmResult {
        bayes_factor: if log_bf > 700.0 {
            f64::MAX
        } else {
            log_bf.exp()
        },
        log_bayes_factor: log_bf,
        p,
    })
}
