//! The guarded experiment: ramp state machine, health gate, harm veto, escalation, verdict.

use crate::adapter::{Adapter, DayReport};
use crate::analysis::{Comparison, stats_error};
use crate::error::{OnlineError, Result};
use crate::verdict::{OnlineGuardrail, ResolvedMetrics, decide};
use recloop_core::{Decision, Direction, GuardrailSpec, Manifest, MetricSpec, Verdict};
use recloop_stats::{srm_chi2, srm_sequential};
use serde::{Deserialize, Serialize};

/// Settings of one experiment beyond the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSettings {
    /// Experiment id (used in events and for the assignment seed).
    pub id: String,
    /// Seed of the assignment hash and the simulator.
    pub seed: u64,
    /// Approve mode: attention escalations wait for the observer's answer.
    pub approve: bool,
    /// Online primary metric; `None` uses the manifest's `[online] primary`, else its `[metrics]`
    /// primary if observed online, else its north star.
    pub primary: Option<MetricSpec>,
    /// Guardrails observed online in addition to the manifest's.
    pub online_guardrails: Vec<GuardrailSpec>,
    /// Fail when a manifest metric is not observed (otherwise it is skipped with a caveat).
    pub strict_metrics: bool,
    /// Tuning N* of the always-valid sequential harm test (units where it is most sensitive).
    pub sequential_tuning: f64,
    /// Dirichlet concentration of the sequential SRM test.
    pub srm_concentration: f64,
    /// Fixed-horizon SRM threshold.
    pub srm_threshold: f64,
    /// Minimum units per arm before SRM and the veto are checked.
    pub min_units_per_arm: u64,
    /// Override of the manifest's maximum duration in days.
    pub max_days: Option<u32>,
    /// Multiplier of the simulated population (an extended experiment reruns larger). Adapters
    /// over real traffic or logs have no population to scale and ignore it.
    pub population_scale: u32,
    /// One-sided fixed-horizon p-value below which a guardrail worse than its hard threshold
    /// blocks a ramp advance from the second step on (the first advance needs α; the veto itself
    /// stays at α, always-valid).
    pub block_evidence: f64,
}

impl Default for ExperimentSettings {
    fn default() -> Self {
        ExperimentSettings {
            id: "experiment".into(),
            seed: 42,
            approve: false,
            primary: None,
            online_guardrails: Vec::new(),
            strict_metrics: false,
            sequential_tuning: 500.0,
            srm_concentration: 100.0,
            srm_threshold: 0.001,
            min_units_per_arm: 8,
            max_days: None,
            population_scale: 1,
            block_evidence: 0.2,
        }
    }
}

/// What the observer (the journal) is told, before the platform acts on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExperimentEvent {
    /// The experiment starts.
    Started {
        /// Experiment id.
        id: String,
        /// Adapter name.
        platform: String,
        /// Traffic steps.
        ramp: Vec<f64>,
        /// Online primary metric.
        primary: String,
        /// Guardrails checked online.
        guardrails: Vec<String>,
        /// Maximum days.
        max_days: u32,
    },
    /// A day of traffic was observed.
    Day {
        /// Day.
        day: u32,
        /// Treatment share.
        share: f64,
        /// Units per arm `[control, treatment]`.
        units: [u64; 2],
    },
    /// The health gate failed: traffic is held and the experiment is invalid.
    Hold {
        /// Day.
        day: u32,
        /// Share.
        share: f64,
        /// Fixed χ² SRM p-value.
        srm_p: f64,
        /// Sequential SRM p-value.
        srm_sequential_p: f64,
    },
    /// A guardrail crossed its attention threshold: a person is asked.
    Escalation {
        /// Day.
        day: u32,
        /// Share.
        share: f64,
        /// Guardrail.
        metric: String,
        /// Relative harm observed (positive = worse).
        relative_harm: f64,
        /// Attention threshold.
        threshold: f64,
    },
    /// A guardrail's harm beyond the hard threshold blocks the next advance.
    Blocked {
        /// Day.
        day: u32,
        /// Share.
        share: f64,
        /// Guardrail.
        metric: String,
        /// Relative harm observed.
        relative_harm: f64,
        /// Hard threshold.
        threshold: f64,
    },
    /// Traffic moves to the next step.
    RampAdvanced {
        /// Day.
        day: u32,
        /// Old share.
        from: f64,
        /// New share.
        to: f64,
    },
    /// Significant harm (or a rejected escalation): traffic goes back to 0.
    Rollback {
        /// Day.
        day: u32,
        /// Share at the rollback.
        share: f64,
        /// Guardrail that triggered it.
        metric: String,
        /// Absolute effect.
        effect: f64,
        /// Relative effect.
        relative: f64,
        /// Always-valid one-sided p-value of harm (1 for a rejected escalation).
        p_value: f64,
    },
    /// The verdict.
    Verdict {
        /// The record.
        verdict: Verdict,
    },
}

