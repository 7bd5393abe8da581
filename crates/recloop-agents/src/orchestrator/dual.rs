//! The dual loop (`[run] mode = "dual"`), after YouTube's self-evolving recommender: each
//! iteration a **fast loop** develops up to `[run] fast_trials` proposals and runs only the
//! offline stages on them (validation, offline guardrails, sealed holdout, off-policy replay),
//! putting the candidates that pass into a pool; a **slow loop** ranks the pool and promotes its
//! best to `[online] slots` online experiments that run side by side in the workspace's layer
//! (the layer's conflict check: disjoint traffic, no two experiments on one pipeline stage).
//!
//! A candidate's states are journaled as `candidate_state` events: `proposed` → `validated`
//! (in the pool, with its offline evidence and the production commit it was measured against)
//! → `live` (promoted, with its rank and score) → `completed` (decided), or `retired` (left
//! the pool undecided: outranked, or production moved on so its evidence is stale). The pool
//! lives in the journal, so a later run continues from the pool an earlier one left (the
//! warm start) and a killed run resumes where it stopped: every step is keyed like the single
//! loop's.
//!
//! The ranking is plain code: a candidate's offline lift over production (on its persona's proxy
//! when one judged it), times the posterior
//! probability (Beta(1, 1) prior) that a candidate on its lever is kept once online, from the
//! journal's online verdicts; so a region that looked good offline and failed with users is
//! steered away from. A candidate is promoted only when its experiment is likely to end KEEP
//! (the power bar: its predicted online effect against the noise of the journal's recent
//! experiments) and it is stronger offline than any candidate that failed online on its stage;
//! otherwise it waits, and an idle slot costs no simulated days. A promoted candidate whose
//! experiment ends inconclusive continues (its extension runs) only while it stays in the top
//! K: its extension must be likely to end KEEP and no less likely than the best candidate
//! waiting in the pool; otherwise it stops there with EXTEND.

use super::{Batch, CandidateOutcome, Loop, ProductionState, RunConfig, StepCounter, Unsettled};
use crate::approvals::Approvals;
use crate::develop::DevelopResult;
use crate::error::{AgentError, Result};
use crate::evaluate::{OfflineEvidence, OfflineOutcome, SealedHoldout};
use crate::evaluate::{evaluate_offline, evaluate_online};
use crate::history::History;
use crate::record::Recorder;
use recloop_core::manifest::EXTENSION_SCALE;
use recloop_core::{Candidate, Decision, MetricSpec, Proposal};
use recloop_journal::{Event, EventRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A candidate that passed every offline stage, waiting in the pool for an online slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PoolEntry {
    proposal: Proposal,
    candidate: Candidate,
    evidence: OfflineEvidence,
}

/// What the fast loop made of one proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum FastOutcome {
    /// Decided offline, or stopped in Develop or by the machinery.
    Decided(Box<CandidateOutcome>),
    /// Passed the offline stages: in the pool.
    Validated(Box<PoolEntry>),
}

/// A pool entry with its rank's inputs.
#[derive(Debug, Clone)]
struct Ranked {
    entry: PoolEntry,
    /// Relative offline gain over production, signed so that higher is better.
    lift: f64,
    /// Candidates on the same lever kept / not kept online, in the journal.
    kept: u32,
    failed: u32,
    /// `lift × P(kept online | lever)`.
    score: f64,
}

/// The pool's ranking, best first (ties by proposal id).
fn rank(pool: Vec<PoolEntry>, history: &History, sign: f64) -> Vec<Ranked> {
    let mut record: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for t in history.trials.iter().filter(|t| t.online) {
        let r = record.entry(t.proposal.lever.as_str()).or_default();
        match t.decision {
            Some(Decision::Keep) => r.0 += 1,
            Some(_) => r.1 += 1,
            None => {}
        }
    }
    let mut ranked: Vec<Ranked> = pool
        .into_iter()
        .map(|entry| {
            let e = &entry.evidence;
            // a persona judged by a proxy competes on the proxy's lift
            let lift = e.judged_lift(sign);
            let (kept, failed) = record
                .get(entry.proposal.lever.as_str())
                .copied()
                .unwrap_or_default();
            let p_keep = f64::from(kept + 1) / f64::from(kept + failed + 2);
            Ranked {
                score: lift * p_keep,
                entry,
                lift,
                kept,
                failed,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entry.proposal.id.cmp(&b.entry.proposal.id))
    });
    ranked
}

/// A candidate that went online from the pool and was not kept.
#[derive(Debug, Clone, PartialEq)]
struct OnlineFailure {
    proposal_id: String,
    /// Its pipeline stage (or lever).
    stage: String,
    /// Its relative offline lift when it was validated.
    lift: f64,
}

/// The pool's candidates that went online and were not kept, with their offline lift: a
/// candidate no stronger offline on the same stage is not promoted.
fn online_failures(events: &[EventRecord], sign: f64) -> Vec<OnlineFailure> {
    let lift = offline_lifts(events, sign);
    let mut stage: BTreeMap<&str, String> = BTreeMap::new();
    let mut failed = Vec::new();
    for r in events {
        match &r.event {
            Event::ProposalMade { proposal } => {
                stage.insert(&proposal.id, layer_parameter(proposal).to_string());
            }
            Event::Verdict {
                proposal_id,
                experiment_id: Some(_),
                verdict,
                ..
            } if verdict.decision != Decision::Keep => failed.push(proposal_id.as_str()),
            _ => {}
        }
    }
    failed
        .into_iter()
        .filter_map(|p| {
            Some(OnlineFailure {
                proposal_id: p.to_string(),
                stage: stage.get(p)?.clone(),
                lift: *lift.get(p)?,
            })
        })
        .collect()
}

