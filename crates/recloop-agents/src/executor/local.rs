//! The local executor: each job is a command in the workspace's sandbox, on a thread of this
//! process (the default place commands run, made asynchronous and cancellable).

use super::{Executor, ExecutorError, JobLogs, JobSpec, JobStatus};
use recloop_journal::JobEnd;
use recloop_sandbox::{CommandOutcome, Sandbox};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One job's shared state.
struct LocalJob {
    cancel: Arc<AtomicBool>,
    result: Option<Result<CommandOutcome, String>>,
}

type Jobs = Arc<Mutex<HashMap<String, LocalJob>>>;

/// Runs jobs in a [`Sandbox`] on this machine. Job ids (`local-N`) live as long as this value.
pub struct LocalExecutor {
    sandbox: Sandbox,
    jobs: Jobs,
    next: AtomicU64,
}

impl LocalExecutor {
    /// Jobs in `sandbox` (its time limit is replaced by each job's).
    pub fn new(sandbox: Sandbox) -> LocalExecutor {
        LocalExecutor {
            sandbox,
            jobs: Arc::new(Mutex::new(HashMap::new())),
            next: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, LocalJob>>, ExecutorError> {
        self.jobs
            .lock()
            .map_err(|_| ExecutorError::Unavailable("local job table poisoned".into()))
    }
}

impl Executor for LocalExecutor {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn submit(&self, spec: &JobSpec) -> Result<String, ExecutorError> {
        let id = format!("local-{}", self.next.fetch_add(1, Ordering::SeqCst));
        let cancel = Arc::new(AtomicBool::new(false));
        self.lock()?.insert(
            id.clone(),
            LocalJob {
                cancel: cancel.clone(),
                result: None,
            },
        );
        let mut sandbox = self.sandbox.clone();
        sandbox.timeout = spec.time_limit;
        if spec.memory_mib > 0 {
            sandbox.memory_mib = spec.memory_mib;
        }
        let (jobs, job, dir, command) = (
            self.jobs.clone(),
            id.clone(),
            spec.dir.clone(),
            spec.command.clone(),
        );
        std::thread::Builder::new()
            .name(format!("recloop-{id}"))
            .spawn(move || {
                let out = sandbox
                    .run_cancellable(&dir, &command, &cancel)
                    .map_err(|e| e.to_string());
                if let Ok(mut j) = jobs.lock()
                    && let Some(entry) = j.get_mut(&job)
                {
                    entry.result = Some(out);
                }
            })
            .map_err(|e| ExecutorError::Unavailable(format!("cannot start a job thread: {e}")))?;
        Ok(id)
    }

    fn status(&self, id: &str) -> Result<JobStatus, ExecutorError> {
        let jobs = self.lock()?;
        let job = jobs
            .get(id)
            .ok_or_else(|| ExecutorError::UnknownJob(id.into()))?;
        Ok(match &job.result {
            None => JobStatus::Running,
            Some(Err(e)) => JobStatus::Ended {
                end: JobEnd::Failed,
                detail: e.clone(),
            },
            Some(Ok(out)) if out.success() => JobStatus::Ended {
                end: JobEnd::Succeeded,
                detail: format!("exit 0 after {} ms", out.duration_ms),
            },
            Some(Ok(out)) if out.timed_out => JobStatus::Ended {
                end: JobEnd::TimedOut,
                detail: format!("time limit reached after {} ms", out.duration_ms),
            },
            Some(Ok(out)) if job.cancel.load(Ordering::SeqCst) && out.code.is_none() => {
                JobStatus::Ended {
                    end: JobEnd::Killed,
                    detail: "cancelled".into(),
                }
            }
            Some(Ok(out)) => JobStatus::Ended {
                end: JobEnd::Failed,
                detail: out
                    .code
                    .map_or("killed by a signal".into(), |c| format!("exit status {c}")),
            },
        })
    }

    fn logs(&self, id: &str) -> Result<JobLogs, ExecutorError> {
        let jobs = self.lock()?;
        let job = jobs
            .get(id)
            .ok_or_else(|| ExecutorError::UnknownJob(id.into()))?;
        Ok(match &job.result {
            Some(Ok(out)) => JobLogs {
                stdout: out.stdout.clone(),
                stderr: out.stderr.clone(),
            },
            Some(Err(e)) => JobLogs {
                stdout: String::new(),
                stderr: e.clone(),
            },
            None => JobLogs::default(),
        })
    }

    fn cancel(&self, id: &str) -> Result<(), ExecutorError> {
        let jobs = self.lock()?;
        let job = jobs
            .get(id)
            .ok_or_else(|| ExecutorError::UnknownJob(id.into()))?;
        job.cancel.store(true, Ordering::SeqCst);
        Ok(())
    }
}
