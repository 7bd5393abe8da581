//! The typed, versioned events of the journal.
//!
//! An [`Event`] says what happened; a [`NewEvent`] wraps it with the run, iteration, causal parent,
//! artifacts and idempotency key before it is appended; an [`EventRecord`] is what the journal
//! stores and returns (the same plus sequence number, id, timestamp, schema version and checksum).
//!
//! Serialised form (one JSONL line of `recloop journal export`):
//! `{"schema_version":1,"seq":7,"id":"…","parent":"…","timestamp":"…","run_id":"r1","iteration":2,
//!   "artifacts":["ab12…"],"idempotency_key":"…","event":{"type":"proposal_made","proposal":{…}},
//!   "checksum":"…"}`

use crate::artifact::ArtifactHash;
use chrono::{DateTime, SubsecRound, Utc};
use recloop_core::{
    ApprovalKind, Approver, Candidate, CandidateId, ErrorClass, ExperimentId, Gate, HarnessSpec,
    KnowledgeAsset, Lesson, MetricValues, Proposal, ProposalId, RunId, TrajectoryStep, Verdict,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Version of the event JSON format written by this build. Bump it (and teach the reader the old
/// shape) whenever an existing variant changes incompatibly; adding a variant or an optional
/// (`#[serde(default)]`) field does not need a bump.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// All requested iterations ran.
    Completed,
    /// Stopped by the user (Ctrl-C) or a signal.
    Interrupted,
    /// The spending limit was reached.
    BudgetExhausted,
    /// An unrecoverable error.
    Failed,
}

impl RunOutcome {
    /// The snake_case name used in JSON and in the views.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::BudgetExhausted => "budget_exhausted",
            RunOutcome::Failed => "failed",
        }
    }
}

/// How an evaluation job's attempt ended on its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEnd {
    /// Exited with status 0.
    Succeeded,
    /// Exited non-zero, was killed by a signal, or ran out of memory.
    Failed,
    /// Hit its time limit.
    TimedOut,
    /// Preempted, or its node failed.
    Preempted,
    /// Cancelled by someone other than recloop (e.g. `scancel`).
    Killed,
    /// Cancelled by recloop because the run was cancelled.
    Cancelled,
    /// The executor no longer knows the job and it left no exit status.
    Lost,
}

impl JobEnd {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobEnd::Succeeded => "succeeded",
            JobEnd::Failed => "failed",
            JobEnd::TimedOut => "timed_out",
            JobEnd::Preempted => "preempted",
            JobEnd::Killed => "killed",
            JobEnd::Cancelled => "cancelled",
            JobEnd::Lost => "lost",
        }
    }
}

