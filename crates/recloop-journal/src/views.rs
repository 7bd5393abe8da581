//! Typed rows of the views, as the agents, the server and the CLI read them.

use crate::error::{JournalError, Result};
use crate::schema::TableDef;
use crate::sql::{ColType, Val};
use recloop_core::{
    Decision, Direction, FailureIndex, KnowledgeAsset, Lesson, LessonKind, LessonStatus,
    MetricValues, Proposal, TrajectoryStep, Verdict,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Filter for [`crate::Journal::events`]; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only this run.
    pub run_id: Option<String>,
    /// Only these `type` tags (e.g. `["verdict", "gate_failed"]`).
    pub types: Vec<String>,
    /// Only events of this experiment (proposal id).
    pub proposal_id: Option<String>,
    /// Only this iteration.
    pub iteration: Option<u32>,
    /// Only events with a sequence number greater than this (paging).
    pub after_seq: Option<u64>,
    /// At most this many events.
    pub limit: Option<usize>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

/// One run of `recloop run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Run id.
    pub run_id: String,
    /// Sequence number of `run_started`.
    pub started_seq: Option<u64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Production commit at the start.
    pub production_commit: Option<String>,
    /// Settings.
    pub config: serde_json::Value,
    /// Times the run was resumed.
    pub resumes: u32,
    /// How it ended (`completed`, `interrupted`, ...); `None` while unfinished.
    pub outcome: Option<String>,
    /// Final summary.
    pub summary: Option<String>,
    /// Sequence number of `run_finished`.
    pub finished_seq: Option<u64>,
}

/// An experiment with its lineage proposal → candidate → verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentView {
    /// The experiment's id (= the proposal id).
    pub proposal_id: String,
    /// Run that proposed it.
    pub run_id: Option<String>,
    /// Iteration it was proposed in.
    pub iteration: Option<u32>,
    /// Proposal title.
    pub title: String,
    /// Hypothesis.
    pub hypothesis: String,
    /// Expected mechanism.
    pub mechanism: String,
    /// Target metric.
    pub target_metric: String,
    /// Direction of the target metric.
    pub direction: Option<Direction>,
    /// Exploit / explore / novel.
    pub kind: Option<String>,
    /// Maturity.
    pub maturity: Option<String>,
    /// Pipeline stage.
    pub stage: Option<String>,
    /// Lever.
    pub lever: Option<String>,
    /// Proposal score S.
    pub score: Option<f64>,
    /// Last lifecycle step: `proposed`, `admitted`, `rejected`, `developing`, `candidate`,
    /// `online`, `vetoed`, `decided`, `merged`.
    pub status: String,
    /// Rejection or veto reason.
    pub reason: Option<String>,
    /// Candidate id.
    pub candidate_id: Option<String>,
    /// Worktree path.
    pub worktree: Option<String>,
    /// Candidate branch.
    pub branch: Option<String>,
    /// Production commit the candidate started from.
    pub base_commit: Option<String>,
    /// Candidate commit.
    pub candidate_commit: Option<String>,
    /// Artifact hash of the diff.
    pub diff_hash: Option<String>,
    /// Q_code.
    pub q_code: Option<f64>,
    /// Gates passed (all rounds).
    pub gates_passed: u32,
    /// Gates failed (all rounds).
    pub gates_failed: u32,
    /// Validation-split metrics.
    pub offline_metrics: MetricValues,
    /// Holdout pass/fail.
    pub holdout_passed: Option<bool>,
    /// Online experiment id.
    pub experiment_id: Option<String>,
    /// Online platform.
    pub platform: Option<String>,
    /// Highest traffic share reached.
    pub max_traffic: Option<f64>,
    /// Health holds.
    pub health_holds: u32,
    /// Attention escalations.
    pub attention: u32,
    /// Whether the harm veto rolled it back.
    pub vetoed: bool,
    /// KEEP / EXTEND / DISCARD.
    pub decision: Option<Decision>,
    /// The full verdict.
    pub verdict: Option<Verdict>,
    /// Reason of the verdict.
    pub verdict_reason: Option<String>,
    /// Production commit after a merge.
    pub merged_commit: Option<String>,
    /// The full proposal.
    pub proposal: Option<Proposal>,
    /// Lineage: sequence number of `proposal_made`.
    pub proposal_seq: Option<u64>,
    /// Lineage: sequence number of `candidate_ready`.
    pub candidate_seq: Option<u64>,
    /// Lineage: sequence number of `verdict`.
    pub verdict_seq: Option<u64>,
    /// Last event that touched it.
    pub updated_seq: u64,
}

