//! The domain of the research loop: proposals, candidates, experiments, verdicts and knowledge.
//!
//! These are plain serialisable records. The journal stores them inside events; the agents create
//! them; nothing here performs I/O.

use crate::metric::{Direction, MetricValues};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identifier of a proposal (e.g. `p-0003-02`).
pub type ProposalId = String;
/// Identifier of a candidate (a proposal implemented in a worktree).
pub type CandidateId = String;
/// Identifier of an experiment.
pub type ExperimentId = String;
/// Identifier of a run of `recloop run`.
pub type RunId = String;

/// How ready a proposal is for implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Maturity {
    /// Can be implemented now.
    Ready,
    /// Needs a cheap probe (analysis, small test) first.
    ProbeFirst,
    /// Worth remembering, not now.
    Backlog,
}

/// Where a piece of evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// A past experiment or lesson in the journal.
    Journal,
    /// The workspace's code, docs or schema.
    SystemKb,
    /// A SQL query over logs.
    Sql,
    /// A research note.
    Research,
}

/// One item of evidence behind a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// Where it came from.
    pub source: EvidenceSource,
    /// Reference (experiment id, file path, query text, note name).
    pub reference: String,
    /// What it says, briefly.
    pub summary: String,
}

/// Which kind of step a proposal takes in the batch's exploration balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalKind {
    /// Refine what already works.
    Exploit,
    /// Try a different region of the space.
    Explore,
    /// Something the journal has never seen.
    Novel,
}

/// The components of the proposal score S (each in [0, 1]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreParts {
    /// Expected contribution to the objective.
    pub objective: f64,
    /// Business validity.
    pub business: f64,
    /// Feasibility.
    pub feasibility: f64,
    /// Completeness of the handoff to Develop.
    pub handoff: f64,
    /// Strength of the evidence.
    pub evidence: f64,
    /// Risk.
    pub risk: f64,
}

/// Weights λ of the proposal score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreWeights {
    pub objective: f64,
    pub business: f64,
    pub feasibility: f64,
    pub handoff: f64,
    pub evidence: f64,
    pub risk: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            objective: 0.35,
            business: 0.10,
            feasibility: 0.20,
            handoff: 0.10,
            evidence: 0.15,
            risk: 0.10,
        }
    }
}

impl ScoreParts {
    /// S = λo·objective + λb·business + λf·feasibility + λh·handoff + λe·evidence − λr·risk.
    pub fn score(&self, w: &ScoreWeights) -> f64 {
        w.objective * self.objective
            + w.business * self.business
            + w.feasibility * self.feasibility
            + w.handoff * self.handoff
            + w.evidence * self.evidence
            - w.risk * self.risk
    }
}

/// A hypothesis with everything Develop needs to implement it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub title: String,
    pub hypothesis: String,
    /// Why it should work.
    pub mechanism: String,
    /// Metric it targets and which way.
    pub target_metric: String,
    pub direction: Direction,
    /// Files or pipeline stage to change.
    pub location: Vec<String>,
    /// Signals (features, logs) it needs.
    #[serde(default)]
    pub required_signals: Vec<String>,
    #[serde(default)]
    pub risks: Vec<String>,
    /// How to validate it.
    pub validation: String,
    pub maturity: Maturity,
    pub kind: ProposalKind,
    #[serde(default)]
    pub evidence: Vec<EvidenceItem>,
    pub score_parts: ScoreParts,
    /// S, as computed by plain code from `score_parts`.
    pub score: f64,
    /// A machine-readable change description (for the built-in brain: the typed mutation).
    #[serde(default)]
    pub change: serde_json::Value,
    /// Pipeline stage the change touches (index field for failure assets).
    #[serde(default)]
    pub stage: String,
    /// The lever it pulls (e.g. `model.ease.lambda`).
    #[serde(default)]
    pub lever: String,
    /// The Brainstorm persona that proposed it (`[[personas]]`; empty: the generalist).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub persona: String,
}

/// A deterministic gate a candidate must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    EditablePaths,
    Build,
    Tests,
    Schema,
    DryRun,
    OfflineEval,
    Determinism,
}

/// Outcome of one gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: Gate,
    pub passed: bool,
    /// What failed and how to repair it (empty on success).
    pub detail: String,
}

/// Dimensions of the code-quality score Q_code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeQuality {
    /// Fields or files referenced that do not exist (unknown keys the schema rejected, files
    /// the agent claimed to change that are not there).
    pub hallucinated_fields: u32,
    /// Gates that needed a repair.
    pub gate_repairs: u32,
    /// Repair rounds used (≤ 3).
    pub repair_rounds: u32,
    /// A person had to step in (an approval answered by a person for this candidate).
    pub human_intervention: bool,
    /// A dry run ran and passed.
    pub dry_run_passed: bool,
    /// A dry run ran (false when the workspace declares no dry-run command).
    #[serde(default)]
    pub dry_run_ran: bool,
}