/// What happened. Serialised with a `type` tag in snake_case (e.g. `"type": "gate_failed"`).
///
/// Events that belong to an experiment carry its `proposal_id`: in the journal an experiment is
/// identified by the id of the proposal it tests (lineage proposal → candidate → verdict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// `recloop run` started a new run.
    RunStarted {
        /// Seed of every random choice in the run.
        #[serde(default)]
        seed: Option<u64>,
        /// Production commit the run starts from.
        production_commit: String,
        /// Offline metrics of that production commit (the leaderboard's starting row).
        #[serde(default)]
        baseline: MetricValues,
        /// Effective settings (iterations, workers, budget, brain), free-form.
        #[serde(default)]
        config: serde_json::Value,
    },
    /// `recloop run` continued an interrupted run.
    RunResumed {
        /// Last sequence number present when the run resumed.
        after_seq: u64,
        /// Why (e.g. "found unfinished run after crash").
        #[serde(default)]
        reason: String,
    },
    /// The run ended.
    RunFinished {
        /// How it ended.
        outcome: RunOutcome,
        /// Human-readable summary.
        #[serde(default)]
        summary: String,
    },
    /// Brainstorm produced a proposal.
    ProposalMade {
        /// The full proposal.
        proposal: Proposal,
    },
    /// A proposal passed the admission checks.
    ProposalAdmitted {
        /// Which proposal.
        proposal_id: ProposalId,
    },
    /// A proposal was rejected (by admission checks, a protected path, a schema failure, ...).
    ProposalRejected {
        /// Which proposal.
        proposal_id: ProposalId,
        /// Why, in words a person and the next Brainstorm can use.
        reason: String,
    },
    /// Develop created a git worktree for a candidate.
    WorktreeCreated {
        /// Proposal being implemented.
        proposal_id: ProposalId,
        /// The candidate's id.
        candidate_id: CandidateId,
        /// Worktree directory.
        path: String,
        /// Candidate branch.
        branch: String,
        /// Production commit it starts from.
        base_commit: String,
    },
    /// A deterministic gate passed.
    GatePassed {
        /// Proposal being implemented.
        proposal_id: ProposalId,
        /// Candidate checked.
        candidate_id: CandidateId,
        /// Which gate.
        gate: Gate,
        /// Repair round (0 = first attempt).
        #[serde(default)]
        round: u32,
        /// Optional detail.
        #[serde(default)]
        detail: String,
    },
    /// A deterministic gate failed.
    GateFailed {
        /// Proposal being implemented.
        proposal_id: ProposalId,
        /// Candidate checked.
        candidate_id: CandidateId,
        /// Which gate.
        gate: Gate,
        /// Repair round (0 = first attempt).
        #[serde(default)]
        round: u32,
        /// What failed and the targeted repair instruction.
        detail: String,
    },
    /// A candidate passed all gates and is ready for evaluation.
    CandidateReady {
        /// The candidate (gates, Q_code, offline metrics, diff hash).
        candidate: Candidate,
    },
    /// Offline evaluation metrics of a candidate on a split.
    OfflineResult {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Candidate evaluated.
        candidate_id: CandidateId,
        /// Split name (`validation`, `replay`, ...; never the holdout's numbers).
        split: String,
        /// Metrics as printed by the evaluation command.
        metrics: MetricValues,
    },
    /// The sealed holdout check (pass/fail only).
    HoldoutResult {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Candidate evaluated.
        candidate_id: CandidateId,
        /// Whether the candidate passed.
        passed: bool,
    },
    /// The off-policy replay before any traffic (`[online.off_policy]`): the candidate's value
    /// against production's on logged bandit feedback, and whether its interval shows harm.
    OffPolicyResult {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Candidate evaluated.
        candidate_id: CandidateId,
        /// Logged dataset (`obd/random/all`).
        dataset: String,
        /// Estimator that decided (`ipw`, `snipw`, `dr`).
        estimator: String,
        /// Logged rounds.
        rounds: u64,
        /// Estimated value of production's policy.
        production: f64,
        /// Estimated value of the candidate's policy.
        candidate: f64,
        /// Paired estimate of candidate − production.
        difference: f64,
        /// Its confidence interval at 1 − α.
        ci: (f64, f64),
        /// True when the whole interval lies below zero: the candidate gets no traffic.
        harm: bool,
    },
    /// An online experiment (A/B) started.
    ExperimentStarted {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Candidate under test.
        candidate_id: CandidateId,
        /// Platform-side experiment id.
        experiment_id: ExperimentId,
        /// Platform (`simulator`, `logs`, ...).
        platform: String,
    },
    /// Online traffic advanced to the next ramp step.
    RampAdvanced {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Platform-side experiment id.
        experiment_id: ExperimentId,
        /// Ramp step index (0-based).
        step: u32,
        /// Treatment traffic share now in effect.
        traffic: f64,
    },
    /// The health gate (SRM) held the ramp.
    HealthHold {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Platform-side experiment id.
        experiment_id: ExperimentId,
        /// Why.
        reason: String,
        /// p-value of the sample-ratio test, when computed.
        #[serde(default)]
        srm_p_value: Option<f64>,
    },
    /// The harm veto fired and the experiment was rolled back.
    Veto {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Platform-side experiment id.
        experiment_id: ExperimentId,
        /// Guardrail that showed harm.
        guardrail: String,
        /// Why.
        reason: String,
    },
    /// A guardrail crossed its attention threshold and a person was asked.
    AttentionEscalation {
        /// Proposal under test.
        proposal_id: ProposalId,
        /// Platform-side experiment id.
        experiment_id: ExperimentId,
        /// Guardrail concerned.
        guardrail: String,
        /// Why.
        reason: String,
        /// The person's answer, once given.
        #[serde(default)]
        approved: Option<bool>,
    },
    /// A decision waits for a person (answered by `approval_answered`).
    ApprovalRequested {
        /// Stable id (`recloop approve ID`).
        approval_id: String,
        /// Proposal concerned, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// Why a person is needed.
        kind: ApprovalKind,
        /// The question, in one sentence.
        question: String,
        /// The evidence shown with the question (metrics, limits, effects).
        #[serde(default)]
        evidence: serde_json::Value,
    },
    /// An approval was answered.
    ApprovalAnswered {
        /// Which approval.
        approval_id: String,
        /// Proposal concerned, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// Approved (true) or rejected.
        approved: bool,
        /// Who answered.
        by: Approver,
        /// The reason given (required for a rejection).
        #[serde(default)]
        reason: String,
    },
    /// A failure of the machinery (holdout, platform, language model, budget): recorded in its
    /// own class, never as a gate failure or a verdict.
    StageFailed {
        /// Proposal concerned, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// Stage (`develop`, `evaluate/holdout`, `evaluate/online`, ...).
        stage: String,
        /// The class of failure.
        class: ErrorClass,
        /// What went wrong.
        detail: String,
    },
    /// The verdict on an experiment (decided by plain code).
    Verdict {
        /// Proposal tested.
        proposal_id: ProposalId,
        /// Candidate tested.
        candidate_id: CandidateId,
        /// Platform-side experiment id, if it went online.
        #[serde(default)]
        experiment_id: Option<ExperimentId>,
        /// The verdict record.
        verdict: Verdict,
    },
    /// A KEEP candidate was merged into the production branch.
    MergedIntoProduction {
        /// Proposal that was kept.
        proposal_id: ProposalId,
        /// Candidate merged.
        candidate_id: CandidateId,
        /// The new production commit.
        commit: String,
        /// Offline metrics of the new production version.
        #[serde(default)]
        metrics: MetricValues,
    },
    /// A knowledge asset (experiment record, verdict, failure, lesson text) was written.
    KnowledgeAssetWritten {
        /// The asset.
        asset: KnowledgeAsset,
    },
    /// A new lesson (usually `contested`), or new evidence for an existing one.
    LessonProposed {
        /// The lesson as it now stands.
        lesson: Lesson,
    },
    /// A lesson was promoted (normally to `confirmed`, by `Lesson::promoted_status`).
    LessonPromoted {
        /// The lesson as it now stands, with its new status.
        lesson: Lesson,
    },
    /// A confirmed lesson went back to `contested`.
    LessonDemoted {
        /// Which lesson.
        lesson_id: String,
        /// Why.
        reason: String,
    },
    /// A lesson was refuted; `falsified` is permanent.
    LessonFalsified {
        /// Which lesson.
        lesson_id: String,
        /// The refuting evidence.
        reason: String,
    },
    /// A version of an agent's harness was created (admitted, or archived when rejected).
    HarnessVersionCreated {
        /// Version number per agent (1 = the initial harness).
        version: u32,
        /// Version it was derived from.
        #[serde(default)]
        parent_version: Option<u32>,
        /// Whether the edit was admitted (false = archived rejected edit).
        admitted: bool,
        /// The evaluator's diagnosis (semantic gradient) behind the edit.
        #[serde(default)]
        diagnosis: String,
        /// The harness files (the agent name is `spec.agent`).
        spec: HarnessSpec,
        /// Unified diff from the parent version's files (empty for an initial version).
        #[serde(default)]
        diff: String,
        /// Admission evidence: paired-replay scores, gain, ε, verifier pass rates, safety checks.
        #[serde(default)]
        evidence: serde_json::Value,
    },
    /// One evolve (SGPO) round of an agent finished; a resumed `recloop evolve` starts after it.
    EvolveRoundFinished {
        /// Agent whose harness the round worked on.
        agent: String,
        /// Round number (1-based, per agent).
        round: u32,
        /// Version admitted in this round, if any (at most one).
        #[serde(default)]
        admitted_version: Option<u32>,
        /// Round summary: candidates, gains, held-out scores, tokens.
        #[serde(default)]
        summary: serde_json::Value,
    },
    /// Money and tokens spent on a language model: one event per agent role and model for each
    /// stage call (a Brainstorm batch, a Develop round), failed ones included.
    BudgetSpent {
        /// Agent role that spent it (`brainstorm`, `develop`, ...).
        agent: String,
        /// Model used.
        #[serde(default)]
        model: String,
        /// Model calls this event covers (length retries and repair rounds included; 1 in
        /// events written before the field existed).
        #[serde(default = "one_call")]
        calls: u64,
        /// Prompt tokens.
        tokens_in: u64,
        /// Completion tokens.
        tokens_out: u64,
        /// Cost in US dollars.
        usd: f64,
        /// Version of the price table used to compute `usd`.
        #[serde(default)]
        price_table_version: String,
    },
    /// One step of an agent (input, tool calls, output, tokens, cost, duration).
    TrajectoryStep {
        /// Proposal the step worked on, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// The step.
        step: TrajectoryStep,
    },
    /// A worker took a free lease on a step (workers sharing a PostgreSQL journal; not
    /// projected into views).
    LeaseAcquired {
        /// The step's idempotency key.
        key: String,
        /// Experiment the step works on, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// The worker (`host:pid:nonce`).
        worker: String,
        /// Lease generation, from 1; a takeover increments it.
        epoch: u64,
    },
    /// A lease ran out without being renewed: its holder stopped (killed, hung, cut off).
    LeaseExpired {
        /// The step's idempotency key.
        key: String,
        /// Experiment the step works on, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// The holder whose lease expired.
        worker: String,
        /// The expired lease's generation.
        epoch: u64,
        /// When it expired (RFC 3339, the database's clock).
        expired_at: String,
    },
    /// A worker took over an expired lease and continues the step from its journaled progress.
    LeaseTakenOver {
        /// The step's idempotency key.
        key: String,
        /// Experiment the step works on, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// The new holder.
        worker: String,
        /// The holder whose lease expired.
        from_worker: String,
        /// The new lease's generation.
        epoch: u64,
    },
    /// The dual loop moved a candidate between its states: `proposed` → `validated` (passed
    /// every offline stage; in the pool) → `live` (promoted to an online slot) → `completed`
    /// (decided), or `retired` (left the pool undecided: outranked, or production moved on).
    CandidateState {
        /// The candidate's experiment.
        proposal_id: ProposalId,
        /// `proposed`, `validated`, `live`, `completed` or `retired`.
        state: String,
        /// Why, in plain words (the rank and score that promoted it, the verdict, ...).
        reason: String,
        /// The pool's ranking score, when ranked.
        #[serde(default)]
        score: Option<f64>,
        /// The production commit its offline evidence was measured against (`validated`).
        #[serde(default)]
        base_commit: Option<String>,
        /// The offline evidence (`validated`): what the online stage continues from.
        #[serde(default)]
        offline: Option<serde_json::Value>,
    },
    /// An evaluation job was submitted to an executor (not projected into views).
    JobSubmitted {
        /// Experiment the job evaluates, if any (production's jobs have none).
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// What the job computes (e.g. `validation`, `holdout`) and on what.
        job: String,
        /// Executor kind (`local`, `slurm`).
        executor: String,
        /// The executor's id of the job.
        job_id: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// An evaluation job's attempt ended (not projected into views).
    JobEnded {
        /// Experiment the job evaluates, if any.
        #[serde(default)]
        proposal_id: Option<ProposalId>,
        /// What the job computed (as in `job_submitted`).
        job: String,
        /// Executor kind.
        executor: String,
        /// The executor's id of the job.
        job_id: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// How it ended.
        end: JobEnd,
        /// The executor's reason, exit status, or where the logs are.
        #[serde(default)]
        detail: String,
        /// Another attempt follows.
        #[serde(default)]
        retry: bool,
    },
    /// Anything else worth recording (free-form; not projected into views).
    Note {
        /// Short topic (e.g. `brainstorm.batch`).
        topic: String,
        /// Text.
        #[serde(default)]
        text: String,
        /// Structured data.
        #[serde(default)]
        data: serde_json::Value,
    },
}