/// A production version (leaderboard row), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionVersion {
    /// 1 = the starting production, then one per merge.
    pub version: u32,
    /// Commit.
    pub commit: String,
    /// Event that created it.
    pub seq: u64,
    /// Run.
    pub run_id: Option<String>,
    /// Iteration.
    pub iteration: Option<u32>,
    /// Kept proposal (None for a run's starting production).
    pub proposal_id: Option<String>,
    /// Merged candidate.
    pub candidate_id: Option<String>,
    /// Offline metrics.
    pub metrics: MetricValues,
}

/// A knowledge asset with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetView {
    /// The asset.
    pub asset: KnowledgeAsset,
    /// Run that wrote it.
    pub run_id: Option<String>,
    /// Event that wrote it (last write).
    pub seq: u64,
}

/// A lesson with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LessonView {
    /// The lesson (status as projected: `falsified` is permanent).
    pub lesson: Lesson,
    /// Reason of the last demotion or falsification.
    pub reason: Option<String>,
    /// First event.
    pub created_seq: u64,
    /// Last event.
    pub updated_seq: u64,
}

/// One agent step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryView {
    /// Event sequence number.
    pub seq: u64,
    /// Run.
    pub run_id: String,
    /// Iteration.
    pub iteration: u32,
    /// Proposal worked on.
    pub proposal_id: Option<String>,
    /// The step.
    pub step: TrajectoryStep,
}

/// A version of an agent's harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarnessVersionView {
    /// Agent.
    pub agent: String,
    /// Version number.
    pub version: u32,
    /// Parent version.
    pub parent_version: Option<u32>,
    /// Admitted (false = archived rejected edit).
    pub admitted: bool,
    /// Diagnosis behind it.
    pub diagnosis: String,
    /// Harness files.
    pub files: BTreeMap<String, String>,
    /// Unified diff from the parent version (empty for an initial version).
    pub diff: String,
    /// Admission evidence (paired-replay numbers), `null` when none was recorded.
    pub evidence: serde_json::Value,
    /// Run.
    pub run_id: Option<String>,
    /// Event.
    pub seq: u64,
}

/// Spending of one agent in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// Run.
    pub run_id: String,
    /// Agent.
    pub agent: String,
    /// Model calls.
    pub calls: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// US dollars.
    pub usd: f64,
    /// Price table of the last call.
    pub price_table_version: Option<String>,
}

/// Filter of a full-text search; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Document kinds: `hypothesis`, `failure`, `verdict`, `experiment_record`, `lesson`
    /// (asset kinds), `diagnosis` (harness diagnoses).
    pub kinds: Vec<String>,
    /// Pipeline stage.
    pub stage: Option<String>,
    /// Objective (target metric).
    pub objective: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Lever.
    pub lever: Option<String>,
    /// Lesson status (`contested`, `confirmed`, `falsified`) or diagnosis status.
    pub status: Option<String>,
    /// Run.
    pub run_id: Option<String>,
    /// Match any word instead of all words.
    pub any_word: bool,
    /// At most this many hits (default 20).
    pub limit: Option<usize>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// `hypothesis:ID`, `asset:ID`, `lesson:ID` or `diagnosis:AGENT:VERSION`.
    pub doc_id: String,
    /// Document kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Stage.
    pub stage: Option<String>,
    /// Objective.
    pub objective: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Lever.
    pub lever: Option<String>,
    /// Status (lessons, diagnoses).
    pub status: Option<String>,
    /// Run.
    pub run_id: Option<String>,
    /// Event that wrote it.
    pub seq: u64,
    /// Relevance (higher is better; backend-specific scale).
    pub score: f64,
}

/// A past experiment similar to a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarExperiment {
    /// Similarity in [0, 1]: 0.6 × word overlap (Jaccard) + 0.25 × same lever + 0.15 × same stage.
    pub similarity: f64,
    /// The experiment.
    pub experiment: ExperimentView,
}

/// An experiment ranked by a metric (for prompts: best first, compact deltas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedExperiment {
    /// Experiment (proposal) id.
    pub proposal_id: String,
    /// Title.
    pub title: String,
    /// Lever.
    pub lever: Option<String>,
    /// Metric value (validation split).
    pub value: f64,
    /// Change against the production version it started from, when known.
    pub delta: Option<f64>,
    /// Decision, if decided.
    pub decision: Option<Decision>,
    /// Lifecycle status.
    pub status: String,
    /// One compact line: `p-3 ndcg@10=0.3912 (+0.0123) KEEP [model.ease.lambda] Tune EASE λ`.
    pub line: String,
}

/// A row decoded by a [`TableDef`], with typed accessors by column name.
pub(crate) struct RowMap<'a> {
    pub def: &'a TableDef,
    pub row: Vec<Val>,
    pub location: &'a str,
}

