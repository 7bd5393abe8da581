//! The verdict in plain code: KEEP, EXTEND or DISCARD from the final observations.

use crate::adapter::DayReport;
use crate::analysis::{Comparison, Interval, stats_error};
use crate::error::Result;
use crate::experiment::{comparison, relative_harm};
use recloop_core::{Decision, Direction, GuardrailStatus, MetricEffect, MetricSpec, Verdict};
use std::collections::BTreeMap;

/// A guardrail as the online tests use it: relative thresholds of harm against control.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineGuardrail {
    /// Metric name.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// Relative harm that escalates to a person.
    pub attention: f64,
    /// Relative harm that blocks (and the non-inferiority margin).
    pub hard: f64,
}

/// The metrics an experiment uses, resolved against what the adapter observes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMetrics {
    /// The metric that decides KEEP.
    pub primary: MetricSpec,
    /// Other success metrics (Holm-corrected together with the primary).
    pub secondary: Vec<MetricSpec>,
    /// Guardrails checked online.
    pub guardrails: Vec<OnlineGuardrail>,
    /// Composite exchange weights (metric → weight on its relative effect).
    pub exchange: BTreeMap<String, f64>,
    /// Notes from resolution (metrics not observed, substitutions).
    pub caveats: Vec<String>,
}

fn effect_record(metric: &str, c: &Comparison, ci: Interval, p: f64) -> MetricEffect {
    MetricEffect {
        metric: metric.to_string(),
        control: c.control,
        treatment: c.treatment,
        effect: c.effect,
        relative: c.relative(),
        ci: (
            ci.0.filter(|v| v.is_finite()),
            ci.1.filter(|v| v.is_finite()),
        ),
        p_value: p,
    }
}