fn one_call() -> u64 {
    1
}

impl Event {
    /// The `type` tag of this event, as stored and serialised.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::RunResumed { .. } => "run_resumed",
            Event::RunFinished { .. } => "run_finished",
            Event::ProposalMade { .. } => "proposal_made",
            Event::ProposalAdmitted { .. } => "proposal_admitted",
            Event::ProposalRejected { .. } => "proposal_rejected",
            Event::WorktreeCreated { .. } => "worktree_created",
            Event::GatePassed { .. } => "gate_passed",
            Event::GateFailed { .. } => "gate_failed",
            Event::CandidateReady { .. } => "candidate_ready",
            Event::OfflineResult { .. } => "offline_result",
            Event::HoldoutResult { .. } => "holdout_result",
            Event::OffPolicyResult { .. } => "off_policy_result",
            Event::ExperimentStarted { .. } => "experiment_started",
            Event::RampAdvanced { .. } => "ramp_advanced",
            Event::HealthHold { .. } => "health_hold",
            Event::Veto { .. } => "veto",
            Event::AttentionEscalation { .. } => "attention_escalation",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalAnswered { .. } => "approval_answered",
            Event::StageFailed { .. } => "stage_failed",
            Event::Verdict { .. } => "verdict",
            Event::MergedIntoProduction { .. } => "merged_into_production",
            Event::KnowledgeAssetWritten { .. } => "knowledge_asset_written",
            Event::LessonProposed { .. } => "lesson_proposed",
            Event::LessonPromoted { .. } => "lesson_promoted",
            Event::LessonDemoted { .. } => "lesson_demoted",
            Event::LessonFalsified { .. } => "lesson_falsified",
            Event::HarnessVersionCreated { .. } => "harness_version_created",
            Event::EvolveRoundFinished { .. } => "evolve_round_finished",
            Event::BudgetSpent { .. } => "budget_spent",
            Event::TrajectoryStep { .. } => "trajectory_step",
            Event::LeaseAcquired { .. } => "lease_acquired",
            Event::LeaseExpired { .. } => "lease_expired",
            Event::LeaseTakenOver { .. } => "lease_taken_over",
            Event::CandidateState { .. } => "candidate_state",
            Event::JobSubmitted { .. } => "job_submitted",
            Event::JobEnded { .. } => "job_ended",
            Event::Note { .. } => "note",
        }
    }

    /// The experiment (proposal id) this event belongs to, if any.
    pub fn proposal_id(&self) -> Option<&str> {
        match self {
            Event::ProposalMade { proposal } => Some(&proposal.id),
            Event::CandidateReady { candidate } => Some(&candidate.proposal),
            Event::ProposalAdmitted { proposal_id }
            | Event::ProposalRejected { proposal_id, .. }
            | Event::WorktreeCreated { proposal_id, .. }
            | Event::GatePassed { proposal_id, .. }
            | Event::GateFailed { proposal_id, .. }
            | Event::OfflineResult { proposal_id, .. }
            | Event::HoldoutResult { proposal_id, .. }
            | Event::OffPolicyResult { proposal_id, .. }
            | Event::ExperimentStarted { proposal_id, .. }
            | Event::RampAdvanced { proposal_id, .. }
            | Event::HealthHold { proposal_id, .. }
            | Event::Veto { proposal_id, .. }
            | Event::AttentionEscalation { proposal_id, .. }
            | Event::Verdict { proposal_id, .. }
            | Event::MergedIntoProduction { proposal_id, .. }
            | Event::CandidateState { proposal_id, .. } => Some(proposal_id),
            Event::TrajectoryStep { proposal_id, .. }
            | Event::ApprovalRequested { proposal_id, .. }
            | Event::ApprovalAnswered { proposal_id, .. }
            | Event::StageFailed { proposal_id, .. }
            | Event::JobSubmitted { proposal_id, .. }
            | Event::JobEnded { proposal_id, .. }
            | Event::LeaseAcquired { proposal_id, .. }
            | Event::LeaseExpired { proposal_id, .. }
            | Event::LeaseTakenOver { proposal_id, .. } => proposal_id.as_deref(),
            Event::KnowledgeAssetWritten { asset } => asset.experiment.as_deref(),
            _ => None,
        }
    }
}