impl RowMap<'_> {
    fn idx(&self, col: &str) -> Result<usize> {
        self.def
            .columns
            .iter()
            .position(|(n, _)| *n == col)
            .ok_or_else(|| JournalError::Internal(format!("{} has no column {col}", self.def.name)))
    }

    pub fn text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.row[self.idx(col)?].as_str().map(str::to_string))
    }

    pub fn string(&self, col: &str) -> Result<String> {
        Ok(self.text(col)?.unwrap_or_default())
    }

    pub fn int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.row[self.idx(col)?].as_i64())
    }

    pub fn u64(&self, col: &str) -> Result<Option<u64>> {
        Ok(self.int(col)?.map(|i| i.max(0) as u64))
    }

    pub fn u32(&self, col: &str) -> Result<Option<u32>> {
        Ok(self
            .int(col)?
            .map(|i| u32::try_from(i.max(0)).unwrap_or(u32::MAX)))
    }

    pub fn real(&self, col: &str) -> Result<Option<f64>> {
        Ok(self.row[self.idx(col)?].as_f64())
    }

    pub fn bool(&self, col: &str) -> Result<Option<bool>> {
        Ok(self.int(col)?.map(|i| i != 0))
    }

    /// Parse a JSON column; NULL gives `None`.
    pub fn json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        match self.text(col)? {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| JournalError::Corrupt {
                    location: self.location.to_string(),
                    detail: format!("view {}.{col} holds malformed JSON ({e})", self.def.name),
                }),
        }
    }

    /// Parse a unit enum stored as its serde name.
    pub fn named<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        match self.text(col)? {
            None => Ok(None),
            Some(s) => serde_json::from_value(serde_json::Value::String(s.clone()))
                .map(Some)
                .map_err(|e| JournalError::Corrupt {
                    location: self.location.to_string(),
                    detail: format!("view {}.{col}: unknown value `{s}` ({e})", self.def.name),
                }),
        }
    }
}

/// Column list of a table for SELECT.
pub(crate) fn columns(def: &TableDef) -> (String, Vec<ColType>) {
    let names: Vec<&str> = def.columns.iter().map(|(n, _)| *n).collect();
    (
        names.join(", "),
        def.columns.iter().map(|(_, t)| *t).collect(),
    )
}

pub(crate) fn run_view(r: &RowMap) -> Result<RunView> {
    Ok(RunView {
        run_id: r.string("run_id")?,
        started_seq: r.u64("started_seq")?,
        seed: r.text("seed")?.and_then(|s| s.parse().ok()),
        production_commit: r.text("production_commit")?,
        config: r.json("config")?.unwrap_or(serde_json::Value::Null),
        resumes: r.u32("resumes")?.unwrap_or(0),
        outcome: r.text("outcome")?,
        summary: r.text("summary")?,
        finished_seq: r.u64("finished_seq")?,
    })
}

pub(crate) fn experiment_view(r: &RowMap) -> Result<ExperimentView> {
    Ok(ExperimentView {
        proposal_id: r.string("proposal_id")?,
        run_id: r.text("run_id")?,
        iteration: r.u32("iteration")?,
        title: r.string("title")?,
        hypothesis: r.string("hypothesis")?,
        mechanism: r.string("mechanism")?,
        target_metric: r.string("target_metric")?,
        direction: r.named("direction")?,
        kind: r.text("kind")?,
        maturity: r.text("maturity")?,
        stage: r.text("stage")?,
        lever: r.text("lever")?,
        score: r.real("score")?,
        status: r.string("status")?,
        reason: r.text("reason")?,
        candidate_id: r.text("candidate_id")?,
        worktree: r.text("worktree")?,
        branch: r.text("branch")?,
        base_commit: r.text("base_commit")?,
        candidate_commit: r.text("candidate_commit")?,
        diff_hash: r.text("diff_hash")?,
        q_code: r.real("q_code")?,
        gates_passed: r.u32("gates_passed")?.unwrap_or(0),
        gates_failed: r.u32("gates_failed")?.unwrap_or(0),
        offline_metrics: r.json("offline_metrics")?.unwrap_or_default(),
        holdout_passed: r.bool("holdout_passed")?,
        experiment_id: r.text("experiment_id")?,
        platform: r.text("platform")?,
        max_traffic: r.real("max_traffic")?,
        health_holds: r.u32("health_holds")?.unwrap_or(0),
        attention: r.u32("attention")?.unwrap_or(0),
        vetoed: r.bool("vetoed")?.unwrap_or(false),
        decision: r.named("decision")?,
        verdict: r.json("verdict")?,
        verdict_reason: r.text("verdict_reason")?,
        merged_commit: r.text("merged_commit")?,
        proposal: r.json("proposal")?,
        proposal_seq: r.u64("proposal_seq")?,
        candidate_seq: r.u64("candidate_seq")?,
        verdict_seq: r.u64("verdict_seq")?,
        updated_seq: r.u64("updated_seq")?.unwrap_or(0),
    })
}

