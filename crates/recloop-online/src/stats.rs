//! The statistics the platform needs, over per-arm sufficient statistics.
//!
//! Formulas follow `shared/reference/statistics.md` (Welch 4.1, ratio delta method 4.3, SRM 4.5,
//! GrowthBook always-valid one-sided test 4.6, Holm 4.7, non-inferiority 4.8).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};
use statrs::function::gamma::ln_gamma;

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

    /// Merge another arm-part into this one.
    pub fn merge(&mut self, o: &MetricStats) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.den += o.den;
        self.den_sq += o.den_sq;
        self.cross += o.cross;
        self.ratio |= o.ratio;
    }

    /// Point estimate: mean, or ratio of sums.
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

    /// Per-unit variance of the estimate (sample variance for means, delta method for ratios).
    pub fn unit_variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        let var = |s: f64, ss: f64| ((ss - s * s / n) / (n - 1.0)).max(0.0);
        let vm = var(self.sum, self.sum_sq);
        if !self.ratio {
            return vm;
        }
        let md = self.sum / n;
        let dd = self.den / n;
        if dd <= 0.0 {
            return 0.0;
        }
        let vd = var(self.den, self.den_sq);
        let cov = (self.cross - self.sum * self.den / n) / (n - 1.0);
        (vm / (dd * dd) + vd * md * md / dd.powi(4) - 2.0 * cov * md / dd.powi(3)).max(0.0)
    }
}

/// A two-arm comparison of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
}

impl Comparison {
    /// Build from the two arms' statistics (Welch, 4.1 / 4.3).
    pub fn new(control: &MetricStats, treatment: &MetricStats) -> Comparison {
        let (na, nb) = (control.n.max(1) as f64, treatment.n.max(1) as f64);
        let (va, vb) = (control.unit_variance(), treatment.unit_variance());
        let (sa, sb) = (va / na, vb / nb);
        let var = sa + sb;
        let denom = if na > 1.0 && nb > 1.0 {
            sa * sa / (na - 1.0) + sb * sb / (nb - 1.0)
        } else {
            0.0
        };
        let df = if denom > 0.0 { var * var / denom } else { 1.0 };
        Comparison {
            control: control.value(),
            treatment: treatment.value(),
            effect: treatment.value() - control.value(),
            se: var.sqrt(),
            df: df.max(1.0),
            n_total: control.n + treatment.n,
        }
    }

    /// Relative effect (effect / |control|), 0 when control is 0.
    pub fn relative(&self) -> f64 {
        if self.control.abs() > 0.0 {
            self.effect / self.control.abs()
        } else {
            0.0
        }
    }

    /// Two-sided Welch p-value of effect = 0.
    pub fn p_two_sided(&self) -> f64 {
        if self.se <= 0.0 {
            return if self.effect == 0.0 { 1.0 } else { 0.0 };
        }
        let t = (self.effect / self.se).abs();
        match StudentsT::new(0.0, 1.0, self.df) {
            Ok(d) => (2.0 * (1.0 - d.cdf(t))).clamp(0.0, 1.0),
            Err(_) => 1.0,
        }
    }

    /// Two-sided Welch confidence interval at level 1 − alpha.
    pub fn ci(&self, alpha: f64) -> (f64, f64) {
        let q = StudentsT::new(0.0, 1.0, self.df)
            .map(|d| d.inverse_cdf(1.0 - alpha / 2.0))
            .unwrap_or(f64::INFINITY);
        (self.effect - q * self.se, self.effect + q * self.se)
    }

    /// Always-valid one-sided p-value that the effect is harmful, i.e. has the sign of
    /// `harmful_sign` (GrowthBook sequential CS with tuning `n_star`, 2α in ρ for one side).
    pub fn sequential_harm_p(&self, harmful_sign: f64, alpha: f64, n_star: f64) -> f64 {
        if self.se <= 0.0 || self.n_total < 2 {
            return 1.0;
        }
        let z = self.effect / self.se;
        if z * harmful_sign <= 0.0 {
            return 1.0;
        }
        let a2 = 2.0 * alpha;
        let rho2 = (-2.0 * a2.ln() + (-2.0 * a2.ln() + 1.0).ln()) / n_star;
        let r = self.n_total as f64 * rho2;
        let log_e = r / (1.0 + r) * z * z / 2.0 - 0.5 * (1.0 + r).ln();
        // one-sided: half the two-sided always-valid p
        (0.5 * (-log_e).exp()).min(1.0)
    }

    /// Non-inferiority p-value at relative margin `margin` for a metric whose better direction has
    /// sign `better_sign` (Spotify NIM, 4.8).
    pub fn non_inferiority_p(&self, better_sign: f64, margin: f64) -> f64 {
        let shifted = better_sign * self.effect + margin * self.control.abs();
        if self.se <= 0.0 {
            return if shifted > 0.0 { 0.0 } else { 1.0 };
        }
        let z = shifted / self.se;
        match Normal::new(0.0, 1.0) {
            Ok(d) => 1.0 - d.cdf(z),
            Err(_) => 1.0,
        }
    }
}

