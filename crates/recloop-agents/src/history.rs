//! What the journal says about past experiments, in the shape the brains need: trials with their
//! spec, lever, direction, validation value and decision; rejected directions; lessons.

use crate::space::{Mutation, spec_hash};
use recloop_core::{Decision, Lesson, LessonStatus, Proposal};
use recloop_journal::{Event, EventRecord};
use recloop_rec::pipeline::PipelineSpec;
use std::collections::{BTreeMap, BTreeSet};

/// One past experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The proposal.
    pub proposal: Proposal,
    /// Journal sequence number of the proposal.
    pub seq: u64,
    /// Candidate spec (built-in brain proposals carry it in `change.spec`).
    pub spec: Option<PipelineSpec>,
    /// Hash of the spec it started from.
    pub base_hash: Option<String>,
    /// Validation value of the primary metric, when measured.
    pub value: Option<f64>,
    /// Verdict, when decided.
    pub decision: Option<Decision>,
    /// Rejection reason (admission, gate or evaluation), when rejected.
    pub rejected: Option<String>,
    /// Merged into production.
    pub merged: bool,
    /// Went online (an experiment was started for it).
    pub online: bool,
    /// Hash of the candidate's normalized diff, once developed.
    pub diff_hash: Option<String>,
    /// The machinery failed on it (holdout, platform, model): not a verdict on the idea.
    pub error: Option<String>,
    /// Q_code of its candidate, once developed.
    pub quality: Option<f64>,
    /// Not kept with a guardrail at attention or harm (offline or online): its primary's gain,
    /// if any, came at a price the workspace does not accept.
    pub guardrail_failed: bool,
}

impl Trial {
    /// Something happened to it after it was proposed: rejected, developed, measured, decided
    /// or failed on.
    pub fn was_tried(&self) -> bool {
        self.rejected.is_some()
            || self.diff_hash.is_some()
            || self.value.is_some()
            || self.decision.is_some()
            || self.error.is_some()
    }

    /// Passed the offline cascade, was tested online, and was not kept: its validation value
    /// overstates it (e.g. a guardrail could not be shown unharmed).
    pub fn failed_online(&self) -> bool {
        self.online && matches!(self.decision, Some(Decision::Extend | Decision::Discard))
    }

    /// Its validation value overstates it: it failed online, or a guardrail stopped it. The
    /// search must not crowd around it (a high NDCG bought with coverage the guardrail does
    /// not allow is not a good region).
    pub fn failed_despite_gain(&self) -> bool {
        self.failed_online() || self.guardrail_failed
    }

    /// The typed mutation, when the proposal carries one.
    pub fn mutation(&self) -> Option<Mutation> {
        serde_json::from_value(self.proposal.change.get("mutation")?.clone()).ok()
    }

    /// Direction sign recorded at proposal time (`change.direction`).
    pub fn direction(&self) -> i64 {
        self.proposal
            .change
            .get("direction")
            .and_then(|d| d.as_i64())
            .unwrap_or(0)
    }

    /// Failed: rejected or not kept.
    pub fn failed(&self) -> bool {
        self.rejected.is_some() || matches!(self.decision, Some(Decision::Discard))
    }
}

/// The journal condensed.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Trials in proposal order.
    pub trials: Vec<Trial>,
    /// Lessons by id (latest state).
    pub lessons: BTreeMap<String, Lesson>,
    /// Validation metrics of production versions in order (baseline first).
    pub production_values: Vec<(String, f64)>,
}

