//! Develop: one proposal → one candidate in its own git worktree from the production commit,
//! through the brain's tools, checked by deterministic gates with up to 3 targeted repair rounds,
//! scored by `Q_code`. Every gate outcome is journaled before the next step relies on it.

use crate::brain::{Brain, DevelopInput};
use crate::error::{AgentError, Result};
use crate::evaluator::{
    EvalError, JobContext, OfflineEvaluator, Split, nondeterministic_keys, primary_value,
};
use crate::git::Repo;
use crate::git::Signature;
use crate::harness::Harness;
use crate::record::Recorder;
use crate::sandbox::Sandbox;
use crate::tools::Tools;
use recloop_core::{
    Candidate, CodeQuality, ErrorClass, Gate, GateResult, Manifest, MetricValues, Proposal,
};
use recloop_journal::Event;
use std::path::{Path, PathBuf};

/// Maximum repair rounds after the first attempt.
pub const MAX_REPAIR_ROUNDS: u32 = 3;

/// Everything Develop needs.
pub struct DevelopCtx<'a> {
    /// Manifest.
    pub manifest: &'a Manifest,
    /// The workspace repository.
    pub repo: &'a Repo,
    /// Sandbox for commands (None: commands refused).
    pub sandbox: Option<Sandbox>,
    /// Offline evaluator.
    pub evaluator: &'a dyn OfflineEvaluator,
    /// The brain.
    pub brain: &'a dyn Brain,
    /// Develop's harness.
    pub harness: &'a Harness,
    /// Journal.
    pub rec: &'a Recorder,
    /// Iteration.
    pub iteration: u32,
    /// Production commit to start from.
    pub base_commit: String,
    /// Fixed commit time (seconds since the epoch) for reproducible hashes.
    pub commit_time: u64,
    /// Diff hashes of earlier candidates → their proposal ids (an identical change is a
    /// duplicate and is not checked again).
    pub tried_diffs: std::collections::BTreeMap<String, String>,
    /// Failures and lessons from the journal that concern this proposal
    /// ([`crate::evidence::pitfalls`]).
    pub pitfalls: String,
    /// The shared git remote of workers (`[workers] remote`): a candidate's commit is pushed
    /// there (as `refs/recloop/candidates/ID`) before it is journaled as ready.
    pub remote: Option<String>,
}

/// Files listed in Develop's context at most.
const FILE_MAP_LIMIT: usize = 200;

/// What Develop is told about the worktree before it starts: the file map (editable files
/// marked), the README's beginning, and the journal's pitfalls for this proposal.
pub fn develop_context(ctx: &DevelopCtx<'_>, worktree: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![worktree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name == ".git" || name == ".recloop" || name == "__pycache__" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(worktree) {
                let rel = rel.to_string_lossy().replace('\\', "/");
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let mark = if ctx.manifest.is_editable(&rel) {
                    " (editable)"
                } else {
                    ""
                };
                files.push(format!("- {rel}, {size} bytes{mark}"));
            }
        }
    }
    files.sort();
    let more = files.len().saturating_sub(FILE_MAP_LIMIT);
    files.truncate(FILE_MAP_LIMIT);
    let mut out = format!("# Files\n{}\n", files.join("\n"));
    if more > 0 {
        out.push_str(&format!("- … and {more} more\n"));
    }
    if let Ok(readme) = std::fs::read_to_string(worktree.join("README.md")) {
        out.push_str(&format!(
            "\n# README.md (beginning)\n{}\n",
            readme.chars().take(3000).collect::<String>()
        ));
    }
    if !ctx.pitfalls.is_empty() {
        out.push_str(&format!(
            "\n# From the journal: failures on this lever or stage, and lessons\n{}",
            ctx.pitfalls
        ));
    }
    out
}

/// The outcome of Develop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DevelopResult {
    /// All gates passed.
    Ready {
        /// The candidate.
        candidate: Candidate,
    },
    /// Gates failed after the allowed repair rounds (or the change could not be made).
    Failed {
        /// Candidate id.
        candidate_id: String,
        /// Why, naming the gate.
        reason: String,
        /// Gate outcomes of the last round.
        gates: Vec<GateResult>,
        /// Q_code dimensions.
        quality: CodeQuality,
    },
}