/// The verdict when the primary cannot be compared yet (too few units or no variance).
fn not_comparable(
    metrics: &ResolvedMetrics,
    window_days: u32,
    max_traffic: f64,
    caveats: Vec<String>,
) -> Verdict {
    Verdict {
        decision: Decision::Extend,
        effects: Vec::new(),
        method: "none: the primary metric could not be compared".into(),
        window_days,
        max_traffic,
        guardrails: metrics
            .guardrails
            .iter()
            .map(|g| (g.name.clone(), GuardrailStatus::Inconclusive))
            .collect(),
        caveats,
        reason: format!(
            "evidence insufficient: primary `{}` has too few units or no variance yet",
            metrics.primary.name
        ),
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
    let mut success: Vec<(&MetricSpec, Comparison, (f64, Interval))> = Vec::new();
    for spec in std::iter::once(&metrics.primary).chain(metrics.secondary.iter()) {
        match comparison(report, &spec.name)? {
            Some(c) => {
                let test = c.two_sided(alpha)?;
                success.push((spec, c, test));
            }
            None if spec.name == metrics.primary.name => {
                return Ok(not_comparable(metrics, window_days, max_traffic, caveats));
            }
            None => caveats.push(format!(
                "success metric `{}` could not be compared (too few units or no variance)",
                spec.name
            )),
        }
    }
    let raw: Vec<f64> = success.iter().map(|(_, _, t)| t.0).collect();
    let adjusted = recloop_stats::holm(&raw).map_err(|e| stats_error("Holm correction", e))?;
    let effects: Vec<MetricEffect> = success
        .iter()
        .zip(&adjusted)
        .map(|((s, c, t), &p)| effect_record(&s.name, c, t.1, p))
        .collect();
    let (pspec, pc) = (&success[0].0, &success[0].1);
    let sign = pspec.direction.sign();
    let improvement = sign * pc.effect;
    let (lo, hi) = success[0].2.1;
    let best_case = if sign > 0.0 {
        hi.unwrap_or(f64::INFINITY)
    } else {
        -lo.unwrap_or(f64::NEG_INFINITY)
    };
    let p_primary = adjusted[0];

    let guards = guardrail_statuses(metrics, report, alpha)?;
    let exchange_sig = exchange_significant(metrics, report, &mut caveats)?;
    let method = format!(
        "welch-t, holm over {} success metric(s), alpha {alpha}; guardrails: non-inferiority at the hard margin, harm veto by always-valid one-sided test",
        success.len()
    );
    let (decision, reason) = decision_rule(
        &PrimaryEvidence {
            spec: pspec,
            effect: pc.effect,
            relative: pc.relative(),
            improvement,
            best_case,
            p: p_primary,
            alpha,
        },
        &guards,
        exchange_sig,
    );
    Ok(Verdict {
        decision,
        effects,
        method,
        window_days,
        max_traffic,
        guardrails: guards.statuses,
        caveats,
        reason,
    })
}

/// Each guardrail's status at the end of the window.
struct GuardrailOutcome {
    statuses: BTreeMap<String, GuardrailStatus>,
    /// Every guardrail is shown non-inferior at its hard margin.
    all_ok: bool,
    /// Guardrails significantly worse than their hard margin.
    harmed: Vec<String>,
}

/// Non-inferiority at the hard margin for each guardrail, or harm by the mirrored test.
fn guardrail_statuses(
    metrics: &ResolvedMetrics,
    report: &DayReport,
    alpha: f64,
) -> Result<GuardrailOutcome> {
    let mut statuses = BTreeMap::new();
    let mut all_ok = true;
    let mut harmed = Vec::new();
    for g in &metrics.guardrails {
        let Some(c) = comparison(report, &g.name)? else {
            all_ok = false;
            statuses.insert(g.name.clone(), GuardrailStatus::Inconclusive);
            continue;
        };
        let p_ni = c.non_inferiority_p(g.direction, g.hard, alpha)?;
        // significantly worse than the hard margin: the mirrored test
        let p_bad = c.beyond_margin_p(g.direction, g.hard, alpha)?;
        let status = if p_ni < alpha {
            if relative_harm(&c, g.direction) > g.attention {
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
        statuses.insert(g.name.clone(), status);
    }

    Ok(GuardrailOutcome {
        statuses,
        all_ok,
        harmed,
    })
}

/// The optional composite exchange score: whether it is significantly positive.
fn exchange_significant(
    metrics: &ResolvedMetrics,
    report: &DayReport,
    caveats: &mut Vec<String>,
) -> Result<bool> {
    let mut exchange_sig = false;
    if !metrics.exchange.is_empty() {
        let mut score = 0.0;
        let mut var = 0.0;
        let mut ok = true;
        for (name, w) in &metrics.exchange {
            if !report.metrics.contains_key(name) {
                ok = false;
                caveats.push(format!("exchange metric `{name}` not observed online"));
                continue;
            }
            if let Some(c) = comparison(report, name)? {
                let base = c.control.abs();
                if base > 0.0 {
                    score += w * c.effect / base;
                    var += (w * c.se / base).powi(2);
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

    Ok(exchange_sig)
}

/// The primary metric's evidence that the decision rule reads.
struct PrimaryEvidence<'a> {
    spec: &'a MetricSpec,
    effect: f64,
    relative: f64,
    /// Effect signed so that positive is better.
    improvement: f64,
    /// The best improvement the interval allows.
    best_case: f64,
    /// Holm-adjusted p-value.
    p: f64,
    alpha: f64,
}

/// KEEP / EXTEND / DISCARD with its reason, in the order documented on [`decide`].
fn decision_rule(
    primary: &PrimaryEvidence<'_>,
    guards: &GuardrailOutcome,
    exchange_sig: bool,
) -> (Decision, String) {
    let PrimaryEvidence {
        spec: pspec,
        effect,
        relative,
        improvement,
        best_case,
        p: p_primary,
        alpha,
    } = *primary;
    let (harmed, all_ok) = (&guards.harmed, guards.all_ok);
    let primary_sig_better = p_primary < alpha && improvement > 0.0;
    if !harmed.is_empty() {
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
                pspec.name, effect
            ),
        )
    } else if primary_sig_better && improvement >= pspec.min_effect && all_ok {
        (
            Decision::Keep,
            format!(
                "primary `{}` improved by {:+.4} ({:+.2}%), Holm p = {p_primary:.2e}, min effect {} cleared, all guardrails non-inferior",
                pspec.name,
                effect,
                relative * 100.0,
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
                pspec.name, effect
            ),
        )
    }
}