impl CodeQuality {
    /// Q_code in [0, 1] from measurements only: 1 is a clean first-time implementation. A dry
    /// run that did not run neither adds nor removes anything; one that ran and failed costs 0.3.
    pub fn score(&self) -> f64 {
        let mut q = 1.0;
        q -= 0.15 * f64::from(self.hallucinated_fields.min(4));
        q -= 0.05 * f64::from(self.gate_repairs.min(6));
        q -= 0.10 * f64::from(self.repair_rounds.min(3));
        if self.human_intervention {
            q -= 0.2;
        }
        if self.dry_run_ran && !self.dry_run_passed {
            q -= 0.3;
        }
        q.clamp(0.0, 1.0)
    }
}

/// Why a decision waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A guardrail is past its attention level (but within its hard level): offline, or
    /// online at the verdict of a KEEP.
    GuardrailAttention,
    /// An online guardrail crossed its attention threshold during the ramp.
    OnlineEscalation,
    /// `--approve`: every KEEP waits for a person before it is merged.
    Keep,
    /// The workspace has no online platform: a KEEP decided offline only needs a person.
    OfflineOnly,
    /// A `probe-first` proposal passed its offline probe: may it go online?
    ProbeFirst,
}

impl ApprovalKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::GuardrailAttention => "guardrail_attention",
            ApprovalKind::OnlineEscalation => "online_escalation",
            ApprovalKind::Keep => "keep",
            ApprovalKind::OfflineOnly => "offline_only",
            ApprovalKind::ProbeFirst => "probe_first",
        }
    }
}

/// Who answered an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Approver {
    /// A person, at the terminal of the run, on the CLI or in the dashboard.
    Person {
        /// How they answered (`terminal`, `cli`, `dashboard`) and, when known, their user name.
        via: String,
    },
    /// A policy the user configured for unattended runs (no person was asked).
    Policy {
        /// The policy, e.g. `--unattended reject`.
        name: String,
    },
}

impl Approver {
    /// True when a person answered.
    pub fn is_person(&self) -> bool {
        matches!(self, Approver::Person { .. })
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::Person { via } => write!(f, "a person ({via})"),
            Approver::Policy { name } => write!(f, "policy {name} (no person was asked)"),
        }
    }
}

/// A failure of the machinery (not a verdict on the candidate): it is recorded in its own class,
/// never as a gate failure or a verdict, and never puts a proposal in the avoid set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The sealed holdout evaluation could not be run.
    Holdout,
    /// The online platform failed.
    Platform,
    /// The language-model provider could not be reached or kept failing.
    LlmTransport,
    /// The model's answer could not be parsed or broke its contract.
    LlmAnswer,
    /// A spending or token budget ran out.
    Budget,
}

impl ErrorClass {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Holdout => "holdout",
            ErrorClass::Platform => "platform",
            ErrorClass::LlmTransport => "llm_transport",
            ErrorClass::LlmAnswer => "llm_answer",
            ErrorClass::Budget => "budget",
        }
    }
}

/// A proposal implemented in a worktree and checked by the gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: CandidateId,
    pub proposal: ProposalId,
    /// Production commit the worktree started from.
    pub base_commit: String,
    /// Commit holding the change (in the candidate branch).
    pub commit: String,
    pub branch: String,
    /// Content hash of the unified diff (artifact).
    pub diff_hash: String,
    pub gates: Vec<GateResult>,
    pub quality: CodeQuality,
    /// Validation-split metrics.
    pub offline: MetricValues,
}

/// The decision on an experiment, made by plain code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Keep,
    Extend,
    Discard,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decision::Keep => "KEEP",
            Decision::Extend => "EXTEND",
            Decision::Discard => "DISCARD",
        })
    }
}

/// Status of one guardrail at the end of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStatus {
    /// Significantly non-inferior.
    Ok,
    /// Not shown non-inferior, no significant harm.
    Inconclusive,
    /// Harm beyond the attention threshold: a person was asked.
    Attention,
    /// Harm beyond the hard threshold or significant harm: blocked.
    Harm,
}

/// The effect estimate of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEffect {
    pub metric: String,
    pub control: f64,
    pub treatment: f64,
    /// Absolute effect (treatment − control).
    pub effect: f64,
    /// Relative effect.
    pub relative: f64,
    /// Confidence interval of the absolute effect (None = infinite bound).
    pub ci: (Option<f64>, Option<f64>),
    pub p_value: f64,
}

/// The verdict record: decision plus everything needed to audit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    /// Primary metric effect (and others).
    pub effects: Vec<MetricEffect>,
    /// Statistical method used (e.g. "welch-t, holm over 2 success metrics").
    pub method: String,
    /// Observation window in days.
    pub window_days: u32,
    /// Traffic share reached.
    pub max_traffic: f64,
    pub guardrails: BTreeMap<String, GuardrailStatus>,
    /// Caveats (SRM warnings, novelty effects, attention escalations).
    #[serde(default)]
    pub caveats: Vec<String>,
    /// Why this decision, in one sentence produced by plain code.
    pub reason: String,
}

