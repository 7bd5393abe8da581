//! The Ray executor, through the Ray Jobs REST API of a cluster's head (`POST /api/jobs/`,
//! `GET /api/jobs/ID`, `POST /api/jobs/ID/stop`).
//!
//! As with Slurm, each job gets a directory `JOBS/NAME-N-PID/` with `job.sh`, `command.sh`,
//! `stdout`, `stderr` and `exit`; the entrypoint runs `job.sh`, which enforces the time limit
//! with `timeout` (Ray jobs have none) and writes the exit status. The workspace must be on a
//! file system the Ray workers share. A link `JOBS/ray-ID` names the directory of job `ID`.

use super::{Executor, ExecutorError, JobLogs, JobSpec, JobStatus, safe_name};
use recloop_journal::JobEnd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Exit status `timeout` gives a command it stopped at the time limit.
const TIMED_OUT: &str = "124";

/// Submits jobs to a Ray cluster's job server.
pub struct RayExecutor {
    /// The head's dashboard address (e.g. `http://127.0.0.1:8265`).
    pub address: String,
    /// Where job directories are made.
    pub jobs_dir: PathBuf,
    /// Put first on the job's PATH (the directory with the `recloop` link).
    pub path_prefix: Option<PathBuf>,
    /// Variables exported to the job.
    pub env: Vec<(String, String)>,
    client: reqwest::blocking::Client,
    next: AtomicU64,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The status a Ray job status (`PENDING`, `RUNNING`, `STOPPED`, `SUCCEEDED`, `FAILED`) and the
/// job's exit file (`exit`: its command's status, when it returned) stand for.
pub fn status_of(status: &str, message: &str, exit: Option<&str>) -> JobStatus {
    let ended = |end: JobEnd| JobStatus::Ended {
        end,
        detail: format!(
            "Ray status {status}: {message}{}",
            exit.map(|c| format!(" (exit status {c})"))
                .unwrap_or_default()
        ),
    };
    match status {
        "PENDING" => JobStatus::Pending,
        "RUNNING" => JobStatus::Running,
        "SUCCEEDED" => ended(JobEnd::Succeeded),
        "STOPPED" => ended(JobEnd::Killed),
        _ if exit == Some(TIMED_OUT) => ended(JobEnd::TimedOut),
        // a driver that died without its command returning: the node went away
        _ if exit.is_none() && message.contains("node") => ended(JobEnd::Preempted),
        _ => ended(JobEnd::Failed),
    }
}

impl RayExecutor {
    /// Jobs on the Ray cluster at `address` (default `$RAY_ADDRESS`, else
    /// `http://127.0.0.1:8265`), with job directories in `jobs_dir` (created).
    pub fn new(address: Option<&str>, jobs_dir: PathBuf) -> Result<RayExecutor, ExecutorError> {
        let address = address
            .map(str::to_string)
            .or_else(|| std::env::var("RAY_ADDRESS").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8265".into())
            .trim_end_matches('/')
            .to_string();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ExecutorError::Unavailable(format!("HTTP client: {e}")))?;
        std::fs::create_dir_all(&jobs_dir).map_err(|source| ExecutorError::Io {
            path: jobs_dir.clone(),
            source,
        })?;
        Ok(RayExecutor {
            address,
            jobs_dir,
            path_prefix: None,
            env: Vec::new(),
            client,
            next: AtomicU64::new(1),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/jobs/{path}", self.address)
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("ray-{}", safe_name(id)))
    }

    fn http_err(&self, what: &str, e: reqwest::Error) -> ExecutorError {
        if e.is_connect() {
            ExecutorError::Unavailable(format!(
                "no Ray job server at {} ({e}); start a head with `ray start --head` or set \
                 [executor] address",
                self.address
            ))
        } else {
            ExecutorError::Command {
                command: what.into(),
                detail: e.to_string(),
            }
        }
    }

    /// GET or POST `path`; the JSON answer, [`ExecutorError::UnknownJob`] on 404.
    fn call(
        &self,
        post: Option<serde_json::Value>,
        path: &str,
        id: &str,
    ) -> Result<serde_json::Value, ExecutorError> {
        let what = format!(
            "{} {}",
            if post.is_some() { "POST" } else { "GET" },
            self.url(path)
        );
        let req = match post {
            Some(body) => self.client.post(self.url(path)).json(&body),
            None => self.client.get(self.url(path)),
        };
        let resp = req.send().map_err(|e| self.http_err(&what, e))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| self.http_err(&what, e))?;
        if status == reqwest::StatusCode::NOT_FOUND && !id.is_empty() {
            return Err(ExecutorError::UnknownJob(id.into()));
        }
        if !status.is_success() {
            return Err(ExecutorError::Command {
                command: what,
                detail: format!("{status}: {}", text.trim()),
            });
        }
        serde_json::from_str(&text).map_err(|e| ExecutorError::Command {
            command: what,
            detail: format!("answer is not JSON ({e}): {:?}", text.trim()),
        })
    }