/// Identifier of an appended event: its gap-free sequence number and its uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId {
    /// Position in the log, starting at 1, without gaps.
    pub seq: u64,
    /// Globally unique id (use it as a causal parent).
    pub id: Uuid,
}

/// An event about to be appended, with its context.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Run that produced it.
    pub run_id: RunId,
    /// Iteration of the loop (0 for run-level events).
    pub iteration: u32,
    /// The event that caused this one.
    pub parent: Option<Uuid>,
    /// Content hashes of artifacts this event refers to (store them first with `put_artifact`).
    pub artifacts: Vec<ArtifactHash>,
    /// When present, appending a second event with the same key returns the first one's id.
    pub idempotency_key: Option<String>,
    /// Fixed id (default: a fresh uuid v7). Useful for deterministic replays.
    pub id: Option<Uuid>,
    /// Fixed timestamp (default: now). Useful for deterministic replays.
    pub timestamp: Option<DateTime<Utc>>,
    /// What happened.
    pub event: Event,
}

impl NewEvent {
    /// An event of `run_id` at `iteration`, without parent, artifacts or key.
    pub fn new(run_id: impl Into<RunId>, iteration: u32, event: Event) -> NewEvent {
        NewEvent {
            run_id: run_id.into(),
            iteration,
            parent: None,
            artifacts: Vec::new(),
            idempotency_key: None,
            id: None,
            timestamp: None,
            event,
        }
    }