impl History {
    /// Build from journal records (any order; sorted by sequence here).
    pub fn from_events(records: &[EventRecord], primary: &str) -> History {
        let mut h = History::default();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut recs: Vec<&EventRecord> = records.iter().collect();
        recs.sort_by_key(|r| r.seq);
        for r in recs {
            match &r.event {
                Event::RunStarted {
                    production_commit,
                    baseline,
                    ..
                } => {
                    if let Some(v) = baseline.get(primary)
                        && h.production_values.is_empty()
                    {
                        h.production_values.push((production_commit.clone(), *v));
                    }
                }
                Event::ProposalMade { proposal } => {
                    let spec = proposal
                        .change
                        .get("spec")
                        .and_then(|s| serde_json::from_value(s.clone()).ok());
                    let base_hash = proposal
                        .change
                        .get("base_hash")
                        .and_then(|s| s.as_str())
                        .map(str::to_string);
                    index.insert(proposal.id.clone(), h.trials.len());
                    h.trials.push(Trial {
                        proposal: proposal.clone(),
                        seq: r.seq,
                        spec,
                        base_hash,
                        value: None,
                        decision: None,
                        rejected: None,
                        merged: false,
                        online: false,
                        diff_hash: None,
                        error: None,
                        quality: None,
                        guardrail_failed: false,
                    });
                }
                Event::ProposalRejected {
                    proposal_id,
                    reason,
                } => {
                    if let Some(&i) = index.get(proposal_id) {
                        h.trials[i].rejected = Some(reason.clone());
                    }
                }
                Event::OfflineResult {
                    proposal_id,
                    split,
                    metrics,
                    ..
                } if split == "validation" => {
                    if let (Some(&i), Some(v)) = (index.get(proposal_id), metrics.get(primary)) {
                        h.trials[i].value = Some(*v);
                    }
                }
                Event::Verdict {
                    proposal_id,
                    verdict,
                    ..
                } => {
                    if let Some(&i) = index.get(proposal_id) {
                        h.trials[i].decision = Some(verdict.decision);
                        h.trials[i].guardrail_failed = verdict.decision != Decision::Keep
                            && verdict.guardrails.values().any(|g| {
                                matches!(
                                    g,
                                    recloop_core::GuardrailStatus::Attention
                                        | recloop_core::GuardrailStatus::Harm
                                )
                            });
                    }
                }
                Event::CandidateReady { candidate } => {
                    if let Some(&i) = index.get(&candidate.proposal) {
                        h.trials[i].diff_hash = Some(candidate.diff_hash.clone());
                        h.trials[i].quality = Some(candidate.quality.score());
                    }
                }
                Event::StageFailed {
                    proposal_id: Some(pid),
                    class,
                    detail,
                    ..
                } => {
                    if let Some(&i) = index.get(pid) {
                        h.trials[i].error = Some(format!("{}: {detail}", class.as_str()));
                    }
                }
                Event::ExperimentStarted { proposal_id, .. } => {
                    if let Some(&i) = index.get(proposal_id) {
                        h.trials[i].online = true;
                    }
                }
                Event::MergedIntoProduction {
                    proposal_id,
                    commit,
                    metrics,
                    ..
                } => {
                    if let Some(&i) = index.get(proposal_id) {
                        h.trials[i].merged = true;
                    }
                    if let Some(v) = metrics.get(primary) {
                        h.production_values.push((commit.clone(), *v));
                    }
                }
                Event::LessonProposed { lesson } | Event::LessonPromoted { lesson } => {
                    h.lessons.insert(lesson.id.clone(), lesson.clone());
                }
                Event::LessonFalsified { lesson_id, .. } => {
                    if let Some(l) = h.lessons.get_mut(lesson_id) {
                        l.status = LessonStatus::Falsified;
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// Hashes of every spec tried (never repeat a past experiment): proposed and then rejected,
    /// developed, measured or decided. An admitted proposal that was never taken up (the batch
    /// had more proposals than workers) is not tried: it may be proposed again.
    pub fn tried_specs(&self) -> BTreeSet<String> {
        self.trials
            .iter()
            .filter(|t| t.was_tried())
            .filter_map(|t| t.spec.as_ref().map(spec_hash))
            .collect()
    }

    /// Diff hashes of developed candidates → the proposal that made each (first wins).
    pub fn tried_diffs(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for t in &self.trials {
            if let Some(h) = &t.diff_hash {
                out.entry(h.clone())
                    .or_insert_with(|| t.proposal.id.clone());
            }
        }
        out
    }

    /// Rejected directions: (base spec hash, lever, direction sign) of failed trials, each with
    /// the largest step still allowed: half the smallest step that failed (`change.step`; 0 when
    /// unknown, which bans the whole direction). A later move the same way must stay below it,
    /// so repeated failures bisect towards the boundary (a guardrail's harm grows with the
    /// step) instead of creeping down, while one failure far out (λ × 80 rolled back) still
    /// leaves a modest move (λ × 3) open.
    pub fn rejected_directions(&self) -> BTreeMap<(String, String, i64), f64> {
        let mut out: BTreeMap<(String, String, i64), f64> = BTreeMap::new();
        for t in self.trials.iter().filter(|t| t.failed()) {
            let Some(base) = t.base_hash.clone() else {
                continue;
            };
            let step = t
                .proposal
                .change
                .get("step")
                .and_then(serde_json::Value::as_f64)
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0);
            let key = (base, t.proposal.lever.clone(), t.direction());
            let e = out.entry(key).or_insert(f64::INFINITY);
            *e = e.min(step / 2.0);
        }
        out
    }

    /// Levers tried so far.
    pub fn tried_levers(&self) -> BTreeSet<String> {
        self.trials
            .iter()
            .map(|t| t.proposal.lever.clone())
            .collect()
    }

    /// Best validation value seen (signed by `sign`, returned unsigned).
    pub fn best_value(&self, sign: f64) -> Option<f64> {
        self.trials
            .iter()
            .filter_map(|t| t.value)
            .chain(self.production_values.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .max_by(|a, b| (a * sign).total_cmp(&(b * sign)))
    }
}
