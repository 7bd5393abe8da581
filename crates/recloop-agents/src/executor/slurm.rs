//! The Slurm executor, through the command-line tools: `sbatch --parsable` submits a batch
//! script, `scontrol show job -o` reads the state, `scancel` cancels.
//!
//! Each job gets a directory `JOBS/NAME-N-PID/` (on a file system the compute nodes share) with
//! `job.sh` (the batch script), `command.sh` (the workspace command), `stdout`, `stderr` and,
//! once the command returns, `exit` (its status). The `exit` file lets the executor tell how a
//! job ended after the controller has forgotten it (no accounting database is needed); a link
//! `JOBS/slurm-ID` names the directory of job `ID`, so a resumed run can adopt its jobs.

use super::{Executor, ExecutorError, JobLogs, JobSpec, JobStatus, safe_name};
use recloop_journal::JobEnd;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// Submits jobs with `sbatch`.
pub struct SlurmExecutor {
    /// Where job directories are made.
    pub jobs_dir: PathBuf,
    /// `--partition` (None: the cluster's default).
    pub partition: Option<String>,
    /// Extra `sbatch` arguments.
    pub sbatch_args: Vec<String>,
    /// Put first on the job's PATH (the directory with the `recloop` link).
    pub path_prefix: Option<PathBuf>,
    /// Variables exported to the job.
    pub env: Vec<(String, String)>,
    next: AtomicU64,
}