    /// Set the causal parent.
    pub fn parent(mut self, parent: impl Into<Option<Uuid>>) -> NewEvent {
        self.parent = parent.into();
        self
    }

    /// Set the causal parent from an appended event's id.
    pub fn caused_by(mut self, parent: EventId) -> NewEvent {
        self.parent = Some(parent.id);
        self
    }

    /// Attach an artifact hash.
    pub fn artifact(mut self, hash: ArtifactHash) -> NewEvent {
        self.artifacts.push(hash);
        self
    }

    /// Set the idempotency key (e.g. `"{run}/{iteration}/develop/{proposal}/gate/build/0"`).
    pub fn key(mut self, key: impl Into<String>) -> NewEvent {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Fix the uuid (deterministic replays).
    pub fn with_id(mut self, id: Uuid) -> NewEvent {
        self.id = Some(id);
        self
    }

    /// Fix the timestamp (deterministic replays).
    pub fn at(mut self, timestamp: DateTime<Utc>) -> NewEvent {
        self.timestamp = Some(timestamp);
        self
    }
}

/// An event as stored in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Version of the event JSON format ([`EVENT_SCHEMA_VERSION`] when written by this build).
    pub schema_version: u32,
    /// Position in the log (1, 2, 3, ... without gaps).
    pub seq: u64,
    /// Unique id.
    pub id: Uuid,
    /// Causal parent (an earlier event's id).
    #[serde(default)]
    pub parent: Option<Uuid>,
    /// When it was appended (UTC, microsecond precision).
    pub timestamp: DateTime<Utc>,
    /// Run that produced it.
    pub run_id: RunId,
    /// Loop iteration.
    pub iteration: u32,
    /// Content hashes of referenced artifacts.
    #[serde(default)]
    pub artifacts: Vec<ArtifactHash>,
    /// Idempotency key, if the writer gave one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// What happened.
    pub event: Event,
    /// sha256 over the stored fields (see [`EventRecord::compute_checksum`]).
    pub checksum: String,
}