/// Each validated pool candidate's offline lift ([`OfflineEvidence::judged_lift`]), by proposal.
fn offline_lifts(events: &[EventRecord], sign: f64) -> BTreeMap<&str, f64> {
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::CandidateState {
                proposal_id,
                offline: Some(offline),
                ..
            } => serde_json::from_value::<OfflineEvidence>(offline.clone())
                .ok()
                .map(|e| (proposal_id.as_str(), e.judged_lift(sign))),
            _ => None,
        })
        .collect()
}

/// How offline lift has translated into online effect in this journal: the slope of the online
/// primary's relative effect on the offline lift (least squares through the origin) over the
/// pool's candidates that went online.
#[derive(Debug, Clone, PartialEq)]
struct Calibration {
    /// Relative online effect per unit of relative offline lift.
    slope: f64,
    /// Experiments it was fitted on.
    experiments: usize,
}

/// Fewest online experiments of pool candidates before their offline lift is calibrated.
const CALIBRATE_AFTER: usize = 3;

/// [`Calibration`] from the journal, when at least [`CALIBRATE_AFTER`] pool candidates went
/// online and their effects rise with their lift (a slope ≤ 0 calibrates nothing).
fn calibration(events: &[EventRecord], sign: f64, online: &MetricSpec) -> Option<Calibration> {
    let lift = offline_lifts(events, sign);
    let mut pairs = Vec::new();
    for r in events {
        let Event::Verdict {
            proposal_id,
            experiment_id: Some(_),
            verdict,
            ..
        } = &r.event
        else {
            continue;
        };
        let Some(x) = lift.get(proposal_id.as_str()) else {
            continue;
        };
        let Some(e) = verdict.effects.iter().find(|e| e.metric == online.name) else {
            continue;
        };
        pairs.push((*x, online.direction.sign() * e.relative));
    }
    let sxx: f64 = pairs.iter().map(|(x, _)| x * x).sum();
    let sxy: f64 = pairs.iter().map(|(x, y)| x * y).sum();
    (pairs.len() >= CALIBRATE_AFTER && sxx > 0.0 && sxy > 0.0).then(|| Calibration {
        slope: sxy / sxx,
        experiments: pairs.len(),
    })
}

/// How noisy the online primary has been: the relative standard error of its effect at the end
/// of the journal's latest online experiments (CI half-width / z(1 − α/2) / |control|; the
/// median of the last [`NOISE_WINDOW`]), and the minimum effect relative to the latest control.
#[derive(Debug, Clone, PartialEq)]
struct OnlineNoise {
    /// Relative standard error of the online primary's effect.
    se: f64,
    /// The online minimum effect relative to production's latest online value.
    needed: f64,
    /// Experiments it was measured on.
    experiments: usize,
}

/// Latest online experiments [`OnlineNoise`] is measured on.
const NOISE_WINDOW: usize = 5;

/// Least predicted chance of a KEEP for the slow loop to spend an online slot on a candidate
/// (once the journal holds an online experiment to measure the noise on).
const MIN_KEEP_CHANCE: f64 = 0.5;

/// z(1 − α/2), the two-sided critical value the verdicts use.
fn z_two_sided(alpha: f64) -> Option<f64> {
    recloop_stats::distributions::normal_quantile(1.0 - alpha / 2.0).ok()
}

/// One experiment's measurement of the online primary, relative to its control: the effect
/// (signed so that higher is better), its standard error (CI half-width / z / |control|), and
/// the minimum effect. `None` without a two-sided CI.
fn relative_measurement(
    v: &recloop_core::Verdict,
    online: &MetricSpec,
    z: f64,
) -> Option<(f64, f64, f64)> {
    let e = v.effects.iter().find(|e| e.metric == online.name)?;
    let (lo, hi) = (e.ci.0?, e.ci.1?);
    let control = e.control.abs();
    (control > 0.0 && hi > lo).then(|| {
        (
            online.direction.sign() * e.relative,
            (hi - lo) / (2.0 * z * control),
            online.min_effect / control,
        )
    })
}

/// The bar an experiment with standard error `se` must measure (significance or the minimum
/// effect, whichever is larger) and the chance Φ((effect − bar) / se) that it does.
fn keep_chance(effect: f64, se: f64, needed: f64, z: f64) -> (f64, f64) {
    let bar = (z * se).max(needed);
    (
        bar,
        recloop_stats::distributions::normal_cdf((effect - bar) / se),
    )
}

/// [`OnlineNoise`] from the journal's online verdicts on `online`, or `None` before any.
fn online_noise(events: &[EventRecord], online: &MetricSpec, alpha: f64) -> Option<OnlineNoise> {
    let z = z_two_sided(alpha)?;
    let measured: Vec<(f64, f64)> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::Verdict {
                experiment_id: Some(_),
                verdict,
                ..
            } => relative_measurement(verdict, online, z).map(|(_, se, needed)| (se, needed)),
            _ => None,
        })
        .collect();
    let latest = &measured[measured.len().saturating_sub(NOISE_WINDOW)..];
    let (_, needed) = *latest.last()?;
    Some(OnlineNoise {
        se: crate::workers_bench::median(latest.iter().map(|(se, _)| *se).collect()),
        needed,
        experiments: latest.len(),
    })
}

/// What the power bar reads from the journal: α, the noise of the online primary in recent
/// experiments (none before the first) and the calibration of offline lift (none before three).
struct PowerBar {
    alpha: f64,
    noise: Option<OnlineNoise>,
    calibrated: Option<Calibration>,
}

impl PowerBar {
    fn of(l: &Loop, events: &[EventRecord]) -> PowerBar {
        let online = l.online_primary();
        let alpha = l.manifest.online.alpha;
        let sign = l.manifest.metrics.primary.direction.sign();
        PowerBar {
            noise: online_noise(events, &online, alpha),
            calibrated: calibration(events, sign, &online),
            alpha,
        }
    }