/// Candidate id of a proposal.
pub fn candidate_id(proposal: &Proposal) -> String {
    format!("c-{}", proposal.id)
}

/// Worktree directory of a candidate.
pub fn worktree_dir(repo: &Repo, cid: &str) -> PathBuf {
    repo.root.join(".recloop").join("worktrees").join(cid)
}

fn run_cmd(
    sandbox: Option<&Sandbox>,
    dir: &Path,
    cmd: &str,
) -> std::result::Result<String, String> {
    let sb = sandbox.ok_or_else(|| "no sandbox: commands are refused".to_string())?;
    let out = sb.run(dir, cmd).map_err(|e| e.to_string())?;
    if out.success() {
        Ok(format!(
            "`{cmd}` ok in {} ms ({})",
            out.duration_ms, out.confinement
        ))
    } else {
        Err(out.failure_reason())
    }
}

/// True when a schema error names a key or parameter the schema does not know (the agent
/// referred to a field that does not exist).
fn names_an_unknown_key(error: &str) -> bool {
    error.contains("unknown field") || error.contains("unknown parameter")
}

/// What the gates measured besides pass/fail (for Q_code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateMeasures {
    /// Keys or parameters the schema rejected as unknown.
    pub unknown_keys: u32,
    /// A dry-run command ran.
    pub dry_run_ran: bool,
}

/// Run the gates in order, stopping at the first failure. Returns the results, what they
/// measured, and, when the offline evaluation ran, its metrics.
///
/// `job` names the round for the journal (`develop/PROPOSAL/eval/ROUND`): the offline
/// evaluations run as jobs under it when `[executor]` is set. A cancelled run is an error
/// ([`AgentError::Cancelled`]), never a failed gate.
pub fn run_gates(
    ctx: &DevelopCtx<'_>,
    worktree: &Path,
    job: (&str, u32),
) -> Result<(Vec<GateResult>, GateMeasures, Option<MetricValues>)> {
    let mut results = Vec::new();
    let mut measures = GateMeasures::default();
    let mut record = |r: GateResult| {
        let ok = r.passed;
        results.push(r);
        ok
    };
    let c = &ctx.manifest.commands;
    let passed = record(editable_paths_gate(ctx, worktree))
        && record(command_gate(ctx, worktree, Gate::Build, &c.build))
        && record(command_gate(ctx, worktree, Gate::Tests, &c.test))
        && record(schema_gate(worktree, &mut measures))
        && record(dry_run_gate(ctx, worktree, &mut measures));
    if !passed {
        return Ok((results, measures, None));
    }
    let (pid, round) = job;
    let job = |what: &str| JobContext {
        rec: ctx.rec,
        iteration: ctx.iteration,
        step: format!("develop/{pid}/eval/{what}/{round}"),
        proposal_id: Some(pid.to_string()),
        job: format!("validation of candidate {pid} round {round} ({what})"),
    };
    let (offline, first) = offline_gate(ctx, worktree, &job("offline"))?;
    let (true, Some(first)) = (record(offline), first) else {
        return Ok((results, measures, None));
    };
    let metrics = record(determinism_gate(
        ctx,
        worktree,
        &first,
        &job("determinism"),
    )?)
    .then_some(first);
    Ok((results, measures, metrics))
}

fn pass(gate: Gate, detail: String) -> GateResult {
    GateResult {
        gate,
        passed: true,
        detail,
    }
}

fn fail(gate: Gate, detail: String) -> GateResult {
    GateResult {
        gate,
        passed: false,
        detail,
    }
}

/// Gate 1: something changed, and only editable paths.
fn editable_paths_gate(ctx: &DevelopCtx<'_>, worktree: &Path) -> GateResult {
    match ctx.repo.changed_paths(worktree, &ctx.base_commit) {
        Err(e) => fail(Gate::EditablePaths, e.to_string()),
        Ok(paths) if paths.is_empty() => fail(Gate::EditablePaths, "no file was changed".into()),
        Ok(paths) => {
            let bad: Vec<&str> = paths
                .iter()
                .filter(|p| !ctx.manifest.is_editable(p))
                .map(|s| s.as_str())
                .collect();
            if bad.is_empty() {
                pass(Gate::EditablePaths, paths.join(", "))
            } else {
                fail(
                    Gate::EditablePaths,
                    format!(
                        "protected or non-editable paths changed: {}; revert them and change only {:?}",
                        bad.join(", "),
                        ctx.manifest.project.editable
                    ),
                )
            }
        }
    }
}