/// Format of timestamps stored in the database (fixed width, sortable).
pub(crate) const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Normalise a timestamp to what the database stores (microseconds).
pub(crate) fn normalise_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

impl EventRecord {
    /// The id pair of this record.
    pub fn event_id(&self) -> EventId {
        EventId {
            seq: self.seq,
            id: self.id,
        }
    }

    /// Timestamp as stored in the database.
    pub fn timestamp_text(&self) -> String {
        self.timestamp.format(TIMESTAMP_FORMAT).to_string()
    }

    /// The checksum of the stored fields: sha256 over seq, id, parent, timestamp, run, iteration,
    /// key, schema version, the artifacts JSON and the event JSON, separated by newlines.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compute_checksum(
        seq: u64,
        id: &Uuid,
        parent: Option<&Uuid>,
        timestamp: &str,
        run_id: &str,
        iteration: u32,
        key: Option<&str>,
        schema_version: u32,
        artifacts_json: &str,
        body_json: &str,
    ) -> String {
        let mut h = Sha256::new();
        let parent = parent.map(|p| p.to_string()).unwrap_or_default();
        let key = key.unwrap_or("");
        for part in [
            seq.to_string().as_str(),
            &id.to_string(),
            &parent,
            timestamp,
            run_id,
            &iteration.to_string(),
            key,
            &schema_version.to_string(),
            artifacts_json,
            body_json,
        ] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn type_name_matches_serde_tag_for_every_variant() {
        let events = fixtures::one_of_each("r1");
        let mut seen = std::collections::BTreeSet::new();
        for e in &events {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["type"].as_str().unwrap(), e.type_name());
            seen.insert(e.type_name());
            let back: Event = serde_json::from_value(v).unwrap();
            assert_eq!(&back, e);
        }
        assert_eq!(seen.len(), 37, "fixtures must cover every variant");
    }

    #[test]
    fn unknown_type_is_an_error_naming_it() {
        let err = serde_json::from_str::<Event>(r#"{"type":"teleported"}"#).unwrap_err();
        assert!(err.to_string().contains("teleported"), "{err}");
    }
}

#[cfg(test)]
mod roundtrip_tests {
    use super::*;

    #[test]
    fn record_json_round_trip_keeps_body_text() {
        for ne in crate::fixtures::loop_stream("r1", 5, 800) {
            let body = serde_json::to_string(&ne.event).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let back: Event = serde_json::from_value(v).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), body);
        }
    }
}