pub(crate) fn production_version(r: &RowMap, version: u32) -> Result<ProductionVersion> {
    Ok(ProductionVersion {
        version,
        commit: r.string("commit_id")?,
        seq: r.u64("seq")?.unwrap_or(0),
        run_id: r.text("run_id")?,
        iteration: r.u32("iteration")?,
        proposal_id: r.text("proposal_id")?,
        candidate_id: r.text("candidate_id")?,
        metrics: r.json("metrics")?.unwrap_or_default(),
    })
}

fn index_of(r: &RowMap) -> Result<FailureIndex> {
    Ok(FailureIndex {
        stage: r.string("stage")?,
        objective: r.string("objective")?,
        segment: r.string("segment")?,
        lever: r.string("lever")?,
    })
}

pub(crate) fn asset_view(r: &RowMap) -> Result<AssetView> {
    Ok(AssetView {
        asset: KnowledgeAsset {
            id: r.string("asset_id")?,
            kind: r
                .named("kind")?
                .unwrap_or(recloop_core::AssetKind::ExperimentRecord),
            experiment: r.text("experiment_id")?,
            title: r.string("title")?,
            body: r.string("body")?,
            index: index_of(r)?,
        },
        run_id: r.text("run_id")?,
        seq: r.u64("seq")?.unwrap_or(0),
    })
}

pub(crate) fn lesson_view(r: &RowMap) -> Result<LessonView> {
    Ok(LessonView {
        lesson: Lesson {
            id: r.string("lesson_id")?,
            kind: r.named("kind")?.unwrap_or(LessonKind::Playbook),
            status: r.named("status")?.unwrap_or(LessonStatus::Contested),
            text: r.string("text")?,
            index: index_of(r)?,
            supporting_runs: r.json("supporting_runs")?.unwrap_or_default(),
            supporting_experiments: r.json("supporting_experiments")?.unwrap_or_default(),
            falsification_failed: r.bool("falsification_failed")?.unwrap_or(false),
        },
        reason: r.text("reason")?,
        created_seq: r.u64("created_seq")?.unwrap_or(0),
        updated_seq: r.u64("updated_seq")?.unwrap_or(0),
    })
}

pub(crate) fn trajectory_view(r: &RowMap) -> Result<TrajectoryView> {
    Ok(TrajectoryView {
        seq: r.u64("seq")?.unwrap_or(0),
        run_id: r.string("run_id")?,
        iteration: r.u32("iteration")?.unwrap_or(0),
        proposal_id: r.text("proposal_id")?,
        step: TrajectoryStep {
            agent: r.string("agent")?,
            input: r.string("input")?,
            tool_calls: r.json("tool_calls")?.unwrap_or_default(),
            output: r.string("output")?,
            tokens_in: r.u64("tokens_in")?.unwrap_or(0),
            tokens_out: r.u64("tokens_out")?.unwrap_or(0),
            cost_usd: r.real("cost_usd")?.unwrap_or(0.0),
            duration_ms: r.u64("duration_ms")?.unwrap_or(0),
        },
    })
}

pub(crate) fn harness_view(r: &RowMap) -> Result<HarnessVersionView> {
    Ok(HarnessVersionView {
        agent: r.string("agent")?,
        version: r.u32("version")?.unwrap_or(0),
        parent_version: r.u32("parent_version")?,
        admitted: r.bool("admitted")?.unwrap_or(false),
        diagnosis: r.string("diagnosis")?,
        files: r.json("spec")?.unwrap_or_default(),
        diff: r.string("diff")?,
        evidence: r.json("evidence")?.unwrap_or(serde_json::Value::Null),
        run_id: r.text("run_id")?,
        seq: r.u64("seq")?.unwrap_or(0),
    })
}

pub(crate) fn budget_view(r: &RowMap) -> Result<BudgetView> {
    Ok(BudgetView {
        run_id: r.string("run_id")?,
        agent: r.string("agent")?,
        calls: r.u64("calls")?.unwrap_or(0),
        tokens_in: r.u64("tokens_in")?.unwrap_or(0),
        tokens_out: r.u64("tokens_out")?.unwrap_or(0),
        usd: r.real("usd")?.unwrap_or(0.0),
        price_table_version: r.text("price_table_version")?,
    })
}