/// Gates 2–3: the workspace's build or test command, when it declares one.
fn command_gate(ctx: &DevelopCtx<'_>, worktree: &Path, gate: Gate, cmd: &str) -> GateResult {
    if cmd.trim().is_empty() {
        return pass(gate, "no command declared".into());
    }
    match run_cmd(ctx.sandbox.as_ref(), worktree, cmd) {
        Ok(d) => pass(gate, d),
        Err(e) => fail(gate, format!("{e}; fix the error this command reports")),
    }
}

/// Gate 4: `pipeline.toml`, when the workspace has one, parses and validates.
fn schema_gate(worktree: &Path, measures: &mut GateMeasures) -> GateResult {
    if !worktree.join("pipeline.toml").exists() {
        return pass(Gate::Schema, "no pipeline.toml in this workspace".into());
    }
    match recloop_rec::pipeline::PipelineSpec::load_workspace(worktree) {
        Ok(_) => pass(Gate::Schema, "pipeline.toml parses and validates".into()),
        Err(e) => {
            let text = e.to_string();
            if names_an_unknown_key(&text) {
                measures.unknown_keys += 1;
            }
            fail(
                Gate::Schema,
                format!("{text}; use only fields listed by query_schema"),
            )
        }
    }
}

/// Gate 5: the workspace's `check` command (a dry run), when it declares one.
fn dry_run_gate(ctx: &DevelopCtx<'_>, worktree: &Path, measures: &mut GateMeasures) -> GateResult {
    let check = &ctx.manifest.commands.check;
    if check.trim().is_empty() {
        return pass(
            Gate::DryRun,
            "not run: recloop.toml declares no `check` command".into(),
        );
    }
    measures.dry_run_ran = true;
    // the built-in pipeline's dry run, in this process when it is not the `recloop` binary
    // (tests, library use), as the evaluator does for `recloop rec eval`
    if check.trim_start().starts_with("recloop rec check")
        && crate::sandbox::recloop_exe().is_none()
    {
        return match recloop_rec::pipeline::dry_run_workspace(worktree) {
            Ok(_) => pass(
                Gate::DryRun,
                format!("`{check}` ok (in-process dry run on a generated sample)"),
            ),
            Err(e) => fail(Gate::DryRun, e.to_string()),
        };
    }
    match run_cmd(ctx.sandbox.as_ref(), worktree, check) {
        Ok(d) => pass(Gate::DryRun, d),
        Err(e) => fail(Gate::DryRun, e),
    }
}

/// Gate 6: the offline evaluation on the validation split yields the primary metric and finite
/// guardrail metrics. Returns the metrics when it ran.
fn offline_gate(
    ctx: &DevelopCtx<'_>,
    worktree: &Path,
    job: &JobContext<'_>,
) -> Result<(GateResult, Option<MetricValues>)> {
    let m = match ctx.evaluator.evaluate_job(worktree, Split::Validation, job) {
        Err(EvalError::Cancelled) => return Err(AgentError::Cancelled),
        Err(e) => return Ok((fail(Gate::OfflineEval, e.to_string()), None)),
        Ok(m) => m,
    };
    let r = match primary_value(&m, ctx.manifest) {
        Err(e) => fail(Gate::OfflineEval, e),
        Ok(v) => {
            let bad: Vec<&String> = ctx
                .manifest
                .metrics
                .guardrails
                .iter()
                .map(|g| &g.name)
                .filter(|n| m.get(*n).is_some_and(|v| !v.is_finite()))
                .collect();
            if bad.is_empty() {
                pass(
                    Gate::OfflineEval,
                    format!("{} = {v:.5}", ctx.manifest.metrics.primary.name),
                )
            } else {
                fail(
                    Gate::OfflineEval,
                    format!("guardrail metrics are not finite: {bad:?}"),
                )
            }
        }
    };
    Ok((r, Some(m)))
}

