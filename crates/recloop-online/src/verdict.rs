//! The verdict in plain code: KEEP, EXTEND or DISCARD from the final observations.

use crate::adapter::DayReport;
use crate::error::{OnlineError, Result};
use crate::stats::{Comparison, holm};
use recloop_core::{Decision, GuardrailSpec, GuardrailStatus, MetricEffect, MetricSpec, Verdict};
use std::collections::BTreeMap;

/// The metrics an experiment uses, resolved against what the adapter observes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMetrics {
    /// The metric that decides KEEP.
    pub primary: MetricSpec,
    /// Other success metrics (Holm-corrected together with the primary).
    pub secondary: Vec<MetricSpec>,
    /// Guardrails checked online.
    pub guardrails: Vec<GuardrailSpec>,
    /// Composite exchange weights (metric → weight on its relative effect).
    pub exchange: BTreeMap<String, f64>,
    /// Notes from resolution (metrics not observed, substitutions).
    pub caveats: Vec<String>,
}

fn compare(report: &DayReport, metric: &str) -> Result<Comparison> {
    let arms = report
        .metrics
        .get(metric)
        .ok_or_else(|| OnlineError::MissingMetric {
            metric: metric.to_string(),
            role: "reported".into(),
            available: report
                .metrics
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let c = Comparison::new(&arms[0], &arms[1]);
    if !(c.effect.is_finite() && c.se.is_finite()) {
        return Err(OnlineError::NonFinite {
            metric: metric.to_string(),
            day: report.day,
            detail: format!("effect {}, se {}", c.effect, c.se),
        });
    }
    Ok(c)
}

fn effect_record(metric: &str, c: &Comparison, alpha: f64, p: f64) -> MetricEffect {
    let (lo, hi) = c.ci(alpha);
    MetricEffect {
        metric: metric.to_string(),
        control: c.control,
        treatment: c.treatment,
        effect: c.effect,
        relative: c.relative(),
        ci: (
            Some(lo).filter(|v| v.is_finite()),
            Some(hi).filter(|v| v.is_finite()),
        ),
        p_value: p,
    }
}

/// Decide from cumulative observations.
///
/// KEEP: the primary improves by at least `min_effect`, is significant after Holm across the
/// success metrics, and every guardrail is significantly non-inferior at its hard margin (or the
/// composite exchange score is significantly positive in place of the primary, see below).
/// DISCARD: the primary is significantly worse, cannot reach `min_effect` (its CI lies below it),
/// or a guardrail is significantly worse than its hard margin. EXTEND otherwise.
pub fn decide(
    metrics: &ResolvedMetrics,
    report: &DayReport,
    alpha: f64,
    window_days: u32,
    max_traffic: f64,
    mut caveats: Vec<String>,
) -> Result<Verdict> {
    let mut success: Vec<(&MetricSpec, Comparison)> = Vec::new();
    for spec in std::iter::once(&metrics.primary).chain(metrics.secondary.iter()) {
        success.push((spec, compare(report, &spec.name)?));
    }
    let raw: Vec<f64> = success.iter().map(|(_, c)| c.p_two_sided()).collect();
    let adjusted = holm(&raw);
    let effects: Vec<MetricEffect> = success
        .iter()
        .zip(&adjusted)
        .map(|((s, c), &p)| effect_record(&s.name, c, alpha, p))
        .collect();
    let (pspec, pc) = (&success[0].0, &success[0].1);
    let sign = pspec.direction.sign();
    let improvement = sign * pc.effect;
    let (lo, hi) = pc.ci(alpha);
    let best_case = if sign > 0.0 { hi } else { -lo };
    let p_primary = adjusted[0];

    let mut guardrails = BTreeMap::new();
    let mut all_ok = true;
    let mut harmed = Vec::new();
    for g in &metrics.guardrails {
        let c = compare(report, &g.name)?;
        let better = g.direction.sign();
        let p_ni = c.non_inferiority_p(better, g.hard);
        // significantly worse than the hard margin: the mirrored test
        let p_bad = c.non_inferiority_p(-better, -g.hard);
        let status = if p_ni < alpha {
            if -better * c.relative() > g.attention {
                GuardrailStatus::Attention
            } else {
                GuardrailStatus::Ok
            }
        } else if p_bad < alpha {
            GuardrailStatus::Harm
        } else {
            GuardrailStatus::Inconclusive
        };
        if status == GuardrailStatus::Harm {
            harmed.push(g.name.clone());
        }
        if !matches!(status, GuardrailStatus::Ok | GuardrailStatus::Attention) {
            all_ok = false;
        }
        guardrails.insert(g.name.clone(), status);
    }

    // optional composite exchange score
    let mut exchange_sig = false;
    if !metrics.exchange.is_empty() {
        let mut score = 0.0;
        let mut var = 0.0;
        let mut ok = true;
        for (name, w) in &metrics.exchange {
            match report.metrics.get(name) {
                Some(arms) => {
                    let c = Comparison::new(&arms[0], &arms[1]);
                    let base = c.control.abs();
                    if base > 0.0 {
                        score += w * c.effect / base;
                        var += (w * c.se / base).powi(2);
                    }
                }
                None => {
                    ok = false;
                    caveats.push(format!("exchange metric `{name}` not observed online"));
                }
            }
        }
        if ok && var > 0.0 {
            let z = score / var.sqrt();
            exchange_sig = z > 1.959_963_984_540_054;
            caveats.push(format!(
                "composite exchange score {score:+.4} (z = {z:.2}, metrics assumed independent)"
            ));
        }
    }

    let method = format!(
        "welch-t, holm over {} success metric(s), alpha {alpha}; guardrails: non-inferiority at the hard margin, harm veto by always-valid one-sided test",
        success.len()
    );
    let primary_sig_better = p_primary < alpha && improvement > 0.0;
    let (decision, reason) = if !harmed.is_empty() {
        (
            Decision::Discard,
            format!(
                "guardrail(s) {} significantly worse than the hard margin",
                harmed.join(", ")
            ),
        )
    } else if p_primary < alpha && improvement < 0.0 {
        (
            Decision::Discard,
            format!(
                "primary `{}` significantly worse ({:+.4})",
                pspec.name, pc.effect
            ),
        )
    } else if primary_sig_better && improvement >= pspec.min_effect && all_ok {
        (
            Decision::Keep,
            format!(
                "primary `{}` improved by {:+.4} ({:+.2}%), Holm p = {p_primary:.2e}, min effect {} cleared, all guardrails non-inferior",
                pspec.name,
                pc.effect,
                pc.relative() * 100.0,
                pspec.min_effect
            ),
        )
    } else if exchange_sig && !(p_primary < alpha && improvement < 0.0) && all_ok {
        (
            Decision::Keep,
            "composite exchange score significantly positive and all guardrails non-inferior"
                .into(),
        )
    } else if best_case < pspec.min_effect {
        (
            Decision::Discard,
            format!(
                "primary `{}` cannot reach the minimum effect {} (best case {:+.4})",
                pspec.name, pspec.min_effect, best_case
            ),
        )
    } else if primary_sig_better && improvement >= pspec.min_effect {
        (
            Decision::Extend,
            "primary improved but not every guardrail is shown non-inferior yet".into(),
        )
    } else {
        (
            Decision::Extend,
            format!(
                "evidence insufficient: primary `{}` {:+.4}, Holm p = {p_primary:.3}",
                pspec.name, pc.effect
            ),
        )
    };
    Ok(Verdict {
        decision,
        effects,
        method,
        window_days,
        max_traffic,
        guardrails,
        caveats,
        reason,
    })
}
