//! Multiple-testing corrections: Bonferroni, Holm, Benjamini–Hochberg, and GrowthBook's
//! adjusted confidence intervals.

use crate::distributions::normal_quantile;
use crate::error::{Result, StatsError, finite, open_probability, probability};

fn check(p: &[f64]) -> Result<()> {
    for (i, &x) in p.iter().enumerate() {
        probability(&format!("p[{i}]"), x)?;
    }
    Ok(())
}

fn order(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    idx
}

/// Bonferroni: min(1, m·p).
pub fn bonferroni(p: &[f64]) -> Result<Vec<f64>> {
    check(p)?;
    let m = p.len() as f64;
    Ok(p.iter().map(|x| (x * m).min(1.0)).collect())
}

/// Holm–Bonferroni step-down adjusted p-values (GrowthBook `adjustPValuesHolmBonferroni`).
pub fn holm(p: &[f64]) -> Result<Vec<f64>> {
    check(p)?;
    let m = p.len();
    let idx = order(p);
    let mut out = vec![0.0; m];
    let mut running = 0.0_f64;
    for (i, &j) in idx.iter().enumerate() {
        let adj = ((m - i) as f64 * p[j]).min(1.0);
        running = running.max(adj);
        out[j] = running;
    }
    Ok(out)
}

/// Benjamini–Hochberg step-up adjusted p-values (GrowthBook `adjustPValuesBenjaminiHochberg`).
pub fn benjamini_hochberg(p: &[f64]) -> Result<Vec<f64>> {
    check(p)?;
    let m = p.len();
    let idx = order(p);
    let mut out = vec![0.0; m];
    let mut running = 1.0_f64;
    for (i, &j) in idx.iter().enumerate().rev() {
        let adj = (p[j] * m as f64 / (i + 1) as f64).min(1.0);
        running = running.min(adj);
        out[j] = running;
    }
    Ok(out)
}

/// GrowthBook's adjusted two-sided interval for an estimate with adjusted p-value `p_adj`:
/// half-width z_{1−α/2}·|estimate / z_{1−p_adj/2}|. Returns `None` bounds (infinite) when
/// p_adj = 1 and a degenerate interval at the estimate when p_adj = 0.
pub fn adjusted_interval(estimate: f64, p_adj: f64, alpha: f64) -> Result<[Option<f64>; 2]> {
    let estimate = finite("estimates", estimate)?;
    let p_adj = probability("p", p_adj)?;
    let alpha = open_probability("alpha", alpha)?;
    if p_adj >= 1.0 {
        return Ok([None, None]);
    }
    if p_adj <= 0.0 {
        return Ok([Some(estimate), Some(estimate)]);
    }
    let z = normal_quantile(1.0 - p_adj / 2.0)?;
    if z == 0.0 {
        return Err(StatsError::invalid(
            "p",
            "adjusted p-value of 1 gives no interval",
        ));
    }
    let hw = normal_quantile(1.0 - alpha / 2.0)? * (estimate / z).abs();
    Ok([Some(estimate - hw), Some(estimate + hw)])
}
