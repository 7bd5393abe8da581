//! The orchestrator of `recloop run`: Brainstorm → Develop (K candidates in flight) → Evaluate →
//! merge the best KEEP → lessons, iteration after iteration. Every step is journaled before it is
//! relied on, with idempotency keys `RUN/ITERATION/STEP`; a step whose completion is recorded is
//! never redone, so `recloop run` after Ctrl-C or `kill -9` continues where the events end.

use crate::approvals::Approvals;
use crate::brain::{Brain, BrainstormInput};
use crate::develop::{DevelopCtx, DevelopResult, candidate_id, develop, worktree_dir};
use crate::error::{AgentError, Result};
use crate::evaluate::{
    EvaluateCtx, OnlinePlatform, SealedHoldout, evaluate, lesson_id, update_lesson,
};
use crate::evaluator::{
    EvalError, JobContext, OfflineEvaluator, Split, evaluator_for, primary_value,
};
use crate::executor::JobRunner;
use crate::git::FIXED_CLOCK;
use crate::git::Repo;
use crate::harness::{self, Harness};
use crate::history::History;
use crate::record::Recorder;
use crate::sandbox::Sandbox;

mod dual;
use indicatif::{ProgressBar, ProgressStyle};
use recloop_core::{Candidate, Decision, Manifest, Maturity, MetricValues, Proposal, Verdict};
use recloop_journal::{Event, EventRecord, Journal, RunOutcome};
use recloop_rec::pipeline::PipelineSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `recloop run`.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Iterations (default: the manifest's `[run] iterations`).
    pub iterations: Option<u32>,
    /// Candidates in flight (default: `[run] workers`).
    pub workers: Option<u32>,
    /// Spending limit for language-model calls.
    pub budget_usd: Option<f64>,
    /// `--approve`: every KEEP waits for a person's approval before it is merged.
    pub approve: bool,
    /// Where approvals are answered (a terminal prompter, and the unattended policy).
    pub approvals: crate::approvals::Approvals,
    /// Seed override (default: `[run] seed`).
    pub seed: Option<u64>,
    /// Show a live progress display.
    pub progress: bool,
    /// The brain (default: the built-in brain).
    pub brain: Option<Arc<dyn Brain>>,
    /// The online platform (None: the one `[online] platform` names, built at start; a
    /// platform that cannot be built is an error, and `none` means offline only).
    pub online: Option<Arc<dyn OnlinePlatform>>,
    /// Evaluator override (default: the workspace's commands, sandboxed).
    pub evaluator: Option<Arc<dyn OfflineEvaluator>>,
    /// Stop (as if killed) after this many completed steps — for resumption tests.
    pub stop_after_steps: Option<usize>,
    /// End the run after the iteration in which its online experiments reach this many days
    /// (the simulated calendar; see [`crate::calendar`]).
    pub simulated_days: Option<u32>,
    /// Models of `[evolve] every = N` rounds (default: the workspace's `[llm]` roles; without
    /// either, no rounds run).
    pub evolve_models: Option<crate::evolve::EvolveModels>,
    /// Set to cancel the run (Ctrl-C): evaluation jobs in flight are cancelled and journaled,
    /// and the run stops with [`AgentError::Cancelled`], resumable like after a kill.
    pub cancel: crate::executor::CancelToken,
    /// The journal's URL (`postgres://…` lets several workers share the loop; default
    /// `$RECLOOP_JOURNAL_URL`, else the workspace's SQLite journal).
    pub journal: Option<String>,
}

/// One tried experiment in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// Iteration.
    pub iteration: u32,
    /// Proposal id.
    pub proposal_id: String,
    /// Title.
    pub title: String,
    /// Validation primary metric, if measured.
    pub validation: Option<f64>,
    /// `KEEP`, `DISCARD`, `EXTEND` or `REJECTED: reason`.
    pub outcome: String,
    /// Merged into production.
    pub merged: bool,
}

/// The ending production against the starting production in one guarded online experiment on
/// the platform (same seed-derived users): the online metric the platform decides on (the north
/// star when the primary is an offline metric), in both arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalAb {
    /// Experiment id.
    pub experiment_id: String,
    /// The platform it ran on (`simulator`, `external`, ...).
    #[serde(default = "simulator_name")]
    pub platform: String,
    /// Metric (e.g. `retention_d7`).
    pub metric: String,
    /// Value under the starting production (control).
    pub start: f64,
    /// Value under the ending production (treatment).
    pub end: f64,
    /// Confidence interval of the difference, when the platform gives one.
    pub ci: (Option<f64>, Option<f64>),
    /// p-value of the difference (Holm-adjusted by the platform).
    pub p_value: f64,
    /// The platform's decision on end vs start.
    pub decision: Decision,
    /// Days the experiment ran and the highest treatment share reached.
    pub days: u32,
    /// Highest treatment share.
    pub max_traffic: f64,
    /// The other success metrics of the comparison (the north star when a proxy decided).
    #[serde(default)]
    pub others: Vec<recloop_core::MetricEffect>,
}

fn simulator_name() -> String {
    "simulator".into()
}

/// The final summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Brain.
    pub brain: String,
    /// Iterations completed.
    pub iterations: u32,
    /// Primary metric name.
    pub primary: String,
    /// Starting production metrics (validation).
    pub start: MetricValues,
    /// Final production metrics (validation).
    pub end: MetricValues,
    /// Everything tried.
    pub tried: Vec<Tried>,
    /// Online effects of kept experiments on the north star (metric, effect) when measured.
    pub north_star_effects: Vec<(String, f64)>,
    /// The final online comparison of the ending production against the starting one (None when
    /// production did not move or no online platform is configured).
    #[serde(default)]
    pub final_ab: Option<FinalAb>,
    /// Language-model spend.
    pub cost_usd: f64,
    /// How the run ended (`completed`, `budget_exhausted`, or `waiting_for_approval` when it
    /// stopped at a decision that waits for a person).
    pub outcome: String,
    /// Approvals the run stopped at: (approval id, question).
    #[serde(default)]
    pub pending_approvals: Vec<(String, String)>,
    /// Days and number of the run's online experiments (the final comparison not included).
    #[serde(default)]
    pub online_days: u32,
    /// Online experiments the run started.
    #[serde(default)]
    pub online_experiments: u32,
}

impl RunSummary {
    /// KEEP verdicts that were merged.
    pub fn kept(&self) -> usize {
        self.tried.iter().filter(|t| t.merged).count()
    }

    /// Lift of the primary metric over the starting production.
    pub fn lift(&self) -> f64 {
        let a = self.start.get(&self.primary).copied().unwrap_or(f64::NAN);
        let b = self.end.get(&self.primary).copied().unwrap_or(f64::NAN);
        b - a
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "run {} ({} brain): {} iterations, {}",
            self.run_id, self.brain, self.iterations, self.outcome
        )?;
        writeln!(f, "tried {} experiments:", self.tried.len())?;
        for t in &self.tried {
            writeln!(
                f,
                "  [{:>2}] {:<16} {:<58} {} {}{}",
                t.iteration,
                t.proposal_id,
                truncate(&t.title, 58),
                t.validation
                    .map_or("     -  ".into(), |v| format!("{v:.4}")),
                t.outcome,
                if t.merged { "  → merged" } else { "" }
            )?;
        }
        let p = &self.primary;
        writeln!(
            f,
            "kept {}: production {p} {:.4} → {:.4} (lift {:+.4})",
            self.kept(),
            self.start.get(p).copied().unwrap_or(f64::NAN),
            self.end.get(p).copied().unwrap_or(f64::NAN),
            self.lift()
        )?;
        for (m, e) in &self.north_star_effects {
            writeln!(f, "online {m} effect of a kept change: {e:+.4}")?;
        }
        if self.online_experiments > 0 {
            writeln!(
                f,
                "online: {} experiments over {} days (experiments of one iteration side by side)",
                self.online_experiments, self.online_days
            )?;
        }
        if let Some(a) = &self.final_ab {
            let ci = fmt_ci(a.ci);
            // "simulated" only where it is: another platform's numbers are real traffic
            let label = if a.platform.starts_with("simulator") {
                "simulated".to_string()
            } else {
                format!("online ({})", a.platform)
            };
            writeln!(
                f,
                "{label} {}: start {:.4} → end {:.4} ({:+.4}{ci}, p = {:.3}; {} after {} days at {:.0}% traffic)",
                a.metric,
                a.start,
                a.end,
                a.end - a.start,
                a.p_value,
                a.decision,
                a.days,
                a.max_traffic * 100.0
            )?;
            for e in &a.others {
                let ci = fmt_ci(e.ci);
                writeln!(
                    f,
                    "{label} {}: start {:.4} → end {:.4} ({:+.4}{ci}, p = {:.3})",
                    e.metric, e.control, e.treatment, e.effect, e.p_value
                )?;
            }
        }
        for (id, q) in &self.pending_approvals {
            writeln!(f, "waiting for approval {id}: {q}")?;
        }
        write!(f, "language-model cost: ${:.4}", self.cost_usd)
    }
}