    fn write(path: &Path, text: &str) -> Result<(), ExecutorError> {
        std::fs::write(path, text).map_err(|source| ExecutorError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Executor for RayExecutor {
    fn kind(&self) -> &'static str {
        "ray"
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
        let io = |source, path: &Path| ExecutorError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = dir.canonicalize().map_err(|e| io(e, &dir))?;
        let workdir = spec.dir.canonicalize().map_err(|e| io(e, &spec.dir))?;
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
            "cd {} || exit 97\ntimeout -k 10 {} /bin/sh {} > {} 2> {}\ncode=$?\n\
             echo \"$code\" > {}.tmp && mv {}.tmp {}\nexit \"$code\"\n",
            quote(&workdir.display().to_string()),
            spec.time_limit.as_secs().max(1),
            d("command.sh"),
            d("stdout"),
            d("stderr"),
            d("exit"),
            d("exit"),
            d("exit"),
        ));
        Self::write(&dir.join("job.sh"), &script)?;
        let mut body = serde_json::json!({
            "entrypoint": format!("/bin/sh {}", d("job.sh")),
            "entrypoint_num_cpus": spec.cpus.max(1),
            "metadata": { "recloop_job": name },
        });
        if spec.memory_mib > 0 {
            body["entrypoint_memory"] = serde_json::json!(spec.memory_mib.saturating_mul(1 << 20));
        }
        let answer = self.call(Some(body), "", "")?;
        let id = answer
            .get("submission_id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ExecutorError::Command {
                command: format!("POST {}", self.url("")),
                detail: format!("no submission_id in {answer}"),
            })?
            .to_string();
        let link = self.job_dir(&id);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).map_err(|e| io(e, &link))?;
        Ok(id)
    }

    fn status(&self, id: &str) -> Result<JobStatus, ExecutorError> {
        let v = self.call(None, id, id)?;
        let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
        let message = v.get("message").and_then(|s| s.as_str()).unwrap_or("");
        let exit = std::fs::read_to_string(self.job_dir(id).join("exit")).ok();
        Ok(status_of(status, message, exit.as_deref().map(str::trim)))
    }

    fn logs(&self, id: &str) -> Result<JobLogs, ExecutorError> {
        let dir = self.job_dir(id);
        if !dir.exists() {
            return Err(ExecutorError::UnknownJob(id.into()));
        }
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        Ok(JobLogs {
            stdout: read("stdout"),
            stderr: read("stderr"),
        })
    }

    fn cancel(&self, id: &str) -> Result<(), ExecutorError> {
        self.call(Some(serde_json::json!({})), &format!("{id}/stop"), id)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_statuses_map_to_job_ends() {
        let end = |s: &str, exit: Option<&str>| match status_of(s, "msg", exit) {
            JobStatus::Ended { end, .. } => Some(end),
            _ => None,
        };
        assert_eq!(end("SUCCEEDED", Some("0")), Some(JobEnd::Succeeded));
        assert_eq!(end("STOPPED", None), Some(JobEnd::Killed));
        assert_eq!(end("FAILED", Some("124")), Some(JobEnd::TimedOut));
        assert_eq!(end("FAILED", Some("3")), Some(JobEnd::Failed));
        assert_eq!(end("PENDING", None), None);
        assert_eq!(status_of("RUNNING", "", None), JobStatus::Running);
        match status_of("FAILED", "node died", None) {
            JobStatus::Ended { end, detail } => {
                assert_eq!(end, JobEnd::Preempted);
                assert!(detail.contains("node died"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