/// The observer's answer to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Recorded; go on (for an escalation in approve mode: approved).
    Continue,
    /// For an escalation in approve mode: rejected, roll back. Otherwise same as `Continue`.
    Reject,
    /// Abort the experiment (e.g. the journal could not record the event).
    Stop(String),
}

/// How the experiment ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Ran to a verdict.
    Completed,
    /// Rolled back by the harm veto or a rejected escalation.
    RolledBack {
        /// Day.
        day: u32,
        /// Share at the rollback.
        share: f64,
        /// Guardrail.
        metric: String,
    },
    /// Held by the health gate (invalid).
    Held {
        /// Day.
        day: u32,
        /// Share.
        share: f64,
    },
}

/// Everything an experiment produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The verdict record.
    pub verdict: Verdict,
    /// How it ended.
    pub outcome: Outcome,
    /// Days run.
    pub days: u32,
    /// Highest treatment share reached.
    pub max_share: f64,
    /// Attention escalations raised.
    pub escalations: u32,
    /// The final cumulative observations.
    pub last_report: DayReport,
}

fn emit(
    observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    event: &ExperimentEvent,
    day: u32,
) -> Result<Ack> {
    match observer(event) {
        Ack::Stop(reason) => Err(OnlineError::Stopped { day, reason }),
        ack => Ok(ack),
    }
}

/// Resolve which metrics the experiment uses, against what the adapter observes.
pub fn resolve_metrics(
    manifest: &Manifest,
    settings: &ExperimentSettings,
    available: &[String],
) -> Result<ResolvedMetrics> {
    let observed = |n: &str| available.iter().any(|a| a == n);
    let list = available.join(", ");
    let missing = |metric: &str, role: &str| OnlineError::MissingMetric {
        metric: metric.to_string(),
        role: role.to_string(),
        available: list.clone(),
    };
    let mut caveats = Vec::new();
    let m = &manifest.metrics;
    let primary = if let Some(p) = settings
        .primary
        .as_ref()
        .or(manifest.online.primary.as_ref())
    {
        if !observed(&p.name) {
            return Err(missing(&p.name, "online primary"));
        }
        p.clone()
    } else if observed(&m.primary.name) {
        m.primary.clone()
    } else if let Some(ns) = m.north_star.as_ref().filter(|ns| observed(&ns.name)) {
        if settings.strict_metrics {
            return Err(missing(&m.primary.name, "primary"));
        }
        caveats.push(format!(
            "primary `{}` is an offline metric; the online verdict uses the north star `{}`",
            m.primary.name, ns.name
        ));
        ns.clone()
    } else {
        return Err(missing(
            &m.primary.name,
            "primary (and no observed north star)",
        ));
    };
    let mut secondary = Vec::new();
    for s in m.secondary.iter().chain(m.north_star.iter()) {
        if s.name == primary.name || secondary.iter().any(|x: &MetricSpec| x.name == s.name) {
            continue;
        }
        if observed(&s.name) {
            secondary.push(s.clone());
        } else if settings.strict_metrics {
            return Err(missing(&s.name, "secondary"));
        } else {
            caveats.push(format!("success metric `{}` not observed online", s.name));
        }
    }
    let mut guardrails: Vec<OnlineGuardrail> = Vec::new();
    for g in m.guardrails.iter().chain(settings.online_guardrails.iter()) {
        if guardrails.iter().any(|x| x.name == g.name) {
            continue;
        }
        let Some((attention, hard)) = g.relative_limits() else {
            caveats.push(format!(
                "guardrail `{}` has only absolute limits: checked offline, not online",
                g.name
            ));
            continue;
        };
        if observed(&g.name) {
            guardrails.push(OnlineGuardrail {
                name: g.name.clone(),
                direction: g.direction,
                attention,
                hard,
            });
        } else if settings.strict_metrics {
            return Err(missing(&g.name, "guardrail"));
        } else {
            caveats.push(format!("guardrail `{}` is not observed online", g.name));
        }
    }
    Ok(ResolvedMetrics {
        primary,
        secondary,
        guardrails,
        exchange: m.exchange.clone(),
        caveats,
    })
}