    /// The outlook of a candidate with relative offline lift `lift`, once there is noise.
    fn outlook(&self, lift: f64) -> Option<(Outlook, &OnlineNoise)> {
        let noise = self.noise.as_ref()?;
        Some((
            outlook(lift, self.calibrated.as_ref(), noise, self.alpha)?,
            noise,
        ))
    }
}

/// What the journal predicts for a candidate online.
#[derive(Debug, Clone, PartialEq)]
struct Outlook {
    /// Expected relative effect on the online primary: offline lift × the calibrated slope, or
    /// × 1 before there is a calibration (an offline lift carries over one to one).
    effect: f64,
    /// Approximate chance that its experiment ends KEEP: that the measured effect clears both
    /// the significance bar z(1 − α/2) × SE and the minimum effect, Φ((effect − bar) / SE).
    keep_chance: f64,
    /// The bar the measured effect must clear.
    bar: f64,
}

fn outlook(
    lift: f64,
    calibrated: Option<&Calibration>,
    noise: &OnlineNoise,
    alpha: f64,
) -> Option<Outlook> {
    let effect = calibrated.map_or(1.0, |c| c.slope) * lift;
    let (bar, keep_chance) = keep_chance(effect, noise.se, noise.needed, z_two_sided(alpha)?);
    Some(Outlook {
        effect,
        keep_chance,
        bar,
    })
}

/// Whether an inconclusive experiment stays in the top K: its extension (a new experiment with
/// [`EXTENSION_SCALE`] times the users, so its standard error is the measured one over
/// √EXTENSION_SCALE) is predicted to end KEEP with a chance of at least [`MIN_KEEP_CHANCE`],
/// taking the measured effect as the true one, and no lower than the best candidate waiting in
/// the pool (`best_waiting`). Without a two-sided CI on the online primary there is nothing to
/// judge by, and the experiment is extended.
fn extension_outlook(
    v: &recloop_core::Verdict,
    online: &MetricSpec,
    alpha: f64,
    best_waiting: Option<f64>,
) -> crate::evaluate::Continuation {
    let measured = z_two_sided(alpha).and_then(|z| Some((z, relative_measurement(v, online, z)?)));
    let Some((z, (effect, se, needed))) = measured else {
        return crate::evaluate::Continuation {
            extend: true,
            reason: format!("no confidence interval on {} to judge by", online.name),
        };
    };
    let se_next = se / f64::from(EXTENSION_SCALE).sqrt();
    let (bar, chance) = keep_chance(effect, se_next, needed, z);
    let numbers = format!(
        "measured {:+.2}% ± {:.2}% (one SE); an extension with {EXTENSION_SCALE}× the users must \
         measure at least {:.2}%, P(KEEP) ≈ {chance:.2}",
        100.0 * effect,
        100.0 * se,
        100.0 * bar
    );
    let (extend, why) = match best_waiting {
        _ if chance < MIN_KEEP_CHANCE => (
            false,
            format!("{numbers} < {MIN_KEEP_CHANCE}: not worth the slot"),
        ),
        Some(w) if chance < w => (
            false,
            format!("{numbers}, below the best waiting candidate's {w:.2}: it left the top K"),
        ),
        _ => (true, numbers),
    };
    crate::evaluate::Continuation {
        extend,
        reason: why,
    }
}

/// What a candidate changes, for the layer's conflict check: its pipeline stage (two
/// candidates that change the candidate generator are alternatives, not compatible changes:
/// only one of them could be merged), else its lever.
fn layer_parameter(p: &Proposal) -> &str {
    if p.stage.is_empty() {
        &p.lever
    } else {
        &p.stage
    }
}

fn state_event(proposal_id: &str, state: &str, reason: String) -> Event {
    Event::CandidateState {
        proposal_id: proposal_id.to_string(),
        state: state.to_string(),
        reason,
        score: None,
        base_commit: None,
        offline: None,
    }
}

fn json_error(e: serde_json::Error) -> AgentError {
    AgentError::Journal(format!("dual loop state: {e}"))
}