/// `", 95% CI [lo, hi]"` when both bounds are known, else nothing.
fn fmt_ci(ci: (Option<f64>, Option<f64>)) -> String {
    match ci {
        (Some(lo), Some(hi)) => format!(", 95% CI [{lo:+.4}, {hi:+.4}]"),
        _ => String::new(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// Production state carried between iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProductionState {
    commit: String,
    metrics: MetricValues,
}

/// What happened to one selected proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CandidateOutcome {
    proposal: Proposal,
    /// None when the machinery failed before Develop finished.
    develop: Option<DevelopResult>,
    verdict: Option<Verdict>,
    /// A failure of the machinery (recorded as `stage_failed`), not a verdict.
    #[serde(default)]
    error: Option<String>,
}

/// Held while a loop works on a workspace: an exclusive lock (`File::try_lock`) on
/// `.recloop/run.lock`, released by the operating system when the process ends, however it
/// ends. The file holds the process id while locked and is emptied on a clean exit, so a
/// non-empty file found on acquisition means the previous run was killed: the git lock files it
/// may have left are removed first.
pub struct RunLock {
    file: std::fs::File,
}

impl RunLock {
    /// Take the lock of the workspace of `repo` for this process.
    pub fn acquire(repo: &Repo) -> Result<RunLock> {
        RunLock::acquire_at(
            &repo.root.join(".recloop").join("run.lock"),
            Some(repo),
            "is working on this workspace; wait for it",
        )
    }

    /// Take the lock file at `path`; a holder is refused with `another recloop process (pid N)
    /// {why}`. With `repo`, git lock files left by a killed holder are removed.
    pub fn acquire_at(path: &Path, repo: Option<&Repo>, why: &str) -> Result<RunLock> {
        use std::io::{Read, Seek, Write};
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| AgentError::io(path, e))?;
        match try_lock_briefly(&file) {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(AgentError::Invalid {
                    path: path.display().to_string(),
                    reason: format!(
                        "another recloop process{} {why}",
                        match holder.trim() {
                            "" => String::new(),
                            pid => format!(" (pid {pid})"),
                        }
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(AgentError::io(path, e)),
        }
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        if let Some(repo) = repo
            && !previous.trim().is_empty()
        {
            let removed = repo.clear_stale_locks()?;
            if !removed.is_empty() {
                tracing::warn!(
                    "removed {} git lock file(s) left by an interrupted run: {removed:?}",
                    removed.len()
                );
            }
        }
        let io = |e| AgentError::io(path, e);
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RunLock { file })
    }
}

/// Try the lock for up to [`LOCK_GRACE`]. A child process this process just forked holds a copy
/// of the lock's file description until it execs, so a lock released a moment ago (a run that
/// stopped and is resumed in the same process) can still read as held.
fn try_lock_briefly(file: &std::fs::File) -> std::result::Result<(), std::fs::TryLockError> {
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_GRACE => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// How long [`RunLock::acquire`] waits for a lock that is held before it refuses.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for RunLock {
    fn drop(&mut self) {
        // a clean exit empties the file; the lock itself goes with the file handle
        let _ = self.file.set_len(0);
    }
}

/// The run's settings, resolved from the options and the manifest.
struct RunConfig {
    iterations: u32,
    workers: usize,
    seed: u64,
    batch: usize,
    approve: bool,
    /// `[run] mode = "dual"`.
    dual: bool,
    /// Dual loop: offline trials per iteration.
    fast_trials: usize,
    /// Dual loop: online experiments side by side per iteration.
    slots: usize,
}

/// Offline trials of the dual loop's fast loop per iteration, unless `[run] fast_trials` says.
const DEFAULT_FAST_TRIALS: u32 = 8;

impl RunConfig {
    fn of(l: &Loop, opts: &RunOptions) -> RunConfig {
        let workers = opts.workers.unwrap_or(l.manifest.run.workers).max(1) as usize;
        let dual = l.manifest.run.mode == "dual";
        let fast_trials = l.manifest.run.fast_trials.unwrap_or(DEFAULT_FAST_TRIALS) as usize;
        let mut batch = (l.manifest.run.batch_size as usize).max(workers);
        if dual {
            batch = batch.max(fast_trials);
        }
        // quotas fix the batch's composition, and so its size
        if let Some(q) = &l.manifest.run.quotas {
            batch = q.total() as usize;
        }
        RunConfig {
            iterations: opts.iterations.unwrap_or(l.manifest.run.iterations),
            workers,
            seed: opts.seed.unwrap_or(l.manifest.run.seed),
            batch,
            approve: opts.approve,
            dual,
            fast_trials,
            slots: l.manifest.online.slots() as usize,
        }
    }
}

/// Counts completed steps and stops the run after `limit` of them (resumption tests).
/// A cancelled run stops at the next step too.
struct StepCounter {
    done: usize,
    limit: Option<usize>,
    cancel: crate::executor::CancelToken,
}

impl StepCounter {
    fn new(limit: Option<usize>, cancel: crate::executor::CancelToken) -> StepCounter {
        StepCounter {
            done: 0,
            limit,
            cancel,
        }
    }

    fn tick(&mut self) -> Result<()> {
        self.done += 1;
        if self.cancel.is_cancelled() {
            return Err(AgentError::Cancelled);
        }
        match self.limit {
            Some(l) if self.done >= l => Err(AgentError::Stopped(self.done)),
            _ => Ok(()),
        }
    }
}

/// How one iteration's candidates ended.
enum Batch {
    /// Every candidate has an outcome.
    Done(Vec<CandidateOutcome>),
    /// A budget ran out.
    BudgetExhausted,
    /// Decisions wait for a person: (approval id, question).
    Waiting(Vec<(String, String)>),
}

fn progress_bar(iterations: u32) -> ProgressBar {
    let b = ProgressBar::new(u64::from(iterations));
    b.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

/// A prompter that hides the progress bar while it asks.
struct SuspendBar {
    inner: Arc<dyn crate::approvals::Prompter>,
    bar: Option<ProgressBar>,
}

impl crate::approvals::Prompter for SuspendBar {
    fn ask(&self, request: &crate::approvals::ApprovalRequest) -> Option<crate::approvals::Answer> {
        match &self.bar {
            Some(b) => b.suspend(|| self.inner.ask(request)),
            None => self.inner.ask(request),
        }
    }
}

/// Everything a run needs, opened once.
pub struct Loop {
    /// Workspace root.
    pub workspace: PathBuf,
    /// Manifest.
    pub manifest: Manifest,
    /// Repository.
    pub repo: Repo,
    /// Journal.
    pub journal: Journal,
    /// Sandbox (None only when commands are not needed).
    pub sandbox: Option<Sandbox>,
    /// Evaluator.
    pub evaluator: Arc<dyn OfflineEvaluator>,
    /// The runner of evaluation jobs, when `[executor]` is set.
    pub jobs: Option<Arc<JobRunner>>,
    /// Brain.
    pub brain: Arc<dyn Brain>,
    /// Online platform.
    pub online: Option<Arc<dyn OnlinePlatform>>,
    /// Harnesses in use (brainstorm, develop, evaluate); `[evolve]` rounds may replace them.
    pub harness: std::sync::RwLock<[Harness; 3]>,
    /// The workspace's run lock, held while this value lives.
    pub lock: RunLock,
    /// A SQLite journal's lock (one process per SQLite journal, wherever its workspace is).
    pub journal_lock: Option<RunLock>,
    /// This process's part in a loop shared through a PostgreSQL journal (None: SQLite).
    pub workers: Option<crate::workers::Workers>,
}

impl Loop {
    /// Open a workspace for the loop (installs the harness defaults on first use).
    pub fn open(workspace: &Path, opts: &RunOptions) -> Result<Loop> {
        let manifest = Manifest::load(workspace)?;
        let repo = Repo::open(workspace)?;
        let root = repo.root.clone();
        let lock = RunLock::acquire(&repo)?;
        harness::install_defaults(&root)?;
        let location = recloop_journal::Location::for_workspace(&root, opts.journal.as_deref())
            .map_err(|e| AgentError::Journal(e.to_string()))?;
        // A SQLite journal serves one process: a second `recloop run` on it (from this workspace
        // or another that names the same file) is refused by a lock beside the file.
        let journal_lock = match &location {
            recloop_journal::Location::Sqlite(p) => Some(RunLock::acquire_at(
                &p.with_extension("db.run-lock"),
                None,
                "this SQLite journal serves one `recloop run` at a time; for several workers \
                 use a PostgreSQL journal (`recloop run --journal postgres://…`)",
            )?),
            recloop_journal::Location::Postgres { .. } => None,
        };
        let journal =
            Journal::open_location(&location).map_err(|e| AgentError::Journal(e.to_string()))?;
        let workers = crate::workers::Workers::open(&journal, &manifest)?;
        if workers.is_some() && manifest.run.mode == "dual" {
            return Err(AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: "[run] mode = \"dual\" runs in one process for now; on a shared \
                         PostgreSQL journal use mode = \"single\" (the workers' leases cover \
                         the single loop's steps only)"
                    .into(),
            });
        }
        // the latest admitted version of each harness is the one in use
        for agent in ["brainstorm", "develop", "evaluate"] {
            crate::evolve::versions::sync_disk(&journal, &root, agent)?;
        }
        let harness = [
            Harness::load(&root, "brainstorm")?,
            Harness::load(&root, "develop")?,
            Harness::load(&root, "evaluate")?,
        ];
        // data first: sandboxed commands have no network
        crate::stages::ensure_data(&root)?;
        let brain: Arc<dyn Brain> = match &opts.brain {
            Some(b) => b.clone(),
            None => crate::stages::builtin_brain(&root)?,
        };
        let sandbox = match crate::sandbox::for_workspace(
            &manifest,
            &root.join(".recloop"),
            brain.writes_code(),
        ) {
            Ok(s) => Some(s),
            // an injected evaluator (tests, library use) may need no commands at all
            Err(e) if opts.evaluator.is_some() => {
                tracing::warn!("{e}");
                None
            }
            Err(e) => return Err(e),
        };
        let jobs = match &manifest.executor {
            Some(x) => {
                if x.kind != "local" && brain.writes_code() && !manifest.sandbox.allow_unsandboxed {
                    return Err(AgentError::Sandbox(format!(
                        "[executor] kind = {:?} runs evaluation jobs outside recloop's sandbox, \
                         and this brain writes code; set [sandbox] allow_unsandboxed = true to \
                         accept that the cluster's own isolation confines them",
                        x.kind
                    )));
                }
                let executor =
                    crate::executor::executor_for(x, &root.join(".recloop"), sandbox.clone())
                        .map_err(|e| AgentError::Sandbox(e.to_string()))?;
                let runner = JobRunner::new(
                    executor,
                    x.max_attempts,
                    std::time::Duration::from_secs_f64(x.poll_s),
                    opts.cancel.clone(),
                )
                .with_queue_timeout(
                    (x.queue_timeout_s > 0)
                        .then(|| std::time::Duration::from_secs(x.queue_timeout_s)),
                );
                Some(Arc::new(runner))
            }
            None => None,
        };
        let evaluator: Arc<dyn OfflineEvaluator> = match &opts.evaluator {
            Some(e) => e.clone(),
            None => Arc::from(
                evaluator_for(&manifest, sandbox.clone(), jobs.clone())
                    .map_err(AgentError::Sandbox)?,
            ),
        };
        let online = match &opts.online {
            Some(p) => Some(p.clone()),
            None => recloop_online::platform_for(&root, &manifest, sandbox.clone())
                .map_err(|e| AgentError::Online(e.to_string()))?,
        };
        Ok(Loop {
            workspace: root,
            manifest,
            repo,
            journal,
            sandbox,
            evaluator,
            jobs,
            brain,
            online,
            harness: std::sync::RwLock::new(harness),
            lock,
            journal_lock,
            workers,
        })
    }

    /// The harness in use of agent `i` (0 brainstorm, 1 develop, 2 evaluate).
    pub fn harness(&self, i: usize) -> Harness {
        match self.harness.read() {
            Ok(h) => h[i].clone(),
            Err(poisoned) => poisoned.into_inner()[i].clone(),
        }
    }

    /// `[evolve] every = N`: after iteration `it`, run the configured rounds for each agent
    /// (once per iteration, also across a resumed run) and use any admitted harness from now on.
    /// What the run has spent on language models: its agents' calls and its evolve rounds.
    fn spent_usd(&self, run_id: &str) -> Result<f64> {
        Ok(self.brain.spent_usd() + crate::evolve::spent_in_run(&self.journal, run_id)?)
    }

    fn evolve_after(&self, run_id: &str, it: u32, opts: &RunOptions) -> Result<()> {
        let cfg = &self.manifest.evolve;
        if cfg.every == 0 || !it.is_multiple_of(cfg.every) || cfg.rounds == 0 {
            return Ok(());
        }
        for agent in &cfg.agents {
            // evolution is charged to the run's budget: none starts once it is spent
            if let Some(budget) = opts.budget_usd {
                let spent = self.spent_usd(run_id)?;
                if spent >= budget {
                    tracing::info!(
                        "evolve {agent}: skipped, ${spent:.4} of the run's ${budget:.4} spent"
                    );
                    return Ok(());
                }
            }
            let trigger = format!("{run_id}/{it}");
            if crate::evolve::triggered(&self.journal, agent, &trigger)? {
                continue;
            }
            let models = match &opts.evolve_models {
                Some(m) => m.clone(),
                None => match recloop_llm::LlmRouter::from_workspace(&self.workspace)
                    .map_err(|e| AgentError::Llm(e.to_string()))?
                {
                    Some(router) => crate::evolve::EvolveModels::from_router(&router, agent)?,
                    None => {
                        tracing::warn!("[evolve] every = {} needs [llm]; skipped", cfg.every);
                        return Ok(());
                    }
                },
            };
            let evolve_opts = crate::evolve::EvolveOptions {
                rounds: cfg.rounds,
                seed: self.manifest.run.seed,
                trigger: Some(trigger),
                ..crate::evolve::EvolveOptions::new(agent)
            };
            match crate::evolve::evolve_locked(
                &self.workspace,
                &self.manifest,
                &self.journal,
                &evolve_opts,
                &models,
            ) {
                Ok(_) => {}
                // no trajectories yet is not a failure of the run
                Err(AgentError::NotFound(msg)) => tracing::info!("evolve {agent}: {msg}"),
                Err(e) => return Err(e),
            }
            let i = match agent.as_str() {
                "brainstorm" => 0,
                "develop" => 1,
                _ => continue,
            };
            let h = Harness::load(&self.workspace, agent)?;
            match self.harness.write() {
                Ok(mut all) => all[i] = h,
                Err(poisoned) => poisoned.into_inner()[i] = h,
            }
        }
        Ok(())
    }

    fn events(&self) -> Result<Vec<EventRecord>> {
        self.journal
            .events(&recloop_journal::EventFilter::default())
            .map_err(|e| AgentError::Journal(e.to_string()))
    }

    /// The run to continue (an unfinished one) or a new run id.
    fn pick_run(&self) -> Result<(String, bool, u64)> {
        let events = self.events()?;
        let mut started: Vec<String> = Vec::new();
        let mut finished: Vec<String> = Vec::new();
        for e in &events {
            match &e.event {
                Event::RunStarted { .. } => started.push(e.run_id.clone()),
                Event::RunFinished { .. } => finished.push(e.run_id.clone()),
                _ => {}
            }
        }
        let last_seq = events.last().map_or(0, |e| e.seq);
        if let Some(open) = started.iter().rev().find(|r| !finished.contains(r)) {
            return Ok((open.clone(), true, last_seq));
        }
        // A run whose start step began but never recorded `run_started` also resumes.
        let n = started.len() + 1;
        let id = format!("run-{n}");
        let resumed = events.iter().any(|e| e.run_id == id);
        Ok((id, resumed, last_seq))
    }

    fn production_spec(&self, dir: &Path) -> Option<PipelineSpec> {
        PipelineSpec::load_workspace(dir).ok()
    }

    /// Run the loop: start (or resume), then per iteration Brainstorm → Develop + Evaluate →
    /// merge the best KEEP → lessons, then the final online comparison and `run_finished`.
    ///
    /// A run stops early, cleanly, in two cases: a budget ran out (`run_finished` with outcome
    /// `budget_exhausted`), or a decision waits for a person (no `run_finished`: the summary's
    /// outcome is `waiting_for_approval`, and `recloop run` continues once it is answered).
    pub fn run(&self, opts: &RunOptions) -> Result<RunSummary> {
        let cfg = RunConfig::of(self, opts);
        let (run_id, resumed, last_seq) = self.pick_run()?;
        let rec = Recorder::new(self.journal.clone(), &run_id);
        let mut steps = StepCounter::new(opts.stop_after_steps, opts.cancel.clone());
        self.record_start_of_run(&rec, resumed, last_seq)?;
        let start = self.start(&rec, &cfg, opts)?;
        self.have_commit(&start.commit)?;
        steps.tick()?;
        let bar = opts.progress.then(|| progress_bar(cfg.iterations));
        let mut prod = start.clone();
        let mut best = primary_value(&prod.metrics, &self.manifest).unwrap_or(f64::NAN);
        let mut outcome = RunOutcome::Completed;
        for it in 1..=cfg.iterations {
            let msg = |stage: &str, best: f64| {
                if let Some(b) = &bar {
                    // the run's whole spending, its evolve rounds included (as the budget counts)
                    let spent = self
                        .spent_usd(&run_id)
                        .unwrap_or_else(|_| self.brain.spent_usd());
                    b.set_message(format!(
                        "iteration {it} · {stage} · best {} {best:.4} · ${spent:.3}",
                        self.manifest.metrics.primary.name,
                    ));
                }
            };
            if let Some(budget) = opts.budget_usd
                && self.spent_usd(&run_id)? >= budget
            {
                outcome = RunOutcome::BudgetExhausted;
                break;
            }
            msg("brainstorm", best);
            let admitted = match self.brainstorm(&rec, &cfg, it, &prod) {
                Err(AgentError::Budget(detail)) => {
                    record_budget_exhausted(&rec, it, None, "brainstorm", detail)?;
                    outcome = RunOutcome::BudgetExhausted;
                    break;
                }
                other => other?,
            };
            steps.tick()?;
            msg("develop + evaluate", best);
            let approvals = Approvals {
                prompter: opts.approvals.prompter.clone().map(|p| {
                    Arc::new(SuspendBar {
                        inner: p,
                        bar: bar.clone(),
                    }) as Arc<dyn crate::approvals::Prompter>
                }),
                unattended: opts.approvals.unattended,
            };
            let batch = if cfg.dual {
                self.dual_iteration(&rec, &cfg, it, &admitted, &prod, &approvals, &mut steps)?
            } else {
                self.develop_and_evaluate(&rec, &cfg, it, &admitted, &prod, &approvals, &mut steps)?
            };
            let outcomes = match batch {
                Batch::Done(o) => o,
                Batch::BudgetExhausted => {
                    outcome = RunOutcome::BudgetExhausted;
                    break;
                }
                Batch::Waiting(pending) => {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    let mut summary = self.summary(&run_id, &start, &prod, None)?;
                    summary.pending_approvals = pending;
                    return Ok(summary);
                }
            };
            msg("merge", best);
            prod = self.merge_best_keep(&rec, it, &outcomes, &prod)?;
            self.have_commit(&prod.commit)?;
            if cfg.dual {
                self.retire_stale(&rec, it, &prod)?;
            }
            steps.tick()?;
            self.record_lessons(&rec, it, &outcomes)?;
            steps.tick()?;
            msg("evolve", best);
            self.evolve_after(&run_id, it, opts)?;
            let sign = self.manifest.metrics.primary.direction.sign();
            if let Ok(v) = primary_value(&prod.metrics, &self.manifest)
                && (best.is_nan() || sign * (v - best) > 0.0)
            {
                best = v;
            }
            if let Some(b) = &bar {
                b.inc(1);
            }
            msg("done", best);
            if let Some(limit) = opts.simulated_days {
                let used = crate::calendar::online_usage(&self.events()?, &run_id).days;
                if used >= limit {
                    tracing::info!("{used} online days of the {limit} allowed: the run ends");
                    break;
                }
            }
        }
        let final_ab = match &self.online {
            Some(platform)
                if prod.commit != start.commit && self.manifest.online.runs_final_comparison() =>
            {
                if let Some(b) = &bar {
                    b.set_message("final online comparison: ending vs starting production");
                }
                let ab: FinalAb = self.shared_step(&rec, 0, "final_ab", || {
                    self.final_ab(platform.as_ref(), &run_id, &start, &prod, cfg.seed)
                })?;
                Some(ab)
            }
            _ => None,
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let _ = self.repo.drop_worktree(&self.production_dir());
        let mut summary = self.summary(&run_id, &start, &prod, Some(outcome))?;
        summary.final_ab = final_ab;
        rec.emit(
            0,
            "finished",
            Event::RunFinished {
                outcome,
                summary: summary.to_string(),
            },
            None,
        )?;
        Ok(summary)
    }

    /// Run a shared step once: through the leases of the workers on a PostgreSQL journal, else
    /// as a resumable step of this process.
    fn shared_step<T, F>(&self, rec: &Recorder, it: u32, step: &str, f: F) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        match &self.workers {
            Some(w) => w.step(rec, it, step, f),
            None => rec.step(it, step, f),
        }
    }

    /// Make a commit that another worker made available in this clone.
    fn have_commit(&self, commit: &str) -> Result<()> {
        match &self.workers {
            Some(w) => w.ensure_commit(&self.repo, &self.manifest.project.production, commit),
            None => Ok(()),
        }
    }

    fn production_dir(&self) -> PathBuf {
        self.workspace
            .join(".recloop")
            .join("worktrees")
            .join("production")
    }

    /// `run_resumed` when continuing, and the harness versions in use.
    fn record_start_of_run(&self, rec: &Recorder, resumed: bool, last_seq: u64) -> Result<()> {
        if let Some(w) = &self.workers {
            rec.emit(
                0,
                &format!("worker/{}/joined", w.worker),
                Event::Note {
                    topic: "worker.joined".into(),
                    text: format!("worker {} joined run {}", w.worker, rec.run_id),
                    data: serde_json::json!({
                        "worker": w.worker,
                        "workspace": self.workspace.display().to_string(),
                        "remote": w.remote,
                        "lease_ttl_s": w.ttl.as_secs_f64(),
                    }),
                },
                None,
            )?;
        } else if resumed {
            rec.emit(
                0,
                &format!("resumed/{last_seq}"),
                Event::RunResumed {
                    after_seq: last_seq,
                    reason: "found an unfinished run in the journal".into(),
                },
                None,
            )?;
        }
        // a harness whose files the journal already has (as an admitted version) is not recorded
        // again; new files become version 1, or a hand edit of the latest admitted version
        for h in (0..3).map(|i| self.harness(i)).collect::<Vec<_>>().iter() {
            if let Err(event) = crate::evolve::versions::in_use(&self.journal, h)? {
                rec.emit(
                    0,
                    &format!("harness/{}/{}", h.spec.agent, h.version),
                    event,
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// The starting production: checked out, measured, `run_started` recorded (once).
    fn start(&self, rec: &Recorder, cfg: &RunConfig, opts: &RunOptions) -> Result<ProductionState> {
        self.shared_step(rec, 0, "start", || {
            let production = &self.manifest.project.production;
            let commit = match &self.workers {
                Some(w) => w.sync_production(&self.repo, production)?,
                None => self.repo.rev(production)?,
            };
            let dir = self.production_dir();
            self.repo.ensure_detached(&dir, &commit)?;
            let job = JobContext {
                rec,
                iteration: 0,
                step: "start/eval".into(),
                proposal_id: None,
                job: format!("validation of production {commit}"),
            };
            let metrics = self
                .evaluator
                .evaluate_job(&dir, Split::Validation, &job)
                .map_err(|e| match e {
                    EvalError::Cancelled => AgentError::Cancelled,
                    e => AgentError::Invalid {
                        path: format!("production {commit}"),
                        reason: format!(
                            "offline evaluation of the starting production failed: {e}"
                        ),
                    },
                })?;
            primary_value(&metrics, &self.manifest).map_err(|e| AgentError::Invalid {
                path: format!("production {commit}"),
                reason: e,
            })?;
            rec.emit(
                0,
                "run_started",
                Event::RunStarted {
                    seed: Some(cfg.seed),
                    production_commit: commit.clone(),
                    baseline: metrics.clone(),
                    config: serde_json::json!({
                        "iterations": cfg.iterations, "workers": cfg.workers,
                        "batch": cfg.batch, "brain": self.brain.name(),
                        "brain_policy": self.brain.policy(),
                        "budget_usd": opts.budget_usd, "approve": opts.approve,
                        "unattended": opts.approvals.unattended.as_str(),
                        "online": self.online.as_ref().map(|o| o.name()),
                        "commands_confined_by": self
                            .sandbox
                            .as_ref()
                            .map(|s| s.backend.confinement().to_string()),
                    }),
                },
                None,
            )?;
            Ok(ProductionState { commit, metrics })
        })
    }

    /// Brainstorm from production and admit the batch; a model whose answer is unusable or
    /// unreachable leaves the iteration without proposals (recorded as `stage_failed`).
    fn brainstorm(
        &self,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        prod: &ProductionState,
    ) -> Result<Vec<Proposal>> {
        let run_id = &rec.run_id;
        self.shared_step(rec, it, "brainstorm", || {
            let prod_dir = self.production_dir();
            self.repo.checkout_detached(&prod_dir, &prod.commit)?;
            let events: Vec<EventRecord> = self
                .events()?
                .into_iter()
                .filter(|e| &e.run_id != run_id || e.iteration < it)
                .collect();
            let history = History::from_events(&events, &self.manifest.metrics.primary.name);
            let spec = self.production_spec(&prod_dir);
            let mut evidence = crate::evidence::render(&history, &self.manifest, &prod.metrics);
            evidence.push_str(&crate::analysis::evidence(&events, 5));
            let analysis = crate::analysis::Analysis::new(
                self.journal.clone(),
                &self.manifest,
                &self.workspace,
            )
            .recording(rec.clone(), it);
            let prefix = format!("{run_id}-i{it:02}");
            let brainstorm_harness = self.harness(0);
            let spend = crate::brain::SpendLog::new();
            let personas = self.manifest.personas();
            let out = crate::personas::brainstorm(
                self.brain.as_ref(),
                &BrainstormInput {
                    manifest: &self.manifest,
                    workspace: &prod_dir,
                    production_spec: spec.as_ref(),
                    history: &history,
                    evidence: &evidence,
                    batch_size: cfg.batch,
                    seed: cfg
                        .seed
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(u64::from(it)),
                    id_prefix: &prefix,
                    harness: &brainstorm_harness,
                    spend: &spend,
                    analysis: Some(&analysis),
                    persona: None,
                },
                &personas,
                it as usize,
            );
            rec.spend(it, "brainstorm/spend", &spend)?;
            let out = match out {
                Err(AgentError::Stage { class, detail }) => {
                    rec.emit(
                        it,
                        "brainstorm/failed",
                        Event::StageFailed {
                            proposal_id: None,
                            stage: "brainstorm".into(),
                            class,
                            detail,
                        },
                        None,
                    )?;
                    return Ok(Vec::new());
                }
                other => other?,
            };
            crate::admission::record_batch(rec, it, out, &self.manifest, &history)
        })
    }

    /// Develop and evaluate up to `workers` admitted proposals at once (ready ones first, then
    /// probe-first ones; backlog proposals stay recorded as backlog).
    #[allow(clippy::too_many_arguments)]
    fn develop_and_evaluate(
        &self,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        admitted: &[Proposal],
        prod: &ProductionState,
        approvals: &Approvals,
        steps: &mut StepCounter,
    ) -> Result<Batch> {
        let mut selected = runnable(admitted);
        if let Some(w) = &self.workers {
            // every worker process drains one queue: the iteration's whole batch is in flight
            selected.truncate(cfg.batch);
            return self
                .develop_and_evaluate_shared(w, rec, cfg, it, &selected, prod, approvals, steps);
        }
        // one process: `--workers` candidates of the batch, best first
        selected.truncate(cfg.workers);
        let mut outcomes: Vec<CandidateOutcome> = Vec::new();
        let mut pending = Vec::new();
        for (k, p) in selected.iter().enumerate() {
            match rec.done::<CandidateOutcome>(it, &format!("candidate/{}", p.id))? {
                Some(o) => outcomes.push(o),
                None => pending.push((k as u64, (*p).clone())),
            }
        }
        let prod_dir = self.production_dir();
        if !pending.is_empty() {
            self.repo.checkout_detached(&prod_dir, &prod.commit)?;
        }
        let events = self.events()?;
        let history = History::from_events(&events, &self.manifest.metrics.primary.name);
        let results = in_parallel(&pending, |k, p| {
            self.candidate(rec, it, k, p, prod, &prod_dir, cfg, approvals, &history)
        });
        let mut unsettled = Unsettled::default();
        for (p, r) in results {
            let Some(o) = unsettled.take(rec, it, &p, r, "develop", |o| *o)? else {
                continue;
            };
            rec.complete(it, &format!("candidate/{}", o.proposal.id), &o)?;
            steps.tick()?;
            outcomes.push(o);
        }
        if let Some(stopped) = unsettled.stopped() {
            return Ok(stopped);
        }
        outcomes.sort_by(|a, b| a.proposal.id.cmp(&b.proposal.id));
        Ok(Batch::Done(outcomes))
    }

    /// Merge the best KEEP of the iteration into production (re-measured when the merge was not
    /// a fast-forward); other KEEPs are noted as superseded.
    fn merge_best_keep(
        &self,
        rec: &Recorder,
        it: u32,
        outcomes: &[CandidateOutcome],
        prod: &ProductionState,
    ) -> Result<ProductionState> {
        let primary = &self.manifest.metrics.primary;
        let sign = primary.direction.sign();
        self.shared_step(rec, it, "merge", || {
            let mut keeps: Vec<&CandidateOutcome> = outcomes
                .iter()
                .filter(|o| {
                    o.verdict
                        .as_ref()
                        .is_some_and(|v| v.decision == Decision::Keep)
                })
                .collect();
            keeps.sort_by(|a, b| {
                let va = cand_value(a, &primary.name) * sign;
                let vb = cand_value(b, &primary.name) * sign;
                vb.total_cmp(&va)
            });
            if let Some(w) = &self.workers {
                return self.merge_shared(w, rec, it, &keeps, prod);
            }
            let Some(win) = keeps.first() else {
                return Ok(prod.clone());
            };
            let Some(DevelopResult::Ready { candidate }) = &win.develop else {
                return Ok(prod.clone());
            };
            let commit = self.repo.merge_into(
                &self.manifest.project.production,
                &candidate.commit,
                &format!("recloop: keep {} ({})", candidate.id, win.proposal.title),
                &self
                    .repo
                    .merge_signature(self.manifest.project.merge_author.as_deref())?,
            )?;
            // Merged production re-measured when the merge was not a fast-forward.
            let metrics = if commit == candidate.commit {
                candidate.offline.clone()
            } else {
                let prod_dir = self.production_dir();
                self.repo.checkout_detached(&prod_dir, &commit)?;
                let job = JobContext {
                    rec,
                    iteration: it,
                    step: format!("merge/{}/eval", win.proposal.id),
                    proposal_id: Some(win.proposal.id.clone()),
                    job: format!("validation of merged production {commit}"),
                };
                self.evaluator
                    .evaluate_job(&prod_dir, Split::Validation, &job)
                    .map_err(|e| match e {
                        EvalError::Cancelled => AgentError::Cancelled,
                        e => AgentError::Invalid {
                            path: format!("merged production {commit}"),
                            reason: e.to_string(),
                        },
                    })?
            };
            rec.emit(
                it,
                &format!("merge/{}", win.proposal.id),
                Event::MergedIntoProduction {
                    proposal_id: win.proposal.id.clone(),
                    candidate_id: candidate.id.clone(),
                    commit: commit.clone(),
                    metrics: metrics.clone(),
                },
                None,
            )?;
            for other in keeps.iter().skip(1) {
                rec.emit(
                    it,
                    &format!("merge/{}/superseded", other.proposal.id),
                    Event::Note {
                        topic: "merge.superseded".into(),
                        text: format!(
                            "{} was KEEP but {} was merged in the same iteration",
                            other.proposal.id, win.proposal.id
                        ),
                        data: serde_json::Value::Null,
                    },
                    None,
                )?;
            }
            Ok(ProductionState { commit, metrics })
        })
    }

    /// Update the lessons with this iteration's verdicts.
    fn record_lessons(&self, rec: &Recorder, it: u32, outcomes: &[CandidateOutcome]) -> Result<()> {
        self.shared_step(rec, it, "lessons", || {
            let events = self.events()?;
            let history = History::from_events(&events, &self.manifest.metrics.primary.name);
            for o in outcomes {
                let Some(v) = &o.verdict else { continue };
                let dir = o
                    .proposal
                    .change
                    .get("direction")
                    .and_then(|d| d.as_i64())
                    .unwrap_or(0);
                let contradicting = history
                    .trials
                    .iter()
                    .filter(|t| {
                        t.proposal.lever == o.proposal.lever
                            && t.direction() == dir
                            && t.proposal.id != o.proposal.id
                    })
                    .filter(|t| match t.decision {
                        Some(d) => (d == Decision::Keep) != (v.decision == Decision::Keep),
                        None => false,
                    })
                    .count();
                let id = lesson_id(&o.proposal, v.decision);
                if let Some(l) = update_lesson(
                    history.lessons.get(&id),
                    &o.proposal,
                    v.decision,
                    &rec.run_id,
                    contradicting,
                ) {
                    let ev = if l.status == recloop_core::LessonStatus::Confirmed {
                        Event::LessonPromoted { lesson: l }
                    } else if l.status == recloop_core::LessonStatus::Falsified {
                        Event::LessonFalsified {
                            lesson_id: l.id.clone(),
                            reason: format!("{contradicting} contradicting experiments"),
                        }
                    } else {
                        Event::LessonProposed { lesson: l }
                    };
                    rec.emit(it, &format!("lessons/{}", o.proposal.id), ev, None)?;
                }
            }
            Ok(())
        })
    }

    /// Ending production against starting production online (one guarded experiment).
    fn final_ab(
        &self,
        platform: &dyn OnlinePlatform,
        run_id: &str,
        start: &ProductionState,
        end: &ProductionState,
        seed: u64,
    ) -> Result<FinalAb> {
        let wt = self.workspace.join(".recloop").join("worktrees");
        let (a, b) = (wt.join("final-start"), wt.join("final-end"));
        self.repo.checkout_detached(&a, &start.commit)?;
        self.repo.checkout_detached(&b, &end.commit)?;
        let id = format!("{run_id}-final");
        let settings = recloop_online::ExperimentSettings {
            id: id.clone(),
            seed: seed ^ 0xF1A1,
            // a report, not a decision: escalations are recorded, nobody is asked
            approve: false,
            ..Default::default()
        };
        let report = platform
            .run(
                &self.manifest,
                &a,
                &b,
                &settings,
                &mut |_: &recloop_online::ExperimentEvent| recloop_online::Ack::Continue,
            )
            .map_err(|e| AgentError::Online(format!("final start-vs-end experiment: {e}")))?;
        self.repo.drop_worktree(&a)?;
        self.repo.drop_worktree(&b)?;
        let v = &report.verdict;
        let e = v.effects.first().ok_or_else(|| {
            AgentError::Online("final start-vs-end experiment reported no effect".into())
        })?;
        Ok(FinalAb {
            experiment_id: id,
            platform: platform.name(),
            metric: e.metric.clone(),
            start: e.control,
            end: e.treatment,
            ci: e.ci,
            p_value: e.p_value,
            decision: v.decision,
            days: report.days,
            max_traffic: report.max_share,
            others: v.effects[1..].to_vec(),
        })
    }

    /// Develop and evaluate one proposal.
    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        rec: &Recorder,
        it: u32,
        k: u64,
        p: &Proposal,
        prod: &ProductionState,
        prod_dir: &Path,
        cfg: &RunConfig,
        approvals: &Approvals,
        history: &History,
    ) -> Result<CandidateOutcome> {
        let dev = self.develop_or_recorded(rec, it, k, p, prod, history)?;
        let verdict = match &dev {
            DevelopResult::Failed { .. } => None,
            DevelopResult::Ready { candidate } => {
                let wt = self.candidate_worktree(p, candidate)?;
                let holdout = SealedHoldout::new(&self.workspace);
                let seed = cfg.seed ^ (u64::from(it) << 8) ^ k;
                let ectx =
                    self.evaluate_ctx(rec, it, prod, prod_dir, &wt, &holdout, seed, cfg, approvals);
                let v = evaluate(&ectx, p, candidate);
                if !matches!(v, Err(AgentError::AwaitingApproval { .. })) {
                    self.repo.drop_worktree(&wt)?;
                }
                Some(v?)
            }
        };
        Ok(CandidateOutcome {
            proposal: p.clone(),
            develop: Some(dev),
            verdict,
            error: None,
        })
    }

    /// Develop one proposal, or reuse the candidate a stopped run recorded (a kill, or a wait
    /// for an approval): what a person approved is what gets evaluated and merged.
    fn develop_or_recorded(
        &self,
        rec: &Recorder,
        it: u32,
        k: u64,
        p: &Proposal,
        prod: &ProductionState,
        history: &History,
    ) -> Result<DevelopResult> {
        let ready_key = rec.key(it, &format!("develop/{}/ready", p.id));
        match self.journal.find_by_key(&ready_key) {
            Ok(Some(EventRecord {
                event: Event::CandidateReady { candidate },
                ..
            })) => return Ok(DevelopResult::Ready { candidate }),
            Ok(_) => {}
            Err(e) => return Err(AgentError::Journal(e.to_string())),
        }
        let develop_harness = self.harness(1);
        let ctx = DevelopCtx {
            manifest: &self.manifest,
            repo: &self.repo,
            sandbox: self.sandbox.clone(),
            evaluator: self.evaluator.as_ref(),
            brain: self.brain.as_ref(),
            harness: &develop_harness,
            rec,
            iteration: it,
            base_commit: prod.commit.clone(),
            commit_time: FIXED_CLOCK + u64::from(it) * 1000 + k,
            tried_diffs: history.tried_diffs(),
            pitfalls: crate::evidence::pitfalls(history, p),
            remote: self.workers.as_ref().and_then(|w| w.remote.clone()),
        };
        develop(&ctx, p)
    }

    /// The candidate's worktree, checked out again when a stop removed it.
    fn candidate_worktree(&self, p: &Proposal, candidate: &Candidate) -> Result<PathBuf> {
        let wt = worktree_dir(&self.repo, &candidate_id(p));
        self.have_commit(&candidate.commit)?;
        if !wt.exists() {
            self.repo.checkout_detached(&wt, &candidate.commit)?;
        }
        Ok(wt)
    }

    /// Evaluate's inputs for a candidate checked out at `candidate_dir`.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_ctx<'a>(
        &'a self,
        rec: &'a Recorder,
        it: u32,
        prod: &'a ProductionState,
        prod_dir: &'a Path,
        candidate_dir: &'a Path,
        holdout: &'a SealedHoldout,
        seed: u64,
        cfg: &RunConfig,
        approvals: &'a Approvals,
    ) -> EvaluateCtx<'a> {
        EvaluateCtx {
            manifest: &self.manifest,
            rec,
            iteration: it,
            evaluator: self.evaluator.as_ref(),
            holdout,
            online: self.online.as_deref(),
            production: (&prod.commit, prod_dir),
            production_metrics: &prod.metrics,
            candidate_dir,
            seed,
            approve: cfg.approve,
            approvals,
            continuation: None,
        }
    }

    /// [`Loop::develop_and_evaluate`] among workers: the iteration's candidates are a queue of
    /// leases; this process's `workers` threads claim them one at a time until every candidate
    /// is done (taking over a candidate whose holder's lease expired).
    #[allow(clippy::too_many_arguments)]
    fn develop_and_evaluate_shared(
        &self,
        w: &crate::workers::Workers,
        rec: &Recorder,
        cfg: &RunConfig,
        it: u32,
        selected: &[&Proposal],
        prod: &ProductionState,
        approvals: &Approvals,
        steps: &mut StepCounter,
    ) -> Result<Batch> {
        let step_of = |p: &Proposal| format!("candidate/{}", p.id);
        let queue = rec.key(it, "candidates");
        let keys: Vec<String> = selected.iter().map(|p| rec.key(it, &step_of(p))).collect();
        let jerr = |e: recloop_journal::JournalError| AgentError::Journal(e.to_string());
        w.leases.enqueue(&queue, &keys).map_err(jerr)?;
        let prod_dir = self.production_dir();
        self.repo.checkout_detached(&prod_dir, &prod.commit)?;
        let events = self.events()?;
        let history = History::from_events(&events, &self.manifest.metrics.primary.name);
        let waiting = std::sync::Mutex::new(Vec::new());
        let budget = std::sync::atomic::AtomicBool::new(false);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let claim_loop = || -> Result<usize> {
            use std::sync::atomic::Ordering::SeqCst;
            let mut done = 0;
            while !stop.load(SeqCst) {
                let Some(claim) = w
                    .leases
                    .claim_next(&queue, &w.worker, w.ttl)
                    .map_err(jerr)?
                else {
                    if w.leases.open_keys(&queue).map_err(jerr)? == 0 {
                        break;
                    }
                    std::thread::sleep(w.poll);
                    continue;
                };
                let Some(k) = keys.iter().position(|key| *key == claim.key) else {
                    let _ = w.leases.release(&claim, &w.worker);
                    return Err(AgentError::Journal(format!(
                        "lease {} is in the queue {queue} but not among this iteration's candidates",
                        claim.key
                    )));
                };
                let p = selected[k];
                w.record_claim(rec, it, &step_of(p), &claim, Some(&p.id))?;
                let held = w.hold(claim);
                if rec.done::<CandidateOutcome>(it, &step_of(p))?.is_none() {
                    let r = self.candidate(
                        rec, it, k as u64, p, prod, &prod_dir, cfg, approvals, &history,
                    );
                    let o = match r {
                        Ok(o) => o,
                        Err(AgentError::Stage { class, detail }) => CandidateOutcome {
                            proposal: p.clone(),
                            develop: None,
                            verdict: None,
                            error: Some(format!("{}: {detail}", class.as_str())),
                        },
                        Err(e) => {
                            let claim = held.claim.clone();
                            drop(held);
                            let _ = w.leases.release(&claim, &w.worker);
                            match e {
                                AgentError::AwaitingApproval { id, question } => {
                                    if let Ok(mut v) = waiting.lock() {
                                        v.push((id, question));
                                    }
                                }
                                AgentError::Budget(detail) => {
                                    record_budget_exhausted(
                                        rec,
                                        it,
                                        Some(&p.id),
                                        "develop",
                                        detail,
                                    )?;
                                    budget.store(true, SeqCst);
                                }
                                e => {
                                    stop.store(true, SeqCst);
                                    return Err(e);
                                }
                            }
                            // this process stops claiming; the others go on
                            stop.store(true, SeqCst);
                            break;
                        }
                    };
                    rec.complete(it, &step_of(p), &o)?;
                    done += 1;
                }
                if held.lost() {
                    tracing::warn!(
                        "{} finished {} after its lease expired; the journal kept one result",
                        w.worker,
                        held.claim.key
                    );
                }
                let key = held.claim.key.clone();
                drop(held);
                w.leases.finish(&key).map_err(jerr)?;
            }
            Ok(done)
        };
        let threads = cfg.workers.clamp(1, selected.len().max(1));
        let results: Vec<Result<usize>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(claim_loop)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(AgentError::WorkerPanicked(format!(
                            "candidates of iteration {it}"
                        )))
                    })
                })
                .collect()
        });
        for r in results {
            for _ in 0..r? {
                steps.tick()?;
            }
        }
        let waiting = waiting.into_inner().unwrap_or_default();
        if !waiting.is_empty() {
            return Ok(Batch::Waiting(waiting));
        }
        if budget.into_inner() {
            return Ok(Batch::BudgetExhausted);
        }
        let mut outcomes = Vec::new();
        for p in selected {
            match rec.done::<CandidateOutcome>(it, &step_of(p))? {
                Some(o) => outcomes.push(o),
                None => {
                    return Err(AgentError::Journal(format!(
                        "candidate {} of iteration {it} has no recorded outcome after its queue \
                         emptied",
                        p.id
                    )));
                }
            }
        }
        outcomes.sort_by(|a, b| a.proposal.id.cmp(&b.proposal.id));
        Ok(Batch::Done(outcomes))
    }

    /// Validation metrics of `commit`, checked out in production's worktree.
    fn validate_commit(
        &self,
        rec: &Recorder,
        it: u32,
        step: &str,
        proposal_id: Option<&str>,
        commit: &str,
    ) -> Result<MetricValues> {
        let prod_dir = self.production_dir();
        self.repo.checkout_detached(&prod_dir, commit)?;
        let job = JobContext {
            rec,
            iteration: it,
            step: step.to_string(),
            proposal_id: proposal_id.map(str::to_string),
            job: format!("validation of production {commit}"),
        };
        self.evaluator
            .evaluate_job(&prod_dir, Split::Validation, &job)
            .map_err(|e| match e {
                EvalError::Cancelled => AgentError::Cancelled,
                e => AgentError::Invalid {
                    path: format!("production {commit}"),
                    reason: e.to_string(),
                },
            })
    }

    /// Production's metrics at `commit`: as journaled when it was merged or started a run,
    /// else measured.
    fn production_metrics(&self, rec: &Recorder, it: u32, commit: &str) -> Result<MetricValues> {
        for e in self.events()?.iter().rev() {
            match &e.event {
                Event::MergedIntoProduction {
                    commit: c, metrics, ..
                } if c == commit => return Ok(metrics.clone()),
                Event::RunStarted {
                    production_commit,
                    baseline,
                    ..
                } if production_commit == commit => return Ok(baseline.clone()),
                _ => {}
            }
        }
        self.validate_commit(
            rec,
            it,
            &format!("merge/production/{commit}/eval"),
            None,
            commit,
        )
    }

    /// Merge this iteration's KEEPs (best first) while holding the production branch's lock:
    /// the local branch is first brought to the shared remote's; a KEEP whose base is no longer
    /// production (another KEEP merged first, or another worker moved production) is merged
    /// onto the new production, re-measured, and kept only if it still clears the primary
    /// metric's minimum effect over it; the result is pushed to the remote.
    fn merge_shared(
        &self,
        w: &crate::workers::Workers,
        rec: &Recorder,
        it: u32,
        keeps: &[&CandidateOutcome],
        prod: &ProductionState,
    ) -> Result<ProductionState> {
        let branch = self.manifest.project.production.clone();
        let lock = w.lock_production(rec, it, &branch)?;
        let merged = (|| -> Result<ProductionState> {
            let head = w.sync_production(&self.repo, &branch)?;
            let mut current = if head == prod.commit {
                prod.clone()
            } else {
                ProductionState {
                    metrics: self.production_metrics(rec, it, &head)?,
                    commit: head,
                }
            };
            let primary = &self.manifest.metrics.primary;
            let sign = primary.direction.sign();
            let sig = self
                .repo
                .merge_signature(self.manifest.project.merge_author.as_deref())?;
            for o in keeps {
                let Some(DevelopResult::Ready { candidate }) = &o.develop else {
                    continue;
                };
                let pid = &o.proposal.id;
                self.have_commit(&candidate.commit)?;
                let merged_event = |commit: &str, metrics: &MetricValues| {
                    rec.emit(
                        it,
                        &format!("merge/{pid}"),
                        Event::MergedIntoProduction {
                            proposal_id: pid.clone(),
                            candidate_id: candidate.id.clone(),
                            commit: commit.to_string(),
                            metrics: metrics.clone(),
                        },
                        None,
                    )
                };
                let superseded = |text: String, data: serde_json::Value| {
                    rec.emit(
                        it,
                        &format!("merge/{pid}/superseded"),
                        Event::Note {
                            topic: "merge.superseded".into(),
                            text,
                            data,
                        },
                        None,
                    )
                };
                if self.repo.is_ancestor(&candidate.commit, &current.commit) {
                    // merged and pushed by a worker that died before it journaled the merge
                    merged_event(&current.commit, &current.metrics)?;
                    continue;
                }
                let base = current.commit.clone();
                let commit = match self.repo.merge_into(
                    &branch,
                    &candidate.commit,
                    &format!("recloop: keep {} ({})", candidate.id, o.proposal.title),
                    &sig,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        superseded(
                            format!(
                                "{pid} was KEEP but does not merge into production {base}: {e}"
                            ),
                            serde_json::Value::Null,
                        )?;
                        continue;
                    }
                };
                let metrics = if commit == candidate.commit {
                    candidate.offline.clone()
                } else {
                    self.validate_commit(rec, it, &format!("merge/{pid}/eval"), Some(pid), &commit)?
                };
                if candidate.base_commit != base {
                    let after = metrics.get(&primary.name).copied().unwrap_or(f64::NAN);
                    let before = current
                        .metrics
                        .get(&primary.name)
                        .copied()
                        .unwrap_or(f64::NAN);
                    let gain = sign * (after - before);
                    let kept = gain >= primary.min_effect;
                    let data = serde_json::json!({
                        "candidate": candidate.id, "candidate_base": candidate.base_commit,
                        "production": base, "merged": commit, "metric": primary.name,
                        "production_value": before, "merged_value": after,
                        "gain": gain, "min_effect": primary.min_effect, "kept": kept,
                    });
                    rec.emit(
                        it,
                        &format!("merge/{pid}/rechecked"),
                        Event::Note {
                            topic: "merge.rechecked".into(),
                            text: format!(
                                "{pid} was KEEP against {}; production is now {base}: merged \
                                 {} {after:.4} vs {before:.4} (gain {gain:+.4}, min effect {}) → {}",
                                candidate.base_commit,
                                primary.name,
                                primary.min_effect,
                                if kept { "merged" } else { "not merged" }
                            ),
                            data: data.clone(),
                        },
                        None,
                    )?;
                    if !kept {
                        self.repo.reset_branch(&branch, &base)?;
                        superseded(
                            format!(
                                "{pid} was KEEP but no longer clears {} over production {base}",
                                primary.name
                            ),
                            data,
                        )?;
                        continue;
                    }
                }
                merged_event(&commit, &metrics)?;
                current = ProductionState { commit, metrics };
            }
            w.push_production(&self.repo, &branch)?;
            Ok(current)
        })();
        w.unlock_production(lock)?;
        merged
    }

    /// Build the summary of `run_id` from the journal.
    fn summary(
        &self,
        run_id: &str,
        start: &ProductionState,
        end: &ProductionState,
        outcome: Option<RunOutcome>,
    ) -> Result<RunSummary> {
        let events: Vec<EventRecord> = self
            .events()?
            .into_iter()
            .filter(|e| e.run_id == run_id)
            .collect();
        let history = History::from_events(&events, &self.manifest.metrics.primary.name);
        let developed: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::WorktreeCreated { proposal_id, .. } => Some(proposal_id.clone()),
                _ => None,
            })
            .collect();
        let iteration_of: std::collections::BTreeMap<String, u32> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::ProposalMade { proposal } => Some((proposal.id.clone(), e.iteration)),
                _ => None,
            })
            .collect();
        let mut north = Vec::new();
        for e in &events {
            if let Event::Verdict {
                verdict,
                proposal_id,
                ..
            } = &e.event
                && verdict.decision == Decision::Keep
                && history
                    .trials
                    .iter()
                    .any(|t| &t.proposal.id == proposal_id && t.merged)
            {
                for eff in &verdict.effects {
                    if self
                        .manifest
                        .metrics
                        .north_star
                        .as_ref()
                        .is_some_and(|n| n.name == eff.metric)
                    {
                        north.push((eff.metric.clone(), eff.effect));
                    }
                }
            }
        }
        let tried = history
            .trials
            .iter()
            .filter(|t| {
                developed.contains(&t.proposal.id)
                    || t.rejected.is_some()
                    || t.error.is_some()
                    || t.proposal.maturity == Maturity::Backlog
            })
            .map(|t| Tried {
                iteration: iteration_of.get(&t.proposal.id).copied().unwrap_or(0),
                proposal_id: t.proposal.id.clone(),
                title: t.proposal.title.clone(),
                validation: t.value,
                outcome: match (&t.decision, &t.rejected, &t.error) {
                    (Some(d), _, _) => d.to_string(),
                    (None, Some(r), _) => format!("REJECTED: {}", truncate(r, 120)),
                    (None, None, Some(e)) => format!("ERROR: {}", truncate(e, 120)),
                    (None, None, None) if t.proposal.maturity == Maturity::Backlog => {
                        "BACKLOG (recorded, not developed)".into()
                    }
                    (None, None, None) => "undecided".into(),
                },
                merged: t.merged,
            })
            .collect();
        let usage = crate::calendar::online_usage(&events, run_id);
        Ok(RunSummary {
            run_id: run_id.to_string(),
            brain: self.brain.name(),
            iterations: events.iter().map(|e| e.iteration).max().unwrap_or(0),
            primary: self.manifest.metrics.primary.name.clone(),
            start: start.metrics.clone(),
            end: end.metrics.clone(),
            tried,
            north_star_effects: north,
            final_ab: None,
            cost_usd: self.spent_usd(run_id)?,
            outcome: outcome
                .map_or("waiting_for_approval", RunOutcome::as_str)
                .to_string(),
            pending_approvals: Vec::new(),
            online_days: usage.days,
            online_experiments: usage.experiments,
        })
    }
}