/// Kind of knowledge asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    ExperimentRecord,
    Verdict,
    Failure,
    Lesson,
}

/// Index fields of a failure asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureIndex {
    /// Pipeline stage (`candidates`, `blend`, `rerank`, `script`, ...).
    pub stage: String,
    /// Objective (metric) that was targeted.
    pub objective: String,
    /// User or item segment affected (`all` when unknown).
    pub segment: String,
    /// The lever that was pulled.
    pub lever: String,
}

/// A piece of knowledge the journal keeps for future proposals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeAsset {
    pub id: String,
    pub kind: AssetKind,
    pub experiment: Option<ExperimentId>,
    pub title: String,
    /// The content: record, verdict summary, root cause or lesson text.
    pub body: String,
    #[serde(default)]
    pub index: FailureIndex,
}

/// Whether a lesson says what to do or what to avoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LessonKind {
    Playbook,
    AntiPattern,
}

/// The life cycle of a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LessonStatus {
    /// Not yet supported by two independent runs and a failed falsification.
    Contested,
    /// Supported; used in prompts.
    Confirmed,
    /// Refuted; never used again.
    Falsified,
}

/// A reusable lesson.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    pub id: String,
    pub kind: LessonKind,
    pub status: LessonStatus,
    pub text: String,
    #[serde(default)]
    pub index: FailureIndex,
    /// Runs that agreed with it.
    #[serde(default)]
    pub supporting_runs: Vec<RunId>,
    /// Experiments that support it.
    #[serde(default)]
    pub supporting_experiments: Vec<ExperimentId>,
    /// Whether a falsification check was run and failed to refute it.
    #[serde(default)]
    pub falsification_failed: bool,
}

impl Lesson {
    /// Apply the promotion rule: `confirmed` needs ≥ 2 distinct supporting runs and a failed
    /// falsification; `falsified` never changes.
    pub fn promoted_status(&self) -> LessonStatus {
        if self.status == LessonStatus::Falsified {
            return LessonStatus::Falsified;
        }
        let mut runs: Vec<&RunId> = self.supporting_runs.iter().collect();
        runs.sort();
        runs.dedup();
        if runs.len() >= 2 && self.falsification_failed {
            LessonStatus::Confirmed
        } else {
            LessonStatus::Contested
        }
    }
}

/// One step of an agent: what it saw, what it did, what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryStep {
    pub agent: String,
    /// Prompt or structured input.
    pub input: String,
    #[serde(default)]
    pub tool_calls: Vec<serde_json::Value>,
    pub output: String,
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    #[serde(default)]
    pub cost_usd: f64,
    #[serde(default)]
    pub duration_ms: u64,
}

/// The text files that define one agent's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessSpec {
    /// Agent name: `brainstorm`, `develop`, `evaluate`, `evolve`.
    pub agent: String,
    /// File name -> content (instructions.md, validation.md, contract.schema.json, tools.md).
    pub files: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lesson_needs_two_runs_and_failed_falsification() {
        let mut l = Lesson {
            id: "l1".into(),
            kind: LessonKind::Playbook,
            status: LessonStatus::Contested,
            text: "EASE beats MostPop".into(),
            index: FailureIndex::default(),
            supporting_runs: vec!["r1".into(), "r1".into()],
            supporting_experiments: vec![],
            falsification_failed: true,
        };
        assert_eq!(l.promoted_status(), LessonStatus::Contested);
        l.supporting_runs.push("r2".into());
        assert_eq!(l.promoted_status(), LessonStatus::Confirmed);
        l.falsification_failed = false;
        assert_eq!(l.promoted_status(), LessonStatus::Contested);
        l.status = LessonStatus::Falsified;
        l.falsification_failed = true;
        assert_eq!(l.promoted_status(), LessonStatus::Falsified);
    }

    #[test]
    fn score_weights_risk_negatively() {
        let w = ScoreWeights::default();
        let safe = ScoreParts {
            objective: 1.0,
            risk: 0.0,
            ..Default::default()
        };
        let risky = ScoreParts {
            objective: 1.0,
            risk: 1.0,
            ..Default::default()
        };
        assert!(safe.score(&w) > risky.score(&w));
    }

    #[test]
    fn code_quality_is_one_for_clean_work() {
        let q = CodeQuality {
            dry_run_passed: true,
            dry_run_ran: true,
            ..Default::default()
        };
        assert_eq!(q.score(), 1.0);
        let failed = CodeQuality {
            dry_run_ran: true,
            ..Default::default()
        };
        assert!((failed.score() - 0.7).abs() < 1e-12);
        assert_eq!(
            CodeQuality::default().score(),
            1.0,
            "no dry run: no penalty"
        );
    }
}