impl Loop {
    /// One iteration of the dual loop: the fast loop over the admitted batch, then the slow
    /// loop's promotion and online experiments. Returns every candidate decided in it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dual_iteration(
        &self,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        admitted: &[Proposal],
        prod: &ProductionState,
        approvals: &Approvals,
        steps: &mut StepCounter,
    ) -> Result<Batch> {
        let mut outcomes = Vec::new();
        match self.fast_loop(rec, cfg, it, admitted, prod, approvals, steps)? {
            Batch::Done(decided) => outcomes.extend(decided),
            other => return Ok(other),
        }
        match self.slow_loop(rec, cfg, it, prod, approvals, steps)? {
            Batch::Done(decided) => outcomes.extend(decided),
            other => return Ok(other),
        }
        outcomes.sort_by(|a, b| a.proposal.id.cmp(&b.proposal.id));
        Ok(Batch::Done(outcomes))
    }

    /// Develop up to `fast_trials` proposals (`workers` at a time) and run the offline stages:
    /// the candidates that pass join the pool (`validated`), the others are decided here.
    #[allow(clippy::too_many_arguments)]
    fn fast_loop(
        &self,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        admitted: &[Proposal],
        prod: &ProductionState,
        approvals: &Approvals,
        steps: &mut StepCounter,
    ) -> Result<Batch> {
        let mut selected = super::runnable(admitted);
        selected.truncate(cfg.fast_trials);
        let prod_dir = self.production_dir();
        self.repo.checkout_detached(&prod_dir, &prod.commit)?;
        let events = self.events()?;
        let history = History::from_events(&events, &self.manifest.metrics.primary.name);
        let mut decided = Vec::new();
        let mut unsettled = Unsettled::default();
        for (chunk_no, chunk) in selected.chunks(cfg.workers).enumerate() {
            let mut pending = Vec::new();
            for (i, p) in chunk.iter().enumerate() {
                let k = (chunk_no * cfg.workers + i) as u64;
                match rec.done::<FastOutcome>(it, &format!("fast/{}", p.id))? {
                    Some(FastOutcome::Decided(o)) => decided.push(*o),
                    Some(FastOutcome::Validated(_)) => {}
                    None => {
                        rec.emit(
                            it,
                            &format!("fast/{}/proposed", p.id),
                            state_event(
                                &p.id,
                                "proposed",
                                format!("fast loop trial {} of {}", k + 1, selected.len()),
                            ),
                            None,
                        )?;
                        pending.push((k, (*p).clone()));
                    }
                }
            }
            let results = super::in_parallel(&pending, |k, p| {
                self.fast_candidate(rec, it, k, p, prod, &prod_dir, cfg, approvals, &history)
            });
            for (p, r) in results {
                let Some(fast) = unsettled.take(rec, it, &p, r, "develop", FastOutcome::Decided)?
                else {
                    continue;
                };
                match &fast {
                    FastOutcome::Validated(entry) => {
                        let offline = serde_json::to_value(&entry.evidence).map_err(json_error)?;
                        let e = &entry.evidence;
                        rec.emit(
                            it,
                            &format!("fast/{}/validated", p.id),
                            Event::CandidateState {
                                proposal_id: p.id.clone(),
                                state: "validated".into(),
                                reason: format!(
                                    "passed the offline stages: {} {:.5} vs production {:.5}",
                                    e.metric, e.candidate, e.production
                                ),
                                score: None,
                                base_commit: Some(prod.commit.clone()),
                                offline: Some(offline),
                            },
                            None,
                        )?;
                    }
                    FastOutcome::Decided(o) => {
                        rec.emit(
                            it,
                            &format!("fast/{}/completed", p.id),
                            state_event(&p.id, "completed", completed_reason(o, "offline")),
                            None,
                        )?;
                        decided.push((**o).clone());
                    }
                }
                rec.complete(it, &format!("fast/{}", p.id), &fast)?;
                steps.tick()?;
            }
        }
        if let Some(stopped) = unsettled.stopped() {
            return Ok(stopped);
        }
        Ok(Batch::Done(decided))
    }

    /// Develop one proposal and run the offline stages on its candidate.
    #[allow(clippy::too_many_arguments)]
    fn fast_candidate(
        &self,
        rec: &Recorder,
        it: u32,
        k: u64,
        p: &Proposal,
        prod: &ProductionState,
        prod_dir: &std::path::Path,
        cfg: &RunConfig,
        approvals: &Approvals,
        history: &History,
    ) -> Result<FastOutcome> {
        let dev = self.develop_or_recorded(rec, it, k, p, prod, history)?;
        let DevelopResult::Ready { candidate } = &dev else {
            return Ok(FastOutcome::Decided(Box::new(CandidateOutcome {
                proposal: p.clone(),
                develop: Some(dev),
                verdict: None,
                error: None,
            })));
        };
        let wt = self.candidate_worktree(p, candidate)?;
        let holdout = SealedHoldout::new(&self.workspace);
        let seed = cfg.seed ^ (u64::from(it) << 8) ^ k;
        let ectx = self.evaluate_ctx(rec, it, prod, prod_dir, &wt, &holdout, seed, cfg, approvals);
        let offline = evaluate_offline(&ectx, p, candidate);
        if !matches!(offline, Err(AgentError::AwaitingApproval { .. })) {
            self.repo.drop_worktree(&wt)?;
        }
        Ok(match offline? {
            OfflineOutcome::Decided(v) => FastOutcome::Decided(Box::new(CandidateOutcome {
                proposal: p.clone(),
                develop: Some(dev.clone()),
                verdict: Some(v),
                error: None,
            })),
            OfflineOutcome::Passed(evidence) => FastOutcome::Validated(Box::new(PoolEntry {
                proposal: p.clone(),
                candidate: candidate.clone(),
                evidence,
            })),
        })
    }

    /// The pool: candidates whose latest state is `validated`, measured against `commit`
    /// (from this run or an earlier one), in journal order.
    fn pool(&self, commit: &str) -> Result<Vec<PoolEntry>> {
        let events = self.events()?;
        let mut latest: BTreeMap<&str, &EventRecord> = BTreeMap::new();
        let mut proposals: BTreeMap<&str, &Proposal> = BTreeMap::new();
        let mut candidates: BTreeMap<&str, &Candidate> = BTreeMap::new();
        for r in &events {
            match &r.event {
                Event::CandidateState { proposal_id, .. } => {
                    latest.insert(proposal_id, r);
                }
                Event::ProposalMade { proposal } => {
                    proposals.insert(&proposal.id, proposal);
                }
                Event::CandidateReady { candidate } => {
                    candidates.insert(&candidate.proposal, candidate);
                }
                _ => {}
            }
        }
        let mut pool = Vec::new();
        let mut order: Vec<&&EventRecord> = latest.values().collect();
        order.sort_by_key(|r| r.seq);
        for r in order {
            let Event::CandidateState {
                proposal_id,
                state,
                base_commit: Some(base),
                offline: Some(offline),
                ..
            } = &r.event
            else {
                continue;
            };
            if state != "validated" || base != commit {
                continue;
            }
            let (Some(p), Some(c)) = (
                proposals.get(proposal_id.as_str()),
                candidates.get(proposal_id.as_str()),
            ) else {
                continue;
            };
            pool.push(PoolEntry {
                proposal: (*p).clone(),
                candidate: (*c).clone(),
                evidence: serde_json::from_value(offline.clone()).map_err(json_error)?,
            });
        }
        Ok(pool)
    }

    /// Rank the pool, promote the best to the online slots that the layer admits, retire what
    /// ranks below twice the slots, and run the promoted candidates' experiments side by side.
    fn slow_loop(
        &self,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        prod: &ProductionState,
        approvals: &Approvals,
        steps: &mut StepCounter,
    ) -> Result<Batch> {
        let slots = cfg.slots;
        let promoted: Vec<PoolEntry> = rec.step(it, "slow/promote", || {
            let pool = self.pool(&prod.commit)?;
            let events = self.events()?;
            let history = History::from_events(&events, &self.manifest.metrics.primary.name);
            let sign = self.manifest.metrics.primary.direction.sign();
            let ranked = rank(pool, &history, sign);
            let online_failures = online_failures(&events, sign);
            let power = PowerBar::of(self, &events);
            let alpha = power.alpha;
            let n = ranked.len();
            let mut layers = recloop_online::Layers::default();
            let share = self.manifest.online.layer_share();
            let mut promoted = Vec::new();
            let mut waiting = 0usize;
            for (i, r) in ranked.into_iter().enumerate() {
                let pid = r.entry.proposal.id.clone();
                let why = format!(
                    "rank {} of {n}: score {:.5} = offline lift {:+.5} × P(kept online | lever {:?}) {:.3} ({} kept, {} not, online so far)",
                    i + 1,
                    r.score,
                    r.lift,
                    r.entry.proposal.lever,
                    f64::from(r.kept + 1) / f64::from(r.kept + r.failed + 2),
                    r.kept,
                    r.failed
                );
                let weaker = online_failures
                    .iter()
                    .find(|f| f.stage == layer_parameter(&r.entry.proposal) && f.lift >= r.lift);
                // the power bar: an experiment unlikely to show the predicted effect is not
                // started (an idle slot costs no days; the fast loop looks for a stronger one)
                let unlikely = power
                    .outlook(r.lift)
                    .filter(|(o, _)| o.keep_chance < MIN_KEEP_CHANCE);
                if let Some((o, nz)) = unlikely.filter(|_| promoted.len() < slots) {
                    let basis = match &power.calibrated {
                        Some(c) => format!(
                            "{:.3} × offline lift, calibrated on {} experiments",
                            c.slope, c.experiments
                        ),
                        None => "offline lift, not yet calibrated".into(),
                    };
                    rec.emit(
                        it,
                        &format!("slow/{pid}/held-back"),
                        Event::Note {
                            topic: "dual.held_back".into(),
                            text: format!(
                                "{pid} stays in the pool ({why}): predicted online effect \
                                 {:+.2}% ({basis}); an experiment must measure at least {:.2}% \
                                 (significance at α {alpha} with a standard error of {:.2}%, the \
                                 median of the last {} experiments, or the minimum effect \
                                 {:.2}%), so P(KEEP) ≈ {:.2} < {MIN_KEEP_CHANCE}",
                                100.0 * o.effect,
                                100.0 * o.bar,
                                100.0 * nz.se,
                                nz.experiments,
                                100.0 * nz.needed,
                                o.keep_chance
                            ),
                            data: serde_json::json!({
                                "predicted_effect": o.effect, "bar": o.bar,
                                "keep_chance": o.keep_chance, "se": nz.se,
                            }),
                        },
                        None,
                    )?;
                } else if let Some(f) = weaker.filter(|_| promoted.len() < slots) {
                    // an idle slot costs no days: wait for a candidate that can do better
                    rec.emit(
                        it,
                        &format!("slow/{pid}/held-back"),
                        Event::Note {
                            topic: "dual.held_back".into(),
                            text: format!(
                                "{pid} stays in the pool ({why}): its offline lift {:+.5} is no \
                                 more than that of {} ({:+.5}), which went online on stage {:?} \
                                 and was not kept",
                                r.lift, f.proposal_id, f.lift, f.stage
                            ),
                            data: serde_json::Value::Null,
                        },
                        None,
                    )?;
                } else if promoted.len() < slots {
                    match layers.register(
                        &self.manifest.online.layer,
                        &format!("x-{pid}"),
                        &[layer_parameter(&r.entry.proposal)],
                        share.min(1.0),
                    ) {
                        Ok(_) => {
                            rec.emit(
                                it,
                                &format!("slow/{pid}/live"),
                                Event::CandidateState {
                                    proposal_id: pid.clone(),
                                    state: "live".into(),
                                    reason: why,
                                    score: Some(r.score),
                                    base_commit: None,
                                    offline: None,
                                },
                                None,
                            )?;
                            promoted.push(r.entry);
                            continue;
                        }
                        Err(e) => {
                            rec.emit(
                                it,
                                &format!("slow/{pid}/held-back"),
                                Event::Note {
                                    topic: "dual.held_back".into(),
                                    text: format!("{pid} stays in the pool ({why}): {e}"),
                                    data: serde_json::Value::Null,
                                },
                                None,
                            )?;
                        }
                    }
                }
                if waiting < slots {
                    waiting += 1;
                    continue;
                }
                rec.emit(
                    it,
                    &format!("slow/{pid}/retired"),
                    Event::CandidateState {
                        proposal_id: pid,
                        state: "retired".into(),
                        reason: format!("outranked: {why}; the pool keeps {slots} waiting"),
                        score: Some(r.score),
                        base_commit: None,
                        offline: None,
                    },
                    None,
                )?;
            }
            Ok(promoted)
        })?;
        // the best chance of a KEEP among the candidates left waiting: an inconclusive
        // experiment is extended only while it stays ahead of them (journaled for resumption)
        let best_waiting: Option<f64> = rec.step(it, "slow/waiting", || {
            let power = PowerBar::of(self, &self.events()?);
            let sign = self.manifest.metrics.primary.direction.sign();
            Ok(self
                .pool(&prod.commit)?
                .iter()
                .filter_map(|e| power.outlook(e.evidence.judged_lift(sign)))
                .map(|(o, _)| o.keep_chance)
                .max_by(f64::total_cmp))
        })?;
        let online = self.online_primary();
        let alpha = self.manifest.online.alpha;
        let continuation =
            move |v: &recloop_core::Verdict| extension_outlook(v, &online, alpha, best_waiting);
        let prod_dir = self.production_dir();
        let mut outcomes = Vec::new();
        let mut pending = Vec::new();
        for (k, entry) in promoted.iter().enumerate() {
            match rec.done::<CandidateOutcome>(it, &format!("candidate/{}", entry.proposal.id))? {
                Some(o) => outcomes.push(o),
                None => pending.push((k as u64, entry.proposal.clone())),
            }
        }
        if !pending.is_empty() {
            self.repo.checkout_detached(&prod_dir, &prod.commit)?;
        }
        let results = super::in_parallel(&pending, |k, p| {
            let entry = promoted
                .iter()
                .find(|e| e.proposal.id == p.id)
                .ok_or_else(|| AgentError::NotFound(format!("pool entry {}", p.id)))?;
            let wt = self.candidate_worktree(p, &entry.candidate)?;
            let holdout = SealedHoldout::new(&self.workspace);
            // the slots' seeds differ from the fast loop's (offset by the batch)
            let seed = cfg.seed ^ (u64::from(it) << 8) ^ (0x80 + k);
            let mut ectx = self.evaluate_ctx(
                rec, it, prod, &prod_dir, &wt, &holdout, seed, cfg, approvals,
            );
            ectx.continuation = Some(&continuation);
            let v = evaluate_online(&ectx, p, &entry.candidate, entry.evidence.clone());
            if !matches!(v, Err(AgentError::AwaitingApproval { .. })) {
                self.repo.drop_worktree(&wt)?;
            }
            Ok(CandidateOutcome {
                proposal: p.clone(),
                develop: Some(DevelopResult::Ready {
                    candidate: entry.candidate.clone(),
                }),
                verdict: Some(v?),
                error: None,
            })
        });
        let mut unsettled = Unsettled::default();
        for (p, r) in results {
            let Some(o) = unsettled.take(rec, it, &p, r, "evaluate", |o| *o)? else {
                continue;
            };
            rec.emit(
                it,
                &format!("slow/{}/completed", p.id),
                state_event(&p.id, "completed", completed_reason(&o, "online")),
                None,
            )?;
            rec.complete(it, &format!("candidate/{}", p.id), &o)?;
            steps.tick()?;
            outcomes.push(o);
        }
        if let Some(stopped) = unsettled.stopped() {
            return Ok(stopped);
        }
        Ok(Batch::Done(outcomes))
    }

    /// The metric that decides online (`[online] primary`, else the offline primary).
    fn online_primary(&self) -> MetricSpec {
        self.manifest
            .online
            .primary
            .clone()
            .unwrap_or_else(|| self.manifest.metrics.primary.clone())
    }

    /// After a merge, the pool's candidates measured against the old production are retired:
    /// their offline evidence no longer says what they would change.
    pub(super) fn retire_stale(
        &self,
        rec: &Recorder,
        it: u32,
        prod: &ProductionState,
    ) -> Result<()> {
        let events = self.events()?;
        let mut latest: BTreeMap<&str, (&str, Option<&str>)> = BTreeMap::new();
        for r in &events {
            if let Event::CandidateState {
                proposal_id,
                state,
                base_commit,
                ..
            } = &r.event
            {
                let base = match (state.as_str(), base_commit) {
                    ("validated", Some(b)) => Some(b.as_str()),
                    _ => None,
                };
                latest.insert(proposal_id, (state, base));
            }
        }
        for (pid, (state, base)) in latest {
            if state != "validated" || base == Some(prod.commit.as_str()) {
                continue;
            }
            rec.emit(
                it,
                &format!("slow/{pid}/retired"),
                state_event(
                    pid,
                    "retired",
                    format!(
                        "production moved to {}: its offline evidence was measured against {}",
                        short(&prod.commit),
                        base.map_or("an unknown commit".into(), short)
                    ),
                ),
                None,
            )?;
        }
        Ok(())
    }
}