/// Fixed-horizon χ² SRM p-value for observed counts against intended weights.
pub fn srm_chi2_p(observed: &[u64], weights: &[f64]) -> f64 {
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let wsum: f64 = weights.iter().sum();
    if total <= 0.0 || wsum <= 0.0 || observed.len() < 2 {
        return 1.0;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let e = w / wsum * total;
            if e > 0.0 {
                (o as f64 - e).powi(2) / e
            } else {
                0.0
            }
        })
        .sum();
    match ChiSquared::new((observed.len() - 1) as f64) {
        Ok(d) => (1.0 - d.cdf(chi2)).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// Sequential SRM (Lindon & Malek): 1 / Bayes factor of a Dirichlet-multinomial with
/// concentration `k` around the intended weights (the caller keeps the running minimum).
pub fn srm_sequential_p(observed: &[u64], weights: &[f64], k: f64) -> f64 {
    let wsum: f64 = weights.iter().sum();
    if wsum <= 0.0 {
        return 1.0;
    }
    let theta: Vec<f64> = weights.iter().map(|w| w / wsum).collect();
    let a0: Vec<f64> = theta.iter().map(|t| k * t).collect();
    let ln_b = |a: &[f64]| -> f64 {
        a.iter().map(|&x| ln_gamma(x)).sum::<f64>() - ln_gamma(a.iter().sum())
    };
    let post: Vec<f64> = a0
        .iter()
        .zip(observed)
        .map(|(a, &o)| a + o as f64)
        .collect();
    let ln_lik0: f64 = theta
        .iter()
        .zip(observed)
        .map(|(t, &o)| o as f64 * t.ln())
        .sum();
    let ln_bf = ln_b(&post) - ln_b(&a0) - ln_lik0;
    (-ln_bf).exp().min(1.0)
}

/// Holm step-down adjusted p-values, in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (i, &idx) in order.iter().enumerate() {
        let adj = ((m - i) as f64 * p[idx]).min(1.0);
        running = running.max(adj);
        out[idx] = running;
    }
    out
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
        let c = Comparison::new(&a, &b);
        assert!((c.effect - 1.5).abs() < 1e-12);
        // var a = 1.6667, var b = 2.5 -> se^2 = 0.41667 + 0.5
        assert!((c.se - (1.666_666_666_666_666_7 / 4.0 + 0.5f64).sqrt()).abs() < 1e-12);
        let p = c.p_two_sided();
        // Welch df = 0.91667² / (0.41667²/3 + 0.5²/4) = 6.981; t = 1.5667 -> p = 0.1613
        assert!((c.df - 6.981).abs() < 1e-3, "{}", c.df);
        assert!((p - 0.1613).abs() < 1e-3, "{p}");
    }

    #[test]
    fn holm_matches_statsmodels() {
        let adj = holm(&[0.01, 0.04, 0.03]);
        assert!((adj[0] - 0.03).abs() < 1e-12);
        assert!((adj[1] - 0.06).abs() < 1e-12);
        assert!((adj[2] - 0.06).abs() < 1e-12);
    }

    #[test]
    fn srm_flags_imbalance_only() {
        assert!(srm_chi2_p(&[5000, 5000], &[1.0, 1.0]) > 0.9);
        assert!(srm_chi2_p(&[5000, 5400], &[1.0, 1.0]) < 0.001);
        assert!(srm_sequential_p(&[500, 500], &[1.0, 1.0], 100.0) >= 0.99);
        assert!(srm_sequential_p(&[5000, 5600], &[1.0, 1.0], 100.0) < 0.01);
    }

    #[test]
    fn ratio_variance_reduces_to_mean_when_denominator_is_one() {
        let mut r = MetricStats::default();
        let mut m = MetricStats::default();
        for v in [1.0, 4.0, 2.0, 8.0] {
            r.push_ratio(v, 1.0);
            m.push_mean(v);
        }
        assert!((r.unit_variance() - m.unit_variance()).abs() < 1e-12);
    }

    #[test]
    fn sequential_harm_is_one_sided_and_monotone_in_evidence() {
        let c = Comparison {
            control: 1.0,
            treatment: 0.9,
            effect: -0.1,
            se: 0.02,
            df: 100.0,
            n_total: 2000,
        };
        assert!(c.sequential_harm_p(-1.0, 0.05, 2000.0) < 0.01);
        assert_eq!(c.sequential_harm_p(1.0, 0.05, 2000.0), 1.0);
        let weak = Comparison { se: 0.08, ..c };
        assert!(weak.sequential_harm_p(-1.0, 0.05, 2000.0) > 0.05);
        // non-inferiority at a 20% margin holds, at 1% it does not
        assert!(c.non_inferiority_p(1.0, 0.2) < 0.01);
        assert!(c.non_inferiority_p(1.0, 0.01) > 0.5);
    }
}