/// Gate 7: a second evaluation with the same seed gives the same metrics.
fn determinism_gate(
    ctx: &DevelopCtx<'_>,
    worktree: &Path,
    first: &MetricValues,
    job: &JobContext<'_>,
) -> Result<GateResult> {
    Ok(
        match ctx.evaluator.evaluate_job(worktree, Split::Validation, job) {
            Err(EvalError::Cancelled) => return Err(AgentError::Cancelled),
            Err(e) => fail(Gate::Determinism, format!("second run failed: {e}")),
            Ok(second) => {
                let diff = nondeterministic_keys(first, &second);
                if diff.is_empty() {
                    pass(Gate::Determinism, "same seed, same metrics".into())
                } else {
                    fail(
                        Gate::Determinism,
                        format!(
                            "metrics differ between two runs with the same seed: {diff:?}; seed every random choice"
                        ),
                    )
                }
            }
        },
    )
}

/// How one develop round ended.
enum RoundOutcome {
    /// The gates ran (or the change could not be made: a failed editable-paths gate).
    Checked {
        gates: Vec<GateResult>,
        metrics: Option<MetricValues>,
    },
    /// The model's answer was unusable; the next round asks again.
    Unusable { detail: String },
    /// The change repeats an earlier candidate's (the proposal id of that candidate).
    Duplicate { earlier: String },
}

/// One proposal's develop attempt in its worktree.
struct Attempt<'a> {
    ctx: &'a DevelopCtx<'a>,
    proposal: &'a Proposal,
    worktree: &'a Path,
    branch: &'a str,
    tools: &'a Tools,
    context: &'a str,
    transcript: &'a std::sync::Mutex<Vec<recloop_llm::Message>>,
}

impl Attempt<'_> {
    /// Round `round`: the brain edits the worktree, then the gates run. A transport or budget
    /// failure removes the worktree and ends the attempt with the error.
    fn round(
        &self,
        round: u32,
        repair: Option<&str>,
        quality: &mut CodeQuality,
    ) -> Result<RoundOutcome> {
        let (ctx, pid) = (self.ctx, &self.proposal.id);
        let spend = crate::brain::SpendLog::new();
        let out = ctx.brain.develop(&DevelopInput {
            manifest: ctx.manifest,
            worktree: self.worktree,
            proposal: self.proposal,
            repair,
            harness: ctx.harness,
            tools: self.tools,
            context: self.context,
            transcript: self.transcript,
            spend: &spend,
        });
        ctx.rec.spend(
            ctx.iteration,
            &format!("develop/{pid}/spend/{round}"),
            &spend,
        )?;
        match out {
            Err(AgentError::Stage { class, detail }) => {
                // The model failed, not the change: recorded in its own class, never as a gate.
                ctx.rec.emit(
                    ctx.iteration,
                    &format!("develop/{pid}/stage_failed/{round}"),
                    Event::StageFailed {
                        proposal_id: Some(pid.clone()),
                        stage: "develop".into(),
                        class,
                        detail: detail.clone(),
                    },
                    None,
                )?;
                if class != ErrorClass::LlmAnswer {
                    ctx.repo.remove_worktree(self.worktree, self.branch)?;
                    return Err(AgentError::Stage { class, detail });
                }
                Ok(RoundOutcome::Unusable { detail })
            }
            Err(e @ (AgentError::Budget(_) | AgentError::Journal(_))) => {
                ctx.repo.remove_worktree(self.worktree, self.branch)?;
                Err(e)
            }
            // The change could not be made (a diff that does not apply, a protected path):
            // a failed editable-paths gate with the reason.
            Err(e) => Ok(RoundOutcome::Checked {
                gates: vec![fail(Gate::EditablePaths, e.to_string())],
                metrics: None,
            }),
            Ok(o) => {
                quality.hallucinated_fields += o.hallucinated_fields;
                ctx.rec.emit(
                    ctx.iteration,
                    &format!("develop/{pid}/trajectory/{round}"),
                    Event::TrajectoryStep {
                        proposal_id: Some(pid.clone()),
                        step: o.trajectory,
                    },
                    None,
                )?;
                if let Some(earlier) = duplicate_change(ctx, self.worktree)? {
                    return Ok(RoundOutcome::Duplicate { earlier });
                }
                let (gates, measured, metrics) = run_gates(ctx, self.worktree, (pid, round))?;
                quality.hallucinated_fields += measured.unknown_keys;
                quality.dry_run_ran |= measured.dry_run_ran;
                Ok(RoundOutcome::Checked { gates, metrics })
            }
        }
    }
}