/// Journal the budget that ran out, as a failure of its own class (the run then ends with
/// `budget_exhausted`).
/// The admitted proposals a batch can work on: ready ones first, then probe-first ones
/// (backlog proposals stay recorded as backlog).
fn runnable(admitted: &[Proposal]) -> Vec<&Proposal> {
    let mut selected: Vec<&Proposal> = admitted
        .iter()
        .filter(|p| p.maturity == Maturity::Ready)
        .collect();
    selected.extend(
        admitted
            .iter()
            .filter(|p| p.maturity == Maturity::ProbeFirst),
    );
    selected
}

/// Run `work` on each `(k, proposal)` in a scoped thread of its own; a thread that panics is
/// that proposal's [`AgentError::WorkerPanicked`].
fn in_parallel<T: Send>(
    pending: &[(u64, Proposal)],
    work: impl Fn(u64, &Proposal) -> Result<T> + Sync,
) -> Vec<(Proposal, Result<T>)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = pending
            .iter()
            .map(|(k, p)| (p, s.spawn(|| work(*k, p))))
            .collect();
        handles
            .into_iter()
            .map(|(p, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(AgentError::WorkerPanicked(p.id.clone())));
                (p.clone(), r)
            })
            .collect()
    })
}

/// What became of one candidate's work.
enum Settled<T> {
    /// It finished.
    Done(T),
    /// The machinery failed (recorded as `stage_failed`): an outcome without a verdict.
    Failed(Box<CandidateOutcome>),
    /// It waits for a person: (approval id, question).
    Waiting((String, String)),
    /// A budget ran out (journaled here).
    Budget,
}

