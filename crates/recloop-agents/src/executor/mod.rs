//! Executors for evaluation jobs: one trait ([`Executor`]: `submit`, `status`, `logs`, `cancel`)
//! with the local sandbox ([`local::LocalExecutor`]), Slurm ([`slurm::SlurmExecutor`]) and Ray
//! ([`ray::RayExecutor`]) behind it, chosen by `[executor] kind` in `recloop.toml`.
//!
//! [`JobRunner`] drives one job to its end: it submits, polls, journals `job_submitted` and
//! `job_ended` for every attempt, retries a failed, timed-out, preempted or externally killed
//! job until `[executor] max_attempts` attempts have run, and cancels the job (journaled as
//! `cancelled`, never retried) when the run's [`CancelToken`] is set. A resumed run adopts a job
//! that was submitted but whose end was never journaled instead of submitting it again.
//!
//! [`ExecutorEvaluator`] is the [`OfflineEvaluator`] that sends `offline_eval` and
//! `holdout_eval` through a runner; the loop uses it whenever `[executor]` is present.

pub mod local;
pub mod ray;
pub mod slurm;

use crate::evaluator::{EvalError, JobContext, OfflineEvaluator, Split, parse_metrics};
use recloop_core::{ExecutorSection, Manifest, MetricValues};
use recloop_journal::{Event, EventRecord, JobEnd};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One job: a shell command line run in a directory, with its resources.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// Short name (letters, digits, `-`, `_`, `.`; others are replaced).
    pub name: String,
    /// Working directory (must be visible to the executor's nodes).
    pub dir: PathBuf,
    /// Shell command line.
    pub command: String,
    /// Time limit.
    pub time_limit: Duration,
    /// CPUs.
    pub cpus: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Waiting for resources.
    Pending,
    /// Running.
    Running,
    /// Ended; `detail` is the executor's reason or exit status. A cancelled job ends as
    /// [`JobEnd::Killed`]: whether recloop cancelled it is the runner's knowledge.
    Ended {
        /// How.
        end: JobEnd,
        /// Why, in the executor's words.
        detail: String,
    },
}

/// What a job printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobLogs {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl JobLogs {
    /// The last `n` lines of stderr, joined by ` | `.
    pub fn stderr_tail(&self, n: usize) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(n).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// Why an executor could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor cannot be used here (a missing tool, an unreachable controller).
    #[error("executor unavailable: {0}")]
    Unavailable(String),
    /// One of its commands failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and stderr.
        detail: String,
    },
    /// The executor does not know this job (any more).
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// A file of the job could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A place that runs jobs.
pub trait Executor: Send + Sync {
    /// `local`, `slurm`, ... (as in `[executor] kind`).
    fn kind(&self) -> &'static str;
    /// Start `spec`; returns the executor's job id.
    fn submit(&self, spec: &JobSpec) -> Result<String, ExecutorError>;
    /// Where job `id` is.
    fn status(&self, id: &str) -> Result<JobStatus, ExecutorError>;
    /// What job `id` printed so far.
    fn logs(&self, id: &str) -> Result<JobLogs, ExecutorError>;
    /// Stop job `id` (a no-op for a job that already ended).
    fn cancel(&self, id: &str) -> Result<(), ExecutorError>;
}

/// Set once to cancel a run: every job in flight is cancelled and no new one starts.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not set.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Set it.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself (for [`recloop_sandbox::Sandbox::run_cancellable`]).
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// Why a job produced no result.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The run was cancelled; the job was cancelled too.
    #[error("the run was cancelled")]
    Cancelled,
    /// Every attempt ended without success.
    #[error("{attempts} attempt(s) on {executor} ended without success; last: {end} ({detail})")]
    Exhausted {
        /// Executor kind.
        executor: String,
        /// Attempts made.
        attempts: u32,
        /// How the last one ended.
        end: &'static str,
        /// Its reason and stderr tail.
        detail: String,
    },
    /// The journal refused an event.
    #[error("journal: {0}")]
    Journal(String),
}

/// Drives jobs on one executor: submit, poll, journal, retry within a bound, cancel.
pub struct JobRunner {
    executor: Arc<dyn Executor>,
    max_attempts: u32,
    poll: Duration,
    queue_timeout: Option<Duration>,
    cancel: CancelToken,
    active: Mutex<BTreeSet<String>>,
}

/// Extra time past a job's own limit before the runner stops waiting for the executor to end it.
fn grace(limit: Duration) -> Duration {
    Duration::from_secs(60) + limit / 10
}