/// The comparison of `metric` in `report`: an error when the adapter did not report it or it is
/// not finite, `None` while the data cannot be compared yet (too few units, no variance).
pub(crate) fn comparison(report: &DayReport, metric: &str) -> Result<Option<Comparison>> {
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
    Comparison::of(metric, report.day, arms)
}

/// Relative harm of a comparison for a guardrail (positive = worse).
pub(crate) fn relative_harm(c: &Comparison, direction: Direction) -> f64 {
    -direction.sign() * c.relative()
}

/// Run a guarded experiment through `adapter`: ramp, health gate, harm veto, escalations and
/// verdict. Every event goes to `observer` before the platform acts on it.
pub fn run_with_adapter(
    manifest: &Manifest,
    adapter: &mut dyn Adapter,
    settings: &ExperimentSettings,
    observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
) -> Result<ExperimentReport> {
    let online = &manifest.online;
    let mut max_days = settings.max_days.unwrap_or(online.max_days);
    if let Some(avail) = adapter.days_available() {
        max_days = max_days.min(avail);
    }
    if max_days == 0 {
        return Err(OnlineError::Config {
            field: "max_days".into(),
            reason: "the experiment needs at least one day".into(),
        });
    }
    let metrics = resolve_metrics(manifest, settings, &adapter.metrics())?;
    let mut run = GuardedRun {
        alpha: online.alpha,
        ramp: &online.ramp,
        min_days: online.min_days_per_step.max(1),
        caveats: metrics.caveats.clone(),
        metrics,
        settings,
        observer,
        step: 0,
        days_in_step: 0,
        srm_seq_min: 1.0,
        escalated: Vec::new(),
        escalations: 0,
        max_share: 0.0,
        last: DayReport::default(),
    };
    run.emit(
        &ExperimentEvent::Started {
            id: settings.id.clone(),
            platform: adapter.name().to_string(),
            ramp: run.ramp.to_vec(),
            primary: run.metrics.primary.name.clone(),
            guardrails: run
                .metrics
                .guardrails
                .iter()
                .map(|g| g.name.clone())
                .collect(),
            max_days,
        },
        0,
    )?;
    for day in 0..max_days {
        if let Some((verdict, outcome)) = run.day(adapter, day)? {
            return run.finish(verdict, outcome, day + 1);
        }
    }
    let mut verdict = run.decide(max_days)?;
    if verdict.decision == Decision::Keep && run.step + 1 < run.ramp.len() {
        verdict.decision = Decision::Extend;
        verdict.reason = format!(
            "the ramp did not reach its last step ({:.0}%) within {max_days} days",
            run.ramp[run.ramp.len() - 1] * 100.0
        );
    }
    run.finish(verdict, Outcome::Completed, max_days)
}

/// The state of one guarded experiment between days.
struct GuardedRun<'a> {
    alpha: f64,
    ramp: &'a [f64],
    min_days: u32,
    metrics: ResolvedMetrics,
    settings: &'a ExperimentSettings,
    observer: &'a mut dyn FnMut(&ExperimentEvent) -> Ack,
    caveats: Vec<String>,
    /// Index of the current ramp step.
    step: usize,
    days_in_step: u32,
    /// Running minimum of the sequential SRM p-value (always-valid).
    srm_seq_min: f64,
    /// (step, guardrail) pairs already escalated: one escalation per guardrail and step.
    escalated: Vec<(usize, String)>,
    escalations: u32,
    max_share: f64,
    last: DayReport,
}

/// How a day ended the experiment early: the verdict and the outcome.
type EarlyEnd = Option<(Verdict, Outcome)>;