/// Quote `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run a Slurm tool; its stdout, or an error with its stderr.
fn tool(program: &str, args: &[String]) -> Result<String, ExecutorError> {
    let line = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ExecutorError::Unavailable(format!(
                "`{program}` is not on the PATH (install the Slurm client tools, e.g. Debian's slurm-client)"
            )),
            _ => ExecutorError::Command {
                command: line.clone(),
                detail: e.to_string(),
            },
        })?;
    if !out.status.success() {
        return Err(ExecutorError::Command {
            command: line,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `Key=Value` fields of `scontrol show job -o` (values up to the next space).
pub fn parse_scontrol(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The status a Slurm job state (`JobState=`) stands for.
pub fn status_of(state: &str, reason: &str, exit_code: &str) -> JobStatus {
    let state = state.split('+').next().unwrap_or(state);
    let ended = |end: JobEnd| JobStatus::Ended {
        end,
        detail: format!("Slurm state {state}, reason {reason}, exit code {exit_code}"),
    };
    match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => JobStatus::Pending,
        "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "RESIZING" | "SUSPENDED"
        | "STOPPED" | "UPDATE_DB" | "POWER_UP_NODE" => JobStatus::Running,
        "COMPLETED" => ended(JobEnd::Succeeded),
        "TIMEOUT" | "DEADLINE" => ended(JobEnd::TimedOut),
        "PREEMPTED" | "NODE_FAIL" | "BOOT_FAIL" => ended(JobEnd::Preempted),
        "CANCELLED" | "REVOKED" => ended(JobEnd::Killed),
        // FAILED, OUT_OF_MEMORY, SPECIAL_EXIT and any state this build does not know
        _ => ended(JobEnd::Failed),
    }
}

impl SlurmExecutor {
    /// Jobs in `jobs_dir` (created); fails when `sbatch` is not installed.
    pub fn new(jobs_dir: PathBuf) -> Result<SlurmExecutor, ExecutorError> {
        if recloop_sandbox::which("sbatch").is_none() {
            return Err(ExecutorError::Unavailable(
                "[executor] kind = \"slurm\" but `sbatch` is not on the PATH (install the Slurm \
                 client tools, e.g. Debian's slurm-client, and point them at the cluster)"
                    .into(),
            ));
        }
        std::fs::create_dir_all(&jobs_dir).map_err(|source| ExecutorError::Io {
            path: jobs_dir.clone(),
            source,
        })?;
        Ok(SlurmExecutor {
            jobs_dir,
            partition: None,
            sbatch_args: Vec::new(),
            path_prefix: None,
            env: Vec::new(),
            next: AtomicU64::new(1),
        })
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("slurm-{id}"))
    }

    fn write(path: &Path, text: &str) -> Result<(), ExecutorError> {
        std::fs::write(path, text).map_err(|source| ExecutorError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// How a job the controller no longer knows ended, from its `exit` file.
    fn status_from_files(&self, id: &str) -> Result<JobStatus, ExecutorError> {
        let exit = self.job_dir(id).join("exit");
        match std::fs::read_to_string(&exit) {
            Ok(text) => Ok(match text.trim() {
                "0" => JobStatus::Ended {
                    end: JobEnd::Succeeded,
                    detail: "exit status 0 (from the job's exit file)".into(),
                },
                code => JobStatus::Ended {
                    end: JobEnd::Failed,
                    detail: format!("exit status {code} (from the job's exit file)"),
                },
            }),
            Err(_) => Err(ExecutorError::UnknownJob(id.into())),
        }
    }
}

impl Executor for SlurmExecutor {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn submit(&self, spec: &JobSpec) -> Result<String, ExecutorError> {
        let name = safe_name(&spec.name);
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let dir = self
            .jobs_dir
            .join(format!("{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| ExecutorError::Io {
            path: dir.clone(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| ExecutorError::Io {
            path: dir.clone(),
            source,
        })?;
        let workdir = spec
            .dir
            .canonicalize()
            .map_err(|source| ExecutorError::Io {
                path: spec.dir.clone(),
                source,
            })?;
        Self::write(&dir.join("command.sh"), &format!("{}\n", spec.command))?;
        let mut script = String::from("#!/bin/sh\n# written by recloop: one evaluation job\n");
        if let Some(p) = &self.path_prefix {
            script.push_str(&format!(
                "PATH={}:\"$PATH\"; export PATH\n",
                quote(&p.display().to_string())
            ));
        }
        for (k, v) in &self.env {
            script.push_str(&format!("{k}={}; export {k}\n", quote(v)));
        }
        let d = |f: &str| quote(&dir.join(f).display().to_string());
        script.push_str(&format!(
            "cd {} || exit 97\n/bin/sh {}\ncode=$?\necho \"$code\" > {}.tmp && mv {}.tmp {}\nexit \"$code\"\n",
            quote(&workdir.display().to_string()),
            d("command.sh"),
            d("exit"),
            d("exit"),
            d("exit"),
        ));
        Self::write(&dir.join("job.sh"), &script)?;
        let minutes = spec.time_limit.as_secs().div_ceil(60).max(1);
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={name}"),
            format!("--chdir={}", workdir.display()),
            format!("--output={}", dir.join("stdout").display()),
            format!("--error={}", dir.join("stderr").display()),
            format!("--time={minutes}"),
            format!("--cpus-per-task={}", spec.cpus.max(1)),
            "--ntasks=1".to_string(),
            "--no-requeue".to_string(),
        ];
        if spec.memory_mib > 0 {
            args.push(format!("--mem={}", spec.memory_mib));
        }
        if let Some(p) = &self.partition {
            args.push(format!("--partition={p}"));
        }
        args.extend(self.sbatch_args.iter().cloned());
        args.push(dir.join("job.sh").display().to_string());
        let out = tool("sbatch", &args)?;
        // `--parsable` prints `ID` or `ID;CLUSTER`
        let id = out
            .trim()
            .split(';')
            .next()
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| ExecutorError::Command {
                command: "sbatch --parsable".into(),
                detail: format!("printed no job id: {out:?}"),
            })?
            .to_string();
        let link = self.job_dir(&id);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).map_err(|source| ExecutorError::Io {
            path: link.clone(),
            source,
        })?;
        Ok(id)
    }

    fn status(&self, id: &str) -> Result<JobStatus, ExecutorError> {
        match tool(
            "scontrol",
            &["show".into(), "job".into(), "-o".into(), id.into()],
        ) {
            Ok(out) => {
                let f = parse_scontrol(out.lines().next().unwrap_or(""));
                let state = f.get("JobState").ok_or_else(|| ExecutorError::Command {
                    command: format!("scontrol show job -o {id}"),
                    detail: format!("no JobState in {:?}", out.trim()),
                })?;
                let get = |k: &str| f.get(k).map_or("?", String::as_str);
                Ok(status_of(state, get("Reason"), get("ExitCode")))
            }
            Err(ExecutorError::Command { detail, .. }) if detail.contains("Invalid job id") => {
                self.status_from_files(id)
            }
            Err(e) => Err(e),
        }
    }

    fn logs(&self, id: &str) -> Result<JobLogs, ExecutorError> {
        let dir = self.job_dir(id);
        if !dir.exists() {
            return Err(ExecutorError::UnknownJob(id.into()));
        }
        Ok(JobLogs {
            stdout: Self::read(&dir.join("stdout")),
            stderr: Self::read(&dir.join("stderr")),
        })
    }

    fn cancel(&self, id: &str) -> Result<(), ExecutorError> {
        tool("scancel", &[id.to_string()]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_and_states_map_to_statuses() {
        let f = parse_scontrol(
            "JobId=7 JobName=recloop-validation UserId=root(0) JobState=CANCELLED Reason=None \
             Dependency=(null) ExitCode=0:15 RunTime=00:00:03",
        );
        assert_eq!(f["JobState"], "CANCELLED");
        assert_eq!(f["ExitCode"], "0:15");
        let end = |s: &str| match status_of(s, "None", "0:0") {
            JobStatus::Ended { end, .. } => Some(end),
            _ => None,
        };
        assert_eq!(end("COMPLETED"), Some(JobEnd::Succeeded));
        assert_eq!(end("CANCELLED"), Some(JobEnd::Killed));
        assert_eq!(end("CANCELLED+"), Some(JobEnd::Killed));
        assert_eq!(end("TIMEOUT"), Some(JobEnd::TimedOut));
        assert_eq!(end("PREEMPTED"), Some(JobEnd::Preempted));
        assert_eq!(end("NODE_FAIL"), Some(JobEnd::Preempted));
        assert_eq!(end("FAILED"), Some(JobEnd::Failed));
        assert_eq!(end("OUT_OF_MEMORY"), Some(JobEnd::Failed));
        assert_eq!(status_of("PENDING", "Priority", "0:0"), JobStatus::Pending);
        assert_eq!(status_of("COMPLETING", "None", "0:0"), JobStatus::Running);
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