impl JobRunner {
    /// A runner on `executor`: at most `max_attempts` attempts per job, polled every `poll`.
    pub fn new(
        executor: Arc<dyn Executor>,
        max_attempts: u32,
        poll: Duration,
        cancel: CancelToken,
    ) -> JobRunner {
        JobRunner {
            executor,
            max_attempts: max_attempts.max(1),
            poll,
            queue_timeout: None,
            cancel,
            active: Mutex::new(BTreeSet::new()),
        }
    }

    /// Count an attempt that waits in the queue longer than `limit` as failed.
    pub fn with_queue_timeout(mut self, limit: Option<Duration>) -> JobRunner {
        self.queue_timeout = limit;
        self
    }

    /// The executor.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    /// The run's cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Ids of the jobs in flight.
    pub fn active_jobs(&self) -> Vec<String> {
        self.active
            .lock()
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Cancel the run: set the token and cancel every job in flight now (their pollers journal
    /// them as `cancelled`).
    pub fn cancel_all(&self) {
        self.cancel.cancel();
        for id in self.active_jobs() {
            if let Err(e) = self.executor.cancel(&id) {
                tracing::warn!("cancelling job {id}: {e}");
            }
        }
    }

    /// Run `spec` until an attempt succeeds and return its logs. With `ctx`, every attempt is
    /// journaled under `ctx.step` (`STEP/job/N/submitted`, `STEP/job/N/ended`).
    pub fn run(&self, spec: &JobSpec, ctx: Option<&JobContext<'_>>) -> Result<JobLogs, JobError> {
        let kind = self.executor.kind();
        let mut last: (JobEnd, String) = (JobEnd::Failed, String::new());
        for attempt in 1..=self.max_attempts {
            if self.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let journal = Journaled { ctx, kind, attempt };
            // a resumed run: adopt what an earlier process journaled for this attempt
            let (id, ended) = match journal.recorded()? {
                Recorded::Ended {
                    job_id,
                    end: JobEnd::Succeeded,
                    ..
                } => {
                    match self.executor.logs(&job_id) {
                        Ok(logs) => return Ok(logs),
                        Err(e) => {
                            // the attempt's output is gone: it counts as lost
                            last = (JobEnd::Lost, format!("job {job_id}: {e}"));
                            continue;
                        }
                    }
                }
                Recorded::Ended { end, detail, .. } => {
                    last = (end, detail);
                    continue;
                }
                Recorded::Submitted(job_id) => (job_id, None),
                Recorded::Nothing => match self.executor.submit(spec) {
                    Ok(id) => {
                        journal.submitted(&id)?;
                        (id, None)
                    }
                    Err(e) => (String::new(), Some((JobEnd::Failed, e.to_string()))),
                },
            };
            let (end, detail) = match ended {
                Some(e) => e,
                None => self.wait(&id, spec),
            };
            let retry = end != JobEnd::Succeeded
                && end != JobEnd::Cancelled
                && attempt < self.max_attempts
                && !self.cancel.is_cancelled();
            let logs = if id.is_empty() {
                Ok(JobLogs::default())
            } else {
                self.executor.logs(&id)
            };
            let detail = match (&logs, end) {
                (Ok(l), JobEnd::Failed | JobEnd::TimedOut) if !l.stderr.trim().is_empty() => {
                    format!("{detail}; stderr: {}", l.stderr_tail(4))
                }
                _ => detail,
            };
            journal.ended(&id, end, &detail, retry)?;
            tracing::info!(
                "job {} ({kind} {id}, attempt {attempt}): {}{}",
                spec.name,
                end.as_str(),
                if retry { ", retrying" } else { "" }
            );
            match end {
                JobEnd::Succeeded => {
                    return logs.map_err(|e| JobError::Exhausted {
                        executor: kind.into(),
                        attempts: attempt,
                        end: JobEnd::Lost.as_str(),
                        detail: format!("job {id} succeeded but its output is unreadable: {e}"),
                    });
                }
                JobEnd::Cancelled => return Err(JobError::Cancelled),
                _ => last = (end, detail),
            }
        }
        if self.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        Err(JobError::Exhausted {
            executor: kind.into(),
            attempts: self.max_attempts,
            end: last.0.as_str(),
            detail: last.1,
        })
    }

    /// Poll job `id` until it ends, the run is cancelled, it overstays its queue or time limit,
    /// or the executor loses it.
    fn wait(&self, id: &str, spec: &JobSpec) -> (JobEnd, String) {
        if let Ok(mut a) = self.active.lock() {
            a.insert(id.to_string());
        }
        let r = self.poll_until_end(id, spec);
        if let Ok(mut a) = self.active.lock() {
            a.remove(id);
        }
        r
    }

    fn poll_until_end(&self, id: &str, spec: &JobSpec) -> (JobEnd, String) {
        let submitted = Instant::now();
        let mut running_since: Option<Instant> = None;
        let mut errors = 0u32;
        let stop = |end: JobEnd, why: String| {
            if let Err(e) = self.executor.cancel(id) {
                tracing::warn!("cancelling job {id}: {e}");
            }
            (end, why)
        };
        loop {
            if self.cancel.is_cancelled() {
                return stop(JobEnd::Cancelled, "the run was cancelled".into());
            }
            match self.executor.status(id) {
                Ok(JobStatus::Ended { end, detail }) => return (end, detail),
                Ok(JobStatus::Pending) => {
                    errors = 0;
                    if let Some(limit) = self.queue_timeout
                        && submitted.elapsed() > limit
                    {
                        return stop(
                            JobEnd::Failed,
                            format!("waited in the queue longer than {} s", limit.as_secs()),
                        );
                    }
                }
                Ok(JobStatus::Running) => {
                    errors = 0;
                    let since = *running_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > spec.time_limit + grace(spec.time_limit) {
                        return stop(
                            JobEnd::TimedOut,
                            format!(
                                "still running {} s past its {} s limit; cancelled by recloop",
                                grace(spec.time_limit).as_secs(),
                                spec.time_limit.as_secs()
                            ),
                        );
                    }
                }
                Err(ExecutorError::UnknownJob(_)) => {
                    return (
                        JobEnd::Lost,
                        format!(
                            "the {} executor no longer knows job {id}",
                            self.executor.kind()
                        ),
                    );
                }
                Err(e) => {
                    errors += 1;
                    tracing::warn!("status of job {id}: {e}");
                    if errors >= 10 {
                        return (JobEnd::Lost, format!("status unavailable: {e}"));
                    }
                }
            }
            self.nap();
        }
    }

    /// Sleep one poll interval, waking early when the run is cancelled.
    fn nap(&self) {
        let until = Instant::now() + self.poll;
        while Instant::now() < until && !self.cancel.is_cancelled() {
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
    }
}

/// What the journal already holds for one attempt.
enum Recorded {
    Nothing,
    Submitted(String),
    Ended {
        job_id: String,
        end: JobEnd,
        detail: String,
    },
}

/// The journal side of one attempt (nothing when the job has no context).
struct Journaled<'a, 'b> {
    ctx: Option<&'a JobContext<'b>>,
    kind: &'static str,
    attempt: u32,
}

impl Journaled<'_, '_> {
    fn step(&self, what: &str) -> String {
        match self.ctx {
            Some(c) => format!("{}/job/{}/{what}", c.step, self.attempt),
            None => String::new(),
        }
    }

    fn find(&self, what: &str) -> Result<Option<EventRecord>, JobError> {
        let Some(c) = self.ctx else { return Ok(None) };
        c.rec
            .journal
            .find_by_key(&c.rec.key(c.iteration, &self.step(what)))
            .map_err(|e| JobError::Journal(e.to_string()))
    }

    fn recorded(&self) -> Result<Recorded, JobError> {
        if let Some(EventRecord {
            event:
                Event::JobEnded {
                    job_id,
                    end,
                    detail,
                    ..
                },
            ..
        }) = self.find("ended")?
        {
            return Ok(Recorded::Ended {
                job_id,
                end,
                detail,
            });
        }
        if let Some(EventRecord {
            event: Event::JobSubmitted { job_id, .. },
            ..
        }) = self.find("submitted")?
        {
            return Ok(Recorded::Submitted(job_id));
        }
        Ok(Recorded::Nothing)
    }

    fn emit(&self, what: &str, event: Event) -> Result<(), JobError> {
        let Some(c) = self.ctx else { return Ok(()) };
        c.rec
            .emit(c.iteration, &self.step(what), event, None)
            .map(|_| ())
            .map_err(|e| JobError::Journal(e.to_string()))
    }

    fn submitted(&self, job_id: &str) -> Result<(), JobError> {
        let Some(c) = self.ctx else { return Ok(()) };
        self.emit(
            "submitted",
            Event::JobSubmitted {
                proposal_id: c.proposal_id.clone(),
                job: c.job.clone(),
                executor: self.kind.into(),
                job_id: job_id.into(),
                attempt: self.attempt,
            },
        )
    }

    fn ended(&self, job_id: &str, end: JobEnd, detail: &str, retry: bool) -> Result<(), JobError> {
        let Some(c) = self.ctx else { return Ok(()) };
        self.emit(
            "ended",
            Event::JobEnded {
                proposal_id: c.proposal_id.clone(),
                job: c.job.clone(),
                executor: self.kind.into(),
                job_id: job_id.into(),
                attempt: self.attempt,
                end,
                detail: detail.into(),
                retry,
            },
        )
    }
}

/// The executor `[executor]` names, for a workspace whose state directory is `state_dir`
/// (`.recloop/`; Slurm job scripts and logs go to `state_dir/jobs`). `sandbox` runs local jobs;
/// its environment (PATH with the `recloop` link, `RECLOOP_DATA`) is given to Slurm jobs too.
pub fn executor_for(
    section: &ExecutorSection,
    state_dir: &Path,
    sandbox: Option<recloop_sandbox::Sandbox>,
) -> Result<Arc<dyn Executor>, ExecutorError> {
    match section.kind.as_str() {
        "local" => {
            let sandbox = sandbox.ok_or_else(|| {
                ExecutorError::Unavailable("no sandbox to run local jobs in".into())
            })?;
            Ok(Arc::new(local::LocalExecutor::new(sandbox)))
        }
        "slurm" => {
            let mut x = slurm::SlurmExecutor::new(state_dir.join("jobs"))?;
            x.partition = section.partition.clone();
            x.sbatch_args = section.sbatch_args.clone();
            if let Some(sb) = &sandbox {
                x.path_prefix = sb.bin_dir.clone();
                x.env = sb
                    .env
                    .iter()
                    .filter(|(k, _)| k.starts_with("RECLOOP_"))
                    .cloned()
                    .collect();
            }
            Ok(Arc::new(x))
        }
        "ray" => {
            let mut x = ray::RayExecutor::new(section.address.as_deref(), state_dir.join("jobs"))?;
            if let Some(sb) = &sandbox {
                x.path_prefix = sb.bin_dir.clone();
                x.env = sb
                    .env
                    .iter()
                    .filter(|(k, _)| k.starts_with("RECLOOP_"))
                    .cloned()
                    .collect();
            }
            Ok(Arc::new(x))
        }
        other => Err(ExecutorError::Unavailable(format!(
            "[executor] kind = {other:?} is not supported"
        ))),
    }
}

/// The offline evaluator that runs `offline_eval` / `holdout_eval` as executor jobs.
pub struct ExecutorEvaluator {
    manifest: Manifest,
    runner: Arc<JobRunner>,
}

impl ExecutorEvaluator {
    /// Jobs of `manifest`'s commands through `runner`.
    pub fn new(manifest: Manifest, runner: Arc<JobRunner>) -> ExecutorEvaluator {
        ExecutorEvaluator { manifest, runner }
    }

    /// The runner (to cancel its jobs).
    pub fn runner(&self) -> &Arc<JobRunner> {
        &self.runner
    }

    fn run(
        &self,
        dir: &Path,
        split: Split,
        ctx: Option<&JobContext<'_>>,
    ) -> Result<MetricValues, EvalError> {
        let c = &self.manifest.commands;
        let command = match split {
            Split::Validation => &c.offline_eval,
            Split::Holdout => &c.holdout_eval,
        };
        if command.trim().is_empty() {
            return Err(EvalError::NoCommand { split });
        }
        let default = ExecutorSection {
            kind: self.runner.executor.kind().into(),
            address: None,
            partition: None,
            cpus: 1,
            memory_mib: None,
            time_limit_s: None,
            max_attempts: 1,
            poll_s: 1.0,
            queue_timeout_s: 0,
            sbatch_args: Vec::new(),
        };
        let section = self.manifest.executor.as_ref().unwrap_or(&default);
        let what = match split {
            Split::Validation => "validation",
            Split::Holdout => "holdout",
        };
        let spec = JobSpec {
            name: format!("recloop-{what}"),
            dir: dir.to_path_buf(),
            command: command.clone(),
            time_limit: Duration::from_secs(section.time_limit(c)),
            cpus: section.cpus,
            memory_mib: section.memory(&self.manifest.sandbox),
        };
        let logs = self.runner.run(&spec, ctx).map_err(|e| match e {
            JobError::Cancelled => EvalError::Cancelled,
            other => EvalError::CommandFailed(other.to_string()),
        })?;
        parse_metrics(&logs.stdout)
    }
}

impl OfflineEvaluator for ExecutorEvaluator {
    fn evaluate(&self, dir: &Path, split: Split) -> Result<MetricValues, EvalError> {
        self.run(dir, split, None)
    }

    fn evaluate_job(
        &self,
        dir: &Path,
        split: Split,
        ctx: &JobContext<'_>,
    ) -> Result<MetricValues, EvalError> {
        self.run(dir, split, Some(ctx))
    }
}

/// Job names keep to `[A-Za-z0-9._-]`.
pub(crate) fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
