//! Power and planning: minimum detectable effect for given sample sizes and the sample size
//! for a given effect, with and without CUPED (variance scaled by 1 − ρ²).

use serde::{Deserialize, Serialize};

use crate::distributions::normal_quantile;
use crate::error::{Result, StatsError, finite, non_negative, open_probability};

/// Planning inputs shared by [`minimum_detectable_effect`] and [`sample_size`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSpec {
    /// Per-unit variance σ² of the metric (same in both arms).
    pub variance: f64,
    /// Level α.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Power 1 − β (default 0.8).
    #[serde(default = "default_power")]
    pub power: f64,
    /// 1 or 2 sides (default 2).
    #[serde(default = "default_sides")]
    pub sides: u8,
    /// Correlation ρ between the metric and the CUPED covariate (0 = no CUPED).
    #[serde(default)]
    pub cuped_correlation: f64,
    /// Treatment units per control unit (default 1).
    #[serde(default = "default_ratio")]
    pub allocation_ratio: f64,
}

fn default_alpha() -> f64 {
    0.05
}
fn default_power() -> f64 {
    0.8
}
fn default_sides() -> u8 {
    2
}
fn default_ratio() -> f64 {
    1.0
}

impl PowerSpec {
    /// Two-sided, α = 0.05, power 0.8, no CUPED, equal allocation.
    pub fn new(variance: f64) -> Self {
        PowerSpec {
            variance,
            alpha: 0.05,
            power: 0.8,
            sides: 2,
            cuped_correlation: 0.0,
            allocation_ratio: 1.0,
        }
    }

    fn validated(&self) -> Result<(f64, f64, f64)> {
        let var = non_negative("variance", self.variance)?;
        if var == 0.0 {
            return Err(StatsError::invalid("variance", "must be > 0"));
        }
        let alpha = open_probability("alpha", self.alpha)?;
        let power = open_probability("power", self.power)?;
        if self.sides != 1 && self.sides != 2 {
            return Err(StatsError::invalid("sides", "must be 1 or 2"));
        }
        let rho = finite("cuped_correlation", self.cuped_correlation)?;
        if rho.abs() >= 1.0 {
            return Err(StatsError::invalid(
                "cuped_correlation",
                "must lie in (−1, 1)",
            ));
        }
        let k = non_negative("allocation_ratio", self.allocation_ratio)?;
        if k == 0.0 {
            return Err(StatsError::invalid("allocation_ratio", "must be > 0"));
        }
        let z = normal_quantile(1.0 - alpha / f64::from(self.sides))? + normal_quantile(power)?;
        Ok((var * (1.0 - rho * rho), z, k))
    }
}

/// Minimum detectable absolute effect with `n_control` control units
/// (treatment = `allocation_ratio`·n_control).
pub fn minimum_detectable_effect(spec: &PowerSpec, n_control: f64) -> Result<f64> {
    let (var, z, k) = spec.validated()?;
    let n = non_negative("n", n_control)?;
    if n < 2.0 {
        return Err(StatsError::invalid("n", "needs at least 2 units"));
    }
    Ok(z * (var * (1.0 / n + 1.0 / (k * n))).sqrt())
}

/// Control units needed to detect an absolute effect `effect` (treatment = ratio × that).
pub fn sample_size(spec: &PowerSpec, effect: f64) -> Result<f64> {
    let (var, z, k) = spec.validated()?;
    let effect = finite("effect", effect)?;
    if effect == 0.0 {
        return Err(StatsError::invalid("effect", "must be non-zero"));
    }
    Ok((z * z * var * (1.0 + 1.0 / k) / (effect * effect))
        .ceil()
        .max(2.0))
}