/// The results of a batch that did not finish: approvals waiting for a person and a budget that
/// ran out. [`Unsettled::take`] sorts each result; [`Unsettled::stopped`] says whether the
/// batch stops here.
#[derive(Debug, Default)]
struct Unsettled {
    waiting: Vec<(String, String)>,
    budget: bool,
}

impl Unsettled {
    /// [`settle`] `r`: the finished work (`failed` turns a machinery failure into it), or
    /// `None` when it waits for a person or the budget ran out (kept here).
    fn take<T>(
        &mut self,
        rec: &Recorder,
        it: u32,
        p: &Proposal,
        r: Result<T>,
        stage: &str,
        failed: impl FnOnce(Box<CandidateOutcome>) -> T,
    ) -> Result<Option<T>> {
        Ok(match settle(rec, it, p, r, stage)? {
            Settled::Done(v) => Some(v),
            Settled::Failed(o) => Some(failed(o)),
            Settled::Waiting(w) => {
                self.waiting.push(w);
                None
            }
            Settled::Budget => {
                self.budget = true;
                None
            }
        })
    }

    /// The batch's end when something did not finish: waiting for a person first, then the
    /// budget.
    fn stopped(self) -> Option<Batch> {
        if !self.waiting.is_empty() {
            Some(Batch::Waiting(self.waiting))
        } else if self.budget {
            Some(Batch::BudgetExhausted)
        } else {
            None
        }
    }
}