impl GuardedRun<'_> {
    fn emit(&mut self, event: &ExperimentEvent, day: u32) -> Result<Ack> {
        emit(self.observer, event, day)
    }

    /// The verdict on the observations so far, `days` days in.
    fn decide(&self, days: u32) -> Result<Verdict> {
        decide(
            &self.metrics,
            &self.last,
            self.alpha,
            days,
            self.max_share,
            self.caveats.clone(),
        )
    }

    /// One day: observe, then the health gate, the harm veto, and the checks before advancing.
    fn day(&mut self, adapter: &mut dyn Adapter, day: u32) -> Result<EarlyEnd> {
        let share = self.ramp[self.step];
        self.max_share = self.max_share.max(share);
        let report = adapter.run_day(day, share)?;
        self.emit(
            &ExperimentEvent::Day {
                day,
                share,
                units: report.units,
            },
            day,
        )?;
        self.last = report;
        let enough = self
            .last
            .units
            .iter()
            .all(|&u| u >= self.settings.min_units_per_arm);
        if enough {
            if let Some(end) = self.health_gate(day, share)? {
                return Ok(Some(end));
            }
            if let Some(end) = self.harm_veto(day, share)? {
                return Ok(Some(end));
            }
        }
        self.days_in_step += 1;
        if self.days_in_step < self.min_days || self.step + 1 >= self.ramp.len() {
            // on the last step, traffic stays until the maximum duration: the fixed-horizon
            // verdict is computed once, at the end (no repeated peeking)
            return Ok(None);
        }
        self.advance_or_hold(day, share)
    }

    /// The health gate: a sample ratio mismatch holds traffic and makes the evidence invalid.
    fn health_gate(&mut self, day: u32, share: f64) -> Result<EarlyEnd> {
        let counts = [self.last.units[0] as f64, self.last.units[1] as f64];
        let p_fixed = srm_chi2(&counts, &[1.0, 1.0])
            .map_err(|e| stats_error("SRM χ² test", e))?
            .p;
        self.srm_seq_min = srm_sequential(
            &counts,
            &[1.0, 1.0],
            self.settings.srm_concentration,
            Some(self.srm_seq_min),
        )
        .map_err(|e| stats_error("sequential SRM test", e))?
        .p;
        let srm_seq = self.srm_seq_min;
        if p_fixed >= self.settings.srm_threshold && srm_seq >= self.alpha {
            return Ok(None);
        }
        self.emit(
            &ExperimentEvent::Hold {
                day,
                share,
                srm_p: p_fixed,
                srm_sequential_p: srm_seq,
            },
            day,
        )?;
        self.caveats.push(format!(
            "sample ratio mismatch on day {day} (units {:?}, χ² p = {p_fixed:.2e}, sequential p = {srm_seq:.2e}): experiment invalid",
            self.last.units
        ));
        let mut verdict = self.decide(day + 1)?;
        verdict.decision = Decision::Extend;
        verdict.reason =
            "health gate failed (sample ratio mismatch): traffic held, evidence invalid".into();
        Ok(Some((verdict, Outcome::Held { day, share })))
    }

    /// The harm veto: a guardrail significantly harmed (always-valid) rolls traffic back.
    fn harm_veto(&mut self, day: u32, share: f64) -> Result<EarlyEnd> {
        let guardrails = self.metrics.guardrails.clone();
        for g in &guardrails {
            let Some(c) = comparison(&self.last, &g.name)? else {
                continue;
            };
            let p = c.harm_p(g.direction, self.alpha, self.settings.sequential_tuning)?;
            if p >= self.alpha {
                continue;
            }
            self.emit(
                &ExperimentEvent::Rollback {
                    day,
                    share,
                    metric: g.name.clone(),
                    effect: c.effect,
                    relative: c.relative(),
                    p_value: p,
                },
                day,
            )?;
            let mut verdict = self.decide(day + 1)?;
            verdict.decision = Decision::Discard;
            verdict
                .guardrails
                .insert(g.name.clone(), recloop_core::GuardrailStatus::Harm);
            verdict.reason = format!(
                "rolled back at {:.0}% traffic on day {day}: guardrail `{}` significantly harmed ({:+.2}% relative, always-valid p = {p:.2e})",
                share * 100.0,
                g.name,
                c.relative() * 100.0
            );
            return Ok(Some((verdict, rolled_back(day, share, &g.name))));
        }
        Ok(None)
    }

    /// Before advancing the ramp: a guardrail past its hard threshold blocks the advance; past
    /// its attention threshold it is escalated (in approve mode, a rejection rolls back).
    fn advance_or_hold(&mut self, day: u32, share: f64) -> Result<EarlyEnd> {
        let mut blocked = false;
        let guardrails = self.metrics.guardrails.clone();
        for g in &guardrails {
            let Some(c) = comparison(&self.last, &g.name)? else {
                continue;
            };
            let harm = relative_harm(&c, g.direction);
            // past the second step, a hard threshold blocks the advance on weaker evidence
            // (`block_evidence`) than an attention escalation (α): holding traffic at a small
            // share costs time, not correctness
            let p_harm = c.fixed_harm_p(g.direction, self.alpha)?;
            let evidence = if self.step >= 1 {
                self.settings.block_evidence.max(self.alpha)
            } else {
                self.alpha
            };
            if harm > g.hard && p_harm < evidence {
                blocked = true;
                self.emit(
                    &ExperimentEvent::Blocked {
                        day,
                        share,
                        metric: g.name.clone(),
                        relative_harm: harm,
                        threshold: g.hard,
                    },
                    day,
                )?;
            } else if p_harm < self.alpha
                && harm > g.attention
                && !self.escalated.contains(&(self.step, g.name.clone()))
                && let Some(end) = self.escalate(day, share, g, &c, harm)?
            {
                return Ok(Some(end));
            }
        }
        if !blocked {
            let to = self.ramp[self.step + 1];
            self.emit(
                &ExperimentEvent::RampAdvanced {
                    day,
                    from: share,
                    to,
                },
                day,
            )?;
            self.step += 1;
            self.days_in_step = 0;
        }
        Ok(None)
    }

    /// An attention escalation on `g`; a rejection in approve mode rolls back.
    fn escalate(
        &mut self,
        day: u32,
        share: f64,
        g: &OnlineGuardrail,
        c: &Comparison,
        harm: f64,
    ) -> Result<EarlyEnd> {
        self.escalated.push((self.step, g.name.clone()));
        self.escalations += 1;
        let ack = self.emit(
            &ExperimentEvent::Escalation {
                day,
                share,
                metric: g.name.clone(),
                relative_harm: harm,
                threshold: g.attention,
            },
            day,
        )?;
        self.caveats.push(format!(
            "attention: `{}` {:.1}% worse at {:.0}% traffic on day {day}{}",
            g.name,
            harm * 100.0,
            share * 100.0,
            if self.settings.approve {
                " (escalated for approval: approved, see the approval record)"
            } else {
                " (recorded; nobody was asked)"
            }
        ));
        if !(self.settings.approve && ack == Ack::Reject) {
            return Ok(None);
        }
        self.emit(
            &ExperimentEvent::Rollback {
                day,
                share,
                metric: g.name.clone(),
                effect: c.effect,
                relative: c.relative(),
                p_value: 1.0,
            },
            day,
        )?;
        let mut verdict = self.decide(day + 1)?;
        verdict.decision = Decision::Discard;
        verdict
            .guardrails
            .insert(g.name.clone(), recloop_core::GuardrailStatus::Attention);
        verdict.reason = format!(
            "rolled back: a person rejected the escalation on `{}` at {:.0}% traffic",
            g.name,
            share * 100.0
        );
        Ok(Some((verdict, rolled_back(day, share, &g.name))))
    }

    /// Emit the verdict and assemble the report.
    fn finish(self, verdict: Verdict, outcome: Outcome, days: u32) -> Result<ExperimentReport> {
        emit(
            self.observer,
            &ExperimentEvent::Verdict {
                verdict: verdict.clone(),
            },
            days,
        )?;
        Ok(ExperimentReport {
            verdict,
            outcome,
            days,
            max_share: self.max_share,
            escalations: self.escalations,
            last_report: self.last,
        })
    }
}

fn rolled_back(day: u32, share: f64, metric: &str) -> Outcome {
    Outcome::RolledBack {
        day,
        share,
        metric: metric.to_string(),
    }
}
