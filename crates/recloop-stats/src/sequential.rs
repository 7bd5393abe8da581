//! Always-valid sequential inference: one normal-mixture engine behind the mSPRT (Johari et al.)
//! and GrowthBook's confidence sequences (Waudby-Smith et al.), a stateful monitor that keeps
//! p-values monotone across looks, and Lan–DeMets group-sequential bounds for planned looks.
//!
//! Both always-valid methods reduce to the mixture likelihood ratio
//! `Λ = (1 + r)^(-1/2) · exp(r/(1 + r) · z²/2)` with `z = (Δ̂ − Δ₀)/SE` and `r = nτ²/V`
//! (mSPRT) or `r = Nρ²` (GrowthBook, `ρ² = (−2 ln α + ln(1 − 2 ln α))/N*`).

use serde::{Deserialize, Serialize};

use crate::distributions::{normal_cdf, normal_pdf, normal_quantile, normal_sf};
use crate::error::{Result, StatsError, computed, finite, non_negative, open_probability};

/// Mixture likelihood ratio Λ for standardized statistic `z` and mixing ratio `r > 0`.
pub fn mixture_likelihood_ratio(z: f64, r: f64) -> f64 {
    (r / (1.0 + r) * z * z / 2.0).exp() / (1.0 + r).sqrt()
}

/// Two-sided always-valid p-value at one look, `min(1, 1/Λ)`.
pub fn mixture_p_two_sided(z: f64, r: f64) -> f64 {
    // exp(−r/(1+r)·z²/2)·√(1+r), computed without overflow.
    ((1.0 + r).sqrt().ln() - r / (1.0 + r) * z * z / 2.0)
        .exp()
        .min(1.0)
}

/// One-sided always-valid p-value in the direction of `z > 0`, inverting GrowthBook's one-sided
/// confidence-sequence half-width `SE·√(2(1+r)/r · ln(1 + √(1+r)/(2α)))` for fixed `r`.
pub fn mixture_p_one_sided(z: f64, r: f64) -> f64 {
    if z <= 0.0 {
        return 1.0;
    }
    let e = (r / (1.0 + r) * z * z / 2.0).exp_m1();
    if e <= 0.0 {
        return 1.0;
    }
    ((1.0 + r).sqrt() / (2.0 * e)).min(1.0)
}

/// Two-sided always-valid half-width in units of the standard error.
pub fn mixture_halfwidth_two_sided(r: f64, alpha: f64) -> f64 {
    ((1.0 + r) / r * ((1.0 + r).ln() - 2.0 * alpha.ln())).sqrt()
}

/// One-sided always-valid half-width in units of the standard error.
pub fn mixture_halfwidth_one_sided(r: f64, alpha: f64) -> f64 {
    (2.0 * (1.0 + r) / r * (1.0 + (1.0 + r).sqrt() / (2.0 * alpha)).ln()).sqrt()
}

/// GrowthBook's ρ for tuning parameter N* (`sequential_tuning_parameter`) and level α.
pub fn growthbook_rho(tuning: f64, alpha: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning).sqrt()
}

/// Inputs of the two-sample normal-mixture mSPRT (Johari et al.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsprtRequest {
    /// θ̂ = ȳ_B − ȳ_A.
    pub estimate: f64,
    /// V = σ²_A + σ²_B, per-unit variances of both arms summed.
    pub variance: f64,
    /// Units per arm.
    pub n: f64,
    /// Mixing variance τ².
    pub tau2: f64,
    /// Level α.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Null value θ₀ (default 0).
    #[serde(default)]
    pub null: f64,
    /// The p-value of the previous look; the result never exceeds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_p: Option<f64>,
}

fn default_alpha() -> f64 {
    0.05
}

/// Result of one mSPRT look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsprtResult {
    /// Mixture likelihood ratio Λₙ.
    pub lambda: f64,
    /// Always-valid p-value, min(1, p_{n−1}, 1/Λₙ).
    pub p: f64,
    /// Always-valid confidence interval for θ.
    pub ci: [Option<f64>; 2],
    /// Whether Λₙ ≥ 1/α.
    pub reject: bool,
}

/// One look of the mSPRT.
pub fn msprt(req: &MsprtRequest) -> Result<MsprtResult> {
    let est = finite("estimate", req.estimate)?;
    let v = non_negative("variance", req.variance)?;
    if v == 0.0 {
        return Err(StatsError::invalid("variance", "must be > 0"));
    }
    let n = non_negative("n", req.n)?;
    if n < 1.0 {
        return Err(StatsError::invalid(
            "n",
            format!("needs at least 1 unit per arm, got {n}"),
        ));
    }
    let tau2 = non_negative("tau2", req.tau2)?;
    if tau2 == 0.0 {
        return Err(StatsError::invalid("tau2", "must be > 0"));
    }
    let alpha = open_probability("alpha", req.alpha)?;
    let null = finite("null", req.null)?;
    let r = n * tau2 / v;
    let se = (v / n).sqrt();
    let z = (est - null) / se;
    let lambda = mixture_likelihood_ratio(z, r);
    // Λ overflows only for astronomically strong evidence; report the largest finite value.
    let lambda = if lambda.is_finite() { lambda } else { f64::MAX };
    let mut p = mixture_p_two_sided(z, r);
    if let Some(prev) = req.previous_p {
        p = p.min(crate::error::probability("previous_p", prev)?);
    }
    let hw = se * mixture_halfwidth_two_sided(r, alpha);
    Ok(MsprtResult {
        lambda,
        p,
        ci: [Some(est - hw), Some(est + hw)],
        reject: p <= alpha,
    })
}