fn short(commit: &str) -> String {
    commit.chars().take(10).collect()
}

/// The `completed` state's reason: the verdict's decision and reason, or why there is none.
fn completed_reason(o: &CandidateOutcome, stage: &str) -> String {
    match (&o.verdict, &o.error, &o.develop) {
        (Some(v), _, _) => format!("{stage}: {:?}: {}", v.decision, v.reason),
        (None, Some(e), _) => format!("{stage}: the machinery failed: {e}"),
        (None, None, Some(DevelopResult::Failed { .. })) => "develop failed its gates".into(),
        _ => format!("{stage}: no verdict"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::OfflineEvidence;

    fn entry(id: &str, lever: &str, candidate: f64) -> PoolEntry {
        use recloop_journal::fixtures;
        let proposal = fixtures::proposal(id, id, "h", "model", lever);
        let value = candidate;
        let candidate = fixtures::candidate(id, "b", value);
        PoolEntry {
            proposal,
            candidate,
            evidence: OfflineEvidence {
                metric: "ndcg@10".into(),
                production: 0.2,
                candidate: value,
                guardrails: Default::default(),
                caveats: vec![],
                proxy: None,
            },
        }
    }

    #[test]
    fn a_candidate_its_persona_s_proxy_judged_ranks_on_the_proxy() {
        // slightly worse on the primary, 4 % better on the proxy
        let mut reward = entry("r", "positives.min_rating", 0.199);
        reward.evidence.proxy = Some(crate::evaluate::ProxyEvidence {
            metric: recloop_core::MetricSpec {
                name: "mean_rating@10".into(),
                direction: recloop_core::Direction::Increase,
                min_effect: 0.01,
            },
            production: 3.75,
            candidate: 3.90,
        });
        let pool = vec![entry("a", "model.ease.lambda", 0.202), reward];
        let ranked = rank(pool, &History::default(), 1.0);
        assert_eq!(ranked[0].entry.proposal.id, "r");
        assert!((ranked[0].lift - 0.04).abs() < 1e-9, "{}", ranked[0].lift);
        assert!((ranked[1].lift - 0.01).abs() < 1e-9);
    }

    #[test]
    fn the_ranking_weighs_offline_lift_by_the_levers_online_record() {
        let pool = vec![
            entry("a", "model.ease.lambda", 0.26),
            entry("b", "rerank.mmr", 0.24),
            entry("c", "rerank.mmr", 0.22),
        ];
        // no online history: offline lift decides
        let ranked = rank(pool.clone(), &History::default(), 1.0);
        let ids: Vec<&str> = ranked
            .iter()
            .map(|r| r.entry.proposal.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!((ranked[0].lift - 0.3).abs() < 1e-9);
        assert!((ranked[0].score - 0.15).abs() < 1e-9, "{}", ranked[0].score);

        // the EASE lever failed online three times: its offline lead is discounted below MMR's
        let mut history = History::default();
        for i in 0..3 {
            let mut t = entry(&format!("old{i}"), "model.ease.lambda", 0.3);
            t.proposal.id = format!("old{i}");
            history.trials.push(crate::history::Trial {
                proposal: t.proposal,
                seq: i,
                spec: None,
                base_hash: None,
                value: Some(0.3),
                decision: Some(Decision::Discard),
                rejected: None,
                merged: false,
                online: true,
                diff_hash: None,
                error: None,
                quality: None,
                guardrail_failed: false,
            });
        }
        let ranked = rank(pool, &history, 1.0);
        let ids: Vec<&str> = ranked
            .iter()
            .map(|r| r.entry.proposal.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert_eq!((ranked[1].kept, ranked[1].failed), (0, 3));
        // a decreasing metric ranks the other way
        let ranked = rank(
            vec![entry("a", "x", 0.26), entry("b", "y", 0.18)],
            &History::default(),
            -1.0,
        );
        assert_eq!(ranked[0].entry.proposal.id, "b");
    }

    #[test]
    fn online_failures_carry_their_stage_and_offline_lift() {
        use recloop_journal::{EventFilter, Journal, NewEvent};
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let push = |e: Event| {
            j.append(NewEvent::new("run-1", 1, e)).unwrap();
        };
        for (id, candidate, decision, online) in [
            ("a", 0.21, Decision::Extend, true),
            ("b", 0.30, Decision::Keep, true),
            ("c", 0.25, Decision::Discard, false),
        ] {
            let e = entry(id, "blend.add.bpr", candidate);
            push(Event::ProposalMade {
                proposal: e.proposal.clone(),
            });
            push(Event::CandidateState {
                proposal_id: id.into(),
                state: "validated".into(),
                reason: String::new(),
                score: None,
                base_commit: Some("b".into()),
                offline: Some(serde_json::to_value(&e.evidence).unwrap()),
            });
            push(Event::Verdict {
                proposal_id: id.into(),
                candidate_id: format!("c-{id}"),
                experiment_id: online.then(|| format!("x-{id}")),
                verdict: recloop_journal::fixtures::verdict(decision, 0.0),
            });
        }
        let events = j.events(&EventFilter::default()).unwrap();
        let failures = online_failures(&events, 1.0);
        // only `a`: `b` was kept, `c` was decided offline
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].proposal_id, "a");
        assert_eq!(failures[0].stage, "model");
        assert!((failures[0].lift - 0.05).abs() < 1e-9, "{failures:?}");
    }

    #[test]
    fn the_power_bar_predicts_the_chance_of_a_keep_from_the_journal_s_noise() {
        use recloop_journal::{EventFilter, Journal, NewEvent};
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let online = MetricSpec {
            name: "ndcg@10".into(),
            direction: recloop_core::Direction::Increase,
            min_effect: 0.002,
        };
        let events = j.events(&EventFilter::default()).unwrap();
        assert!(
            online_noise(&events, &online, 0.05).is_none(),
            "no experiment yet"
        );
        // control 0.35, a CI of ± half_width around the effect
        let push = |id: &str, half_width: f64| {
            let mut verdict = recloop_journal::fixtures::verdict(Decision::Extend, 0.004);
            verdict.effects[0].ci = (Some(0.004 - half_width), Some(0.004 + half_width));
            j.append(NewEvent::new(
                "run-1",
                1,
                Event::Verdict {
                    proposal_id: id.into(),
                    candidate_id: format!("c-{id}"),
                    experiment_id: Some(format!("x-{id}")),
                    verdict,
                },
            ))
            .unwrap();
        };
        push("a", 0.01);
        let events = j.events(&EventFilter::default()).unwrap();
        let nz = online_noise(&events, &online, 0.05).unwrap();
        let se = 0.01 / (1.959_963_984_540_054 * 0.35);
        assert!((nz.se - se).abs() < 1e-9, "{nz:?} vs {se}");
        assert!((nz.needed - 0.002 / 0.35).abs() < 1e-9, "{nz:?}");
        // a lift exactly at the bar is a coin flip; far above, near certain; far below, no
        let at = (1.959_963_984_540_054 * nz.se).max(nz.needed);
        let o = outlook(at, None, &nz, 0.05).unwrap();
        assert!((o.keep_chance - 0.5).abs() < 1e-6, "{o:?}");
        assert!(
            outlook(at + 4.0 * nz.se, None, &nz, 0.05)
                .unwrap()
                .keep_chance
                > 0.99
        );
        assert!(
            outlook(at - 4.0 * nz.se, None, &nz, 0.05)
                .unwrap()
                .keep_chance
                < 0.01
        );
        // a calibrated slope scales the prediction
        let c = Calibration {
            slope: 0.5,
            experiments: 3,
        };
        let halved = outlook(2.0 * at, Some(&c), &nz, 0.05).unwrap();
        assert!((halved.effect - at).abs() < 1e-12 && (halved.keep_chance - 0.5).abs() < 1e-6);
        // the median of the latest five experiments (the first, ± 0.01, is left out)
        for (k, w) in [0.05, 0.02, 0.04, 0.03, 0.06].iter().enumerate() {
            push(&format!("m{k}"), *w);
        }
        let events = j.events(&EventFilter::default()).unwrap();
        let latest = online_noise(&events, &online, 0.05).unwrap();
        assert_eq!(latest.experiments, NOISE_WINDOW);
        assert!(
            (latest.se - 0.04 / (1.959_963_984_540_054 * 0.35)).abs() < 1e-9,
            "{latest:?}"
        );
    }

    #[test]
    fn an_inconclusive_experiment_continues_only_while_it_stays_in_the_top_k() {
        let online = MetricSpec {
            name: "ndcg@10".into(),
            direction: recloop_core::Direction::Increase,
            min_effect: 0.0001,
        };
        // control 0.35; effect `effect` with a CI of ± 1.96 × 0.007 (one SE = 2 % of control)
        let verdict = |effect: f64| {
            let mut v = recloop_journal::fixtures::verdict(Decision::Extend, effect);
            let half = 1.959_963_984_540_054 * 0.007;
            v.effects[0].ci = (Some(effect - half), Some(effect + half));
            v
        };
        // measured +3 % (1.5 SE): the extension's SE is 1 %, its bar 1.96 %: P ≈ 0.85
        let promising = extension_outlook(&verdict(0.0105), &online, 0.05, None);
        assert!(promising.extend, "{promising:?}");
        assert!(promising.reason.contains("P(KEEP) ≈ 0.85"), "{promising:?}");
        // a better candidate waits: the slot goes to it
        let outranked = extension_outlook(&verdict(0.0105), &online, 0.05, Some(0.9));
        assert!(!outranked.extend && outranked.reason.contains("left the top K"));
        // measured +0.5 %: hopeless even with four times the users
        let hopeless = extension_outlook(&verdict(0.00175), &online, 0.05, None);
        assert!(
            !hopeless.extend && hopeless.reason.contains("< 0.5"),
            "{hopeless:?}"
        );
        // no two-sided CI: nothing to judge by, extended as before
        let blind = extension_outlook(
            &recloop_journal::fixtures::verdict(Decision::Extend, 0.01),
            &online,
            0.05,
            Some(0.99),
        );
        assert!(blind.extend, "{blind:?}");
    }

    #[test]
    fn offline_lift_is_calibrated_against_online_effects() {
        use recloop_journal::{EventFilter, Journal, NewEvent};
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let push = |e: Event| {
            j.append(NewEvent::new("run-1", 1, e)).unwrap();
        };
        let online = MetricSpec {
            name: "ndcg@10".into(),
            direction: recloop_core::Direction::Increase,
            min_effect: 0.007,
        };
        // offline lifts 10 %, 20 %, 5 % (production 0.2); online relative effects 0.2 × lift
        for (k, (id, candidate)) in [("a", 0.22), ("b", 0.24), ("c", 0.21)].iter().enumerate() {
            let e = entry(id, "blend.add.bpr", *candidate);
            push(Event::CandidateState {
                proposal_id: (*id).into(),
                state: "validated".into(),
                reason: String::new(),
                score: None,
                base_commit: Some("b".into()),
                offline: Some(serde_json::to_value(&e.evidence).unwrap()),
            });
            let events = j.events(&EventFilter::default()).unwrap();
            // fewer than three experiments calibrate nothing
            assert!(calibration(&events, 1.0, &online).is_none(), "after {k}");
            let lift = (candidate - 0.2) / 0.2;
            push(Event::Verdict {
                proposal_id: (*id).into(),
                candidate_id: format!("c-{id}"),
                experiment_id: Some(format!("x-{id}")),
                verdict: recloop_journal::fixtures::verdict(Decision::Extend, 0.35 * 0.2 * lift),
            });
        }
        let events = j.events(&EventFilter::default()).unwrap();
        let c = calibration(&events, 1.0, &online).unwrap();
        assert_eq!(c.experiments, 3);
        assert!((c.slope - 0.2).abs() < 1e-9, "{c:?}");
        // a 5 % lift predicts +1 % online, a 10 % lift +2 %
        assert!((c.slope * 0.05 - 0.01).abs() < 1e-12 && (c.slope * 0.10 - 0.02).abs() < 1e-12);
        // effects that fall with the lift calibrate nothing
        push(Event::CandidateState {
            proposal_id: "d".into(),
            state: "validated".into(),
            reason: String::new(),
            score: None,
            base_commit: Some("b".into()),
            offline: Some(serde_json::to_value(&entry("d", "x", 0.4).evidence).unwrap()),
        });
        push(Event::Verdict {
            proposal_id: "d".into(),
            candidate_id: "c-d".into(),
            experiment_id: Some("x-d".into()),
            verdict: recloop_journal::fixtures::verdict(Decision::Discard, -0.2),
        });
        let events = j.events(&EventFilter::default()).unwrap();
        assert!(calibration(&events, 1.0, &online).is_none());
    }
}