/// Implement `proposal`: worktree, brain through tools, gates, repairs, commit.
pub fn develop(ctx: &DevelopCtx<'_>, proposal: &Proposal) -> Result<DevelopResult> {
    let pid = &proposal.id;
    let cid = candidate_id(proposal);
    let branch = format!("recloop/{cid}");
    let wt = worktree_dir(ctx.repo, &cid);
    ctx.repo.add_worktree(&wt, &branch, &ctx.base_commit)?;
    ctx.rec.emit(
        ctx.iteration,
        &format!("develop/{pid}/worktree"),
        Event::WorktreeCreated {
            proposal_id: pid.clone(),
            candidate_id: cid.clone(),
            path: wt.display().to_string(),
            branch: branch.clone(),
            base_commit: ctx.base_commit.clone(),
        },
        None,
    )?;
    let tools = Tools::new(&wt, ctx.manifest, ctx.sandbox.clone());
    let context = develop_context(ctx, &wt);
    // one conversation per proposal: a repair round continues it with the gate's evidence
    let transcript = std::sync::Mutex::new(Vec::new());
    let attempt = Attempt {
        ctx,
        proposal,
        worktree: &wt,
        branch: &branch,
        tools: &tools,
        context: &context,
        transcript: &transcript,
    };
    // typed edits are not repaired: a failed gate rejects the mutation
    let max_rounds = if ctx.brain.writes_code() {
        MAX_REPAIR_ROUNDS
    } else {
        0
    };
    let mut quality = CodeQuality::default();
    let mut repair: Option<String> = None;
    let mut last_gates = Vec::new();
    let mut unusable_answers = 0u32;
    for round in 0..=max_rounds {
        quality.repair_rounds = round;
        let (gates, metrics) = match attempt.round(round, repair.as_deref(), &mut quality)? {
            RoundOutcome::Checked { gates, metrics } => (gates, metrics),
            RoundOutcome::Unusable { detail } => {
                unusable_answers += 1;
                repair = Some(format!(
                    "Your previous answer was unusable: {detail}\nAnswer with one JSON object that follows the output contract."
                ));
                continue;
            }
            RoundOutcome::Duplicate { earlier } => {
                let reason = format!(
                    "duplicate: the change is identical (same normalized diff) to the candidate of {earlier}"
                );
                return reject(ctx, proposal, &wt, &branch, reason, vec![], quality);
            }
        };
        record_gates(ctx, proposal, round, &gates, &mut quality)?;
        last_gates = gates.clone();
        if let Some(metrics) = metrics {
            let candidate = commit_candidate(ctx, proposal, &wt, gates, quality, metrics)?;
            return Ok(DevelopResult::Ready { candidate });
        }
        let failed = gates.iter().find(|g| !g.passed);
        repair = failed.map(|g| {
            format!(
                "Gate `{:?}` failed: {}\nRepair exactly this and nothing else.",
                g.gate, g.detail
            )
        });
    }
    if last_gates.is_empty() && unusable_answers > 0 {
        // Every round ended with an unusable answer: a failure of the model, not of the idea.
        ctx.repo.remove_worktree(&wt, &branch)?;
        return Err(AgentError::Stage {
            class: ErrorClass::LlmAnswer,
            detail: format!("develop: {unusable_answers} unusable answer(s), no change to check"),
        });
    }
    let reason = last_gates
        .iter()
        .find(|g| !g.passed)
        .map(|g| format!("gate {:?} failed: {}", g.gate, g.detail))
        .unwrap_or_else(|| "gates failed".into());
    reject(ctx, proposal, &wt, &branch, reason, last_gates, quality)
}