/// Keeps the running minimum of always-valid p-values across looks, so that the reported
/// p-value never increases (Johari et al. define pₙ = min(p_{n−1}, 1/Λₙ)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialMonitor {
    p: f64,
    looks: u64,
}

impl Default for SequentialMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl SequentialMonitor {
    /// A monitor before the first look (p = 1).
    pub fn new() -> Self {
        SequentialMonitor { p: 1.0, looks: 0 }
    }

    /// A monitor resumed from a stored running minimum.
    pub fn resume(p: f64, looks: u64) -> Result<Self> {
        Ok(SequentialMonitor {
            p: crate::error::probability("p", p)?,
            looks,
        })
    }

    /// Record the p-value of a new look; returns the monotone p-value.
    pub fn observe(&mut self, p: f64) -> Result<f64> {
        let p = crate::error::probability("p", p)?;
        self.p = self.p.min(p);
        self.looks += 1;
        Ok(self.p)
    }

    /// The current running-minimum p-value.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Looks recorded so far.
    pub fn looks(&self) -> u64 {
        self.looks
    }
}

/// Lan–DeMets group-sequential efficacy bounds with power spending α(t) = α·t^ρ.
///
/// `information` holds the information fractions of the planned looks (increasing, last = 1 for
/// the final analysis). With `sides = 2` the bound is symmetric (±z) and each side spends α/2;
/// with `sides = 1` only the upper bound is used. Returns the z-bounds, found by numerical
/// integration of the recursive density of the Brownian-motion score (Armitage–McPherson–Rowe).
pub fn lan_demets_bounds(information: &[f64], alpha: f64, rho: f64, sides: u8) -> Result<Vec<f64>> {
    let alpha = open_probability("alpha", alpha)?;
    let rho = non_negative("rho", rho)?;
    if rho == 0.0 {
        return Err(StatsError::invalid("rho", "must be > 0"));
    }
    if sides != 1 && sides != 2 {
        return Err(StatsError::invalid(
            "sides",
            format!("must be 1 or 2, got {sides}"),
        ));
    }
    if information.is_empty() {
        return Err(StatsError::invalid(
            "information",
            "needs at least one look",
        ));
    }
    let mut prev_t = 0.0;
    for (i, &t) in information.iter().enumerate() {
        let t = finite(&format!("information[{i}]"), t)?;
        if t <= prev_t || t > 1.0 {
            return Err(StatsError::invalid(
                format!("information[{i}]"),
                "information fractions must increase strictly within (0, 1]",
            ));
        }
        prev_t = t;
    }
    let spend = |t: f64| alpha * t.powf(rho);
    const GRID: usize = 801;
    const LOWER_ONE_SIDED: f64 = -8.0;
    let mut bounds = Vec::with_capacity(information.len());
    // Density of S_{k-1} on the continuation region (grid points and Simpson weights).
    let mut grid: Vec<f64> = Vec::new();
    let mut density: Vec<f64> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut t_prev = 0.0;
    let mut spent = 0.0;
    for &t in information {
        let target = spend(t) - spent;
        let dt = t - t_prev;
        let sd = dt.sqrt();
        // Exit probability at look k for a bound b (on the z scale).
        let exit = |b: f64| -> f64 {
            let c = b * t.sqrt();
            let lower = if sides == 2 { -c } else { f64::NEG_INFINITY };
            let tail = |u: f64| -> f64 {
                let up = normal_sf((c - u) / sd);
                let lo = if lower.is_finite() {
                    normal_cdf((lower - u) / sd)
                } else {
                    0.0
                };
                up + lo
            };
            if grid.is_empty() {
                tail(0.0)
            } else {
                grid.iter()
                    .zip(&density)
                    .zip(&weights)
                    .map(|((&u, &f), &w)| w * f * tail(u))
                    .sum()
            }
        };
        let b = if target <= 0.0 {
            f64::INFINITY
        } else {
            // Bisection on b in [0, 40].
            let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
            if exit(lo) < target {
                0.0
            } else {
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if exit(mid) > target {
                        lo = mid
                    } else {
                        hi = mid
                    }
                    if hi - lo < 1e-12 {
                        break;
                    }
                }
                0.5 * (lo + hi)
            }
        };
        let b = computed("bounds", if b.is_infinite() { 40.0 } else { b })?;
        spent += if target > 0.0 { exit(b) } else { 0.0 };
        bounds.push(b);
        // New density on the continuation region at time t.
        let c = b * t.sqrt();
        let lower = if sides == 2 {
            -c
        } else {
            LOWER_ONE_SIDED * t.sqrt()
        };
        let h = (c - lower) / (GRID - 1) as f64;
        let new_grid: Vec<f64> = (0..GRID).map(|i| lower + h * i as f64).collect();
        let new_weights: Vec<f64> = (0..GRID)
            .map(|i| {
                let s = if i == 0 || i == GRID - 1 {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                s * h / 3.0
            })
            .collect();
        let new_density: Vec<f64> = new_grid
            .iter()
            .map(|&s| {
                if grid.is_empty() {
                    normal_pdf(s / sd) / sd
                } else {
                    grid.iter()
                        .zip(&density)
                        .zip(&weights)
                        .map(|((&u, &f), &w)| w * f * normal_pdf((s - u) / sd) / sd)
                        .sum()
                }
            })
            .collect();
        grid = new_grid;
        density = new_density;
        weights = new_weights;
        t_prev = t;
    }
    Ok(bounds)
}

/// The fixed-horizon critical value z_{1−α/sides}, for comparison with group-sequential bounds.
pub fn fixed_bound(alpha: f64, sides: u8) -> Result<f64> {
    normal_quantile(1.0 - alpha / f64::from(sides.max(1)))
}