/// Sort the result of one candidate's work into [`Settled`]; other errors end the run.
fn settle<T>(
    rec: &Recorder,
    it: u32,
    p: &Proposal,
    r: Result<T>,
    stage: &str,
) -> Result<Settled<T>> {
    match r {
        Ok(v) => Ok(Settled::Done(v)),
        Err(AgentError::Stage { class, detail }) => {
            Ok(Settled::Failed(Box::new(CandidateOutcome {
                proposal: p.clone(),
                develop: None,
                verdict: None,
                error: Some(format!("{}: {detail}", class.as_str())),
            })))
        }
        Err(AgentError::AwaitingApproval { id, question }) => Ok(Settled::Waiting((id, question))),
        Err(AgentError::Budget(detail)) => {
            record_budget_exhausted(rec, it, Some(&p.id), stage, detail)?;
            Ok(Settled::Budget)
        }
        Err(e) => Err(e),
    }
}

fn record_budget_exhausted(
    rec: &Recorder,
    it: u32,
    proposal_id: Option<&str>,
    stage: &str,
    detail: String,
) -> Result<()> {
    rec.emit(
        it,
        &format!("{stage}/budget_exhausted"),
        Event::StageFailed {
            proposal_id: proposal_id.map(str::to_string),
            stage: stage.to_string(),
            class: recloop_core::ErrorClass::Budget,
            detail,
        },
        None,
    )?;
    Ok(())
}

fn cand_value(o: &CandidateOutcome, primary: &str) -> f64 {
    match &o.develop {
        Some(DevelopResult::Ready { candidate }) => {
            candidate.offline.get(primary).copied().unwrap_or(f64::NAN)
        }
        _ => f64::NAN,
    }
}

/// Open the workspace and run the loop.
pub fn run(workspace: &Path, opts: &RunOptions) -> Result<RunSummary> {
    Loop::open(workspace, opts)?.run(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_lock_per_workspace_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        crate::git::git(dir.path(), &["init", "-q", "-b", "main"]).unwrap();
        let repo = Repo::open(dir.path()).unwrap();
        let first = RunLock::acquire(&repo).unwrap();
        let err = RunLock::acquire(&repo).err().expect("held").to_string();
        assert!(
            err.contains(&format!(
                "another recloop process (pid {})",
                std::process::id()
            )),
            "{err}"
        );
        drop(first);
        let again = RunLock::acquire(&repo).unwrap();
        drop(again);
        let text = std::fs::read_to_string(dir.path().join(".recloop/run.lock")).unwrap();
        assert!(
            text.is_empty(),
            "a clean exit empties the lock file: {text:?}"
        );
    }
}