/// Journal each gate's outcome of `round`; failed gates count as repairs, a dry run that ran
/// and passed is noted.
fn record_gates(
    ctx: &DevelopCtx<'_>,
    proposal: &Proposal,
    round: u32,
    gates: &[GateResult],
    quality: &mut CodeQuality,
) -> Result<()> {
    let pid = &proposal.id;
    let cid = candidate_id(proposal);
    for g in gates {
        let step = format!("develop/{pid}/gate/{:?}/{round}", g.gate);
        let ev = if g.passed {
            Event::GatePassed {
                proposal_id: pid.clone(),
                candidate_id: cid.clone(),
                gate: g.gate,
                round,
                detail: g.detail.clone(),
            }
        } else {
            quality.gate_repairs += 1;
            Event::GateFailed {
                proposal_id: pid.clone(),
                candidate_id: cid.clone(),
                gate: g.gate,
                round,
                detail: g.detail.clone(),
            }
        };
        ctx.rec.emit(ctx.iteration, &step, ev, None)?;
        if g.gate == Gate::DryRun && g.passed && quality.dry_run_ran {
            quality.dry_run_passed = true;
        }
    }
    Ok(())
}

/// Commit the worktree that passed every gate and journal the candidate (its diff as an
/// artifact, its validation metrics, `candidate_ready`).
fn commit_candidate(
    ctx: &DevelopCtx<'_>,
    proposal: &Proposal,
    wt: &Path,
    gates: Vec<GateResult>,
    quality: CodeQuality,
    metrics: MetricValues,
) -> Result<Candidate> {
    let pid = &proposal.id;
    let cid = candidate_id(proposal);
    let diff = ctx.repo.diff(wt, &ctx.base_commit)?;
    let hash = ctx.rec.artifact(diff.as_bytes())?;
    let commit = ctx.repo.commit_all(
        wt,
        &format!("{cid}: {}\n\nProposal {pid}.", proposal.title),
        &Signature::recloop(Some(ctx.commit_time)),
    )?;
    if let Some(remote) = &ctx.remote {
        ctx.repo
            .push_ref(remote, &commit, &format!("refs/recloop/candidates/{cid}"))?;
    }
    ctx.rec.emit(
        ctx.iteration,
        &format!("develop/{pid}/offline"),
        Event::OfflineResult {
            proposal_id: pid.clone(),
            candidate_id: cid.clone(),
            split: "validation".into(),
            metrics: metrics.clone(),
        },
        None,
    )?;
    let candidate = Candidate {
        id: cid.clone(),
        proposal: pid.clone(),
        base_commit: ctx.base_commit.clone(),
        commit,
        branch: format!("recloop/{cid}"),
        diff_hash: hash.to_string(),
        gates,
        quality,
        offline: metrics,
    };
    ctx.rec.emit(
        ctx.iteration,
        &format!("develop/{pid}/ready"),
        Event::CandidateReady {
            candidate: candidate.clone(),
        },
        None,
    )?;
    Ok(candidate)
}

/// The proposal whose candidate made exactly the change now in `worktree` (same normalized
/// diff against the same base), if any.
fn duplicate_change(ctx: &DevelopCtx<'_>, worktree: &Path) -> Result<Option<String>> {
    if ctx.tried_diffs.is_empty() {
        return Ok(None);
    }
    let diff = ctx.repo.diff(worktree, &ctx.base_commit)?;
    let hash = recloop_journal::ArtifactHash::of(diff.as_bytes()).to_string();
    Ok(ctx.tried_diffs.get(&hash).cloned())
}

/// Record the rejection of `proposal` (into the avoid set) and drop its worktree.
fn reject(
    ctx: &DevelopCtx<'_>,
    proposal: &Proposal,
    wt: &Path,
    branch: &str,
    reason: String,
    gates: Vec<GateResult>,
    quality: CodeQuality,
) -> Result<DevelopResult> {
    let pid = &proposal.id;
    ctx.rec.emit(
        ctx.iteration,
        &format!("develop/{pid}/rejected"),
        Event::ProposalRejected {
            proposal_id: pid.clone(),
            reason: reason.clone(),
        },
        None,
    )?;
    ctx.repo.remove_worktree(wt, branch)?;
    Ok(DevelopResult::Failed {
        candidate_id: candidate_id(proposal),
        reason,
        gates,
        quality,
    })
}
