//! `recloop run` with `[executor]` on real clusters: Slurm (single node in CI, started by
//! `.ci/slurm.sh`) — every evaluation job goes through `sbatch`, a job killed by `scancel` is
//! journaled and retried, Ctrl-C cancels the run's jobs, a run killed with `kill -9` and resumed
//! adopts its job instead of submitting it again — and Ray (a local head started by `.ci/ray.sh`).
//!
//! Slurm: needs a cluster that `sbatch`/`scontrol` reach, with a partition named by
//! `RECLOOP_TEST_SLURM_PARTITION` (default `debug`). Ray: needs `RECLOOP_TEST_RAY_ADDRESS`. Each
//! is skipped with a message without it, and failed instead when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_journal::{Event, EventFilter, EventRecord, JobEnd, Journal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn partition() -> String {
    std::env::var("RECLOOP_TEST_SLURM_PARTITION").unwrap_or_else(|_| "debug".into())
}

/// Whether a Slurm controller answers and the partition is up; otherwise skip (or fail under CI).
fn slurm_ready(test: &str) -> bool {
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
        && Command::new("sinfo")
            .args(["-h", "-p", &partition(), "-o", "%a"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("up"));
    if up {
        return true;
    }
    let msg = format!(
        "{test}: SKIPPED: no Slurm cluster with an `up` partition {:?} answers here; as root, \
         `source .ci/slurm.sh && start_slurm` starts a single-node one",
        partition()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (CI is set, so the Slurm tests must run)"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
    false
}

fn slurm_section() -> String {
    format!(
        "[executor]\nkind = \"slurm\"\npartition = \"{}\"\ncpus = 1\nmemory_mib = 512\n\
         time_limit_s = 600\nmax_attempts = 3\npoll_s = 0.2\n",
        partition()
    )
}

/// A synthetic workspace whose validation command first runs `prefix`, with `[executor]` slurm.
fn workspace(root: &Path, prefix: &str) -> PathBuf {
    workspace_with(root, prefix, &slurm_section())
}

/// A synthetic workspace whose validation command first runs `prefix`, with `section` appended.
fn workspace_with(root: &Path, prefix: &str, section: &str) -> PathBuf {
    let ws = root.join("ws");
    recloop_agents::example::synthetic_example(&ws, 300, 200).unwrap();
    let path = ws.join("recloop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = "offline_eval = \"recloop rec eval";
    assert!(text.contains(old), "{text}");
    let text = text.replace(old, &format!("offline_eval = \"{prefix}; recloop rec eval"));
    let text = format!("{text}\n{section}");
    std::fs::write(&path, text).unwrap();
    recloop_agents::git::git(&ws, &["commit", "-qam", "evaluate on slurm"]).unwrap();
    ws.canonicalize().unwrap()
}

fn recloop(ws: &Path, data: &Path, iterations: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recloop"));
    c.args([
        "run",
        "--workspace",
        ws.to_str().unwrap(),
        "--iterations",
        iterations,
        "--unattended",
        "reject",
        "--json",
    ])
    .env("RECLOOP_DATA", data)
    .stdin(Stdio::null());
    c
}

/// Running Slurm jobs (id, name, work dir) whose work dir lies in `ws`.
fn running_jobs(ws: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "RUNNING", "-o", "%i|%j|%Z"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let (id, name, dir) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(ws.to_str()?)
                .then(|| (id.trim().to_string(), name.to_string(), dir.to_string()))
        })
        .collect()
}

fn job_state(id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("JobState="))
        .unwrap_or("")
        .to_string()
}

fn events(ws: &Path) -> Vec<EventRecord> {
    Journal::for_workspace(ws, None)
        .unwrap()
        .events(&EventFilter::default())
        .unwrap()
}

fn metrics_of(stdout: &str) -> serde_json::Map<String, serde_json::Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_else(|| panic!("no metrics in {stdout:?}"))
}

#[test]
fn the_loop_evaluates_on_slurm_and_retries_a_job_killed_by_scancel() {
    if !slurm_ready("the_loop_evaluates_on_slurm_and_retries_a_job_killed_by_scancel") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), "sleep 2");
    // kill the first candidate validation job that runs (not production's), once, with scancel
    let done = AtomicBool::new(false);
    let (out, killed) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if let Some((id, _, _)) = running_jobs(&ws).into_iter().find(|(_, name, dir)| {
                    name == "recloop-validation" && !dir.ends_with("/production")
                }) {
                    let st = Command::new("scancel").arg(&id).status().unwrap();
                    assert!(st.success());
                    return Some(id);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        });
        let out = recloop(&ws, &tmp.path().join("data"), "2")
            .output()
            .unwrap();
        done.store(true, Ordering::SeqCst);
        (out, watcher.join().unwrap())
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "recloop run failed: {stderr}");
    let killed = killed.expect("no candidate job was seen running");
    assert_eq!(job_state(&killed), "CANCELLED", "scancel took effect");

    let events = events(&ws);
    let jobs_dir = ws.join(".recloop").join("jobs");
    // every evaluation went through Slurm and printed the metrics recloop used
    let mut submitted = 0;
    let mut candidate_jobs = 0;
    for e in &events {
        if let Event::JobSubmitted {
            executor,
            job_id,
            proposal_id,
            ..
        } = &e.event
        {
            assert_eq!(executor, "slurm");
            assert!(job_id.chars().all(|c| c.is_ascii_digit()), "{job_id}");
            assert!(
                jobs_dir
                    .join(format!("slurm-{job_id}"))
                    .join("job.sh")
                    .exists()
            );
            submitted += 1;
            candidate_jobs += usize::from(proposal_id.is_some());
        }
    }
    assert!(
        submitted >= 3 && candidate_jobs >= 2,
        "{submitted} jobs, {candidate_jobs} of candidates"
    );
    // the killed job: journaled as killed with a retry, and the retry succeeded
    let (key, step_job) = events
        .iter()
        .find_map(|e| match &e.event {
            Event::JobEnded {
                job_id,
                end,
                retry,
                attempt,
                ..
            } if *job_id == killed => {
                assert_eq!((*end, *retry, *attempt), (JobEnd::Killed, true, 1));
                Some((e.idempotency_key.clone().unwrap(), job_id.clone()))
            }
            _ => None,
        })
        .expect("the scancelled job is journaled");
    let retry_key = key.replace("/job/1/ended", "/job/2/ended");
    let retried = events
        .iter()
        .find(|e| e.idempotency_key.as_deref() == Some(retry_key.as_str()))
        .expect("a second attempt of the killed job");
    let Event::JobEnded {
        end,
        job_id: retry_id,
        ..
    } = &retried.event
    else {
        panic!("{retried:?}")
    };
    assert_eq!(*end, JobEnd::Succeeded);
    assert_ne!(retry_id, &step_job);
    // the scancel interrupted the command: no exit file, or (when the job's shell outlived its
    // command by a moment and recorded it) a non-zero status
    let exit = jobs_dir.join(format!("slurm-{killed}")).join("exit");
    if let Ok(code) = std::fs::read_to_string(&exit) {
        assert_ne!(code.trim(), "0", "the killed job's command had finished");
    }
    // a candidate's recorded offline metrics are the ones its Slurm job printed
    let mut matched = 0;
    for e in &events {
        let Event::CandidateReady { candidate } = &e.event else {
            continue;
        };
        let offline_job = events
            .iter()
            .find_map(|x| match &x.event {
                Event::JobEnded {
                    proposal_id: Some(p),
                    job,
                    end: JobEnd::Succeeded,
                    job_id,
                    ..
                } if *p == candidate.proposal && job.ends_with("(offline)") => Some(job_id.clone()),
                _ => None,
            })
            .expect("the candidate's offline job");
        let stdout =
            std::fs::read_to_string(jobs_dir.join(format!("slurm-{offline_job}")).join("stdout"))
                .unwrap();
        let m = metrics_of(&stdout);
        let printed = m["ndcg@10"].as_f64().unwrap();
        assert!((printed - candidate.offline["ndcg@10"]).abs() < 1e-12);
        matched += 1;
    }
    assert!(matched >= 1, "no candidate was ready");
    // job latency: submit → end, minus the command's own 2 s
    let mut lat: Vec<f64> = Vec::new();
    for e in &events {
        if let Event::JobEnded { job_id, end, .. } = &e.event
            && *end == JobEnd::Succeeded
            && let Some(s) = events
                .iter()
                .find(|x| matches!(&x.event, Event::JobSubmitted { job_id: j, .. } if j == job_id))
        {
            lat.push((e.timestamp - s.timestamp).num_milliseconds() as f64 / 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{} Slurm jobs; submit→end of succeeded jobs (2 s sleep + `recloop rec eval`): median {:.2} s, min {:.2} s, max {:.2} s",
        submitted,
        lat[lat.len() / 2],
        lat[0],
        lat[lat.len() - 1]
    );
}

#[test]
fn ctrl_c_cancels_the_runs_slurm_jobs() {
    if !slurm_ready("ctrl_c_cancels_the_runs_slurm_jobs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), "sleep 300");
    let mut child = recloop(&ws, &tmp.path().join("data"), "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let job = loop {
        if let Some((id, _, _)) = running_jobs(&ws).into_iter().next() {
            break id;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no job started");
        assert!(child.try_wait().unwrap().is_none(), "recloop exited early");
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "recloop did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    // the job is gone from the cluster, cancelled
    let t = Instant::now();
    while job_state(&job) != "CANCELLED" && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(job_state(&job), "CANCELLED");
    assert!(running_jobs(&ws).is_empty());
    let events = events(&ws);
    let ended: Vec<(JobEnd, bool)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::JobEnded {
                job_id, end, retry, ..
            } if *job_id == job => Some((*end, *retry)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![(JobEnd::Cancelled, false)]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.event, Event::RunFinished { .. })),
        "a cancelled run stays resumable"
    );
    println!(
        "SIGINT → recloop exited in {:.2} s with job {job} cancelled",
        sent.elapsed().as_secs_f64()
    );
}

#[test]
fn a_resumed_run_adopts_the_slurm_job_of_a_run_killed_with_sigkill() {
    if !slurm_ready("a_resumed_run_adopts_the_slurm_job_of_a_run_killed_with_sigkill") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), "sleep 4");
    let data = tmp.path().join("data");
    let mut child = recloop(&ws, &data, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let job = loop {
        if let Some((id, _, _)) = running_jobs(&ws).into_iter().next() {
            break id;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no job started");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap(); // SIGKILL: no chance to cancel anything
    child.wait().unwrap();
    assert_eq!(job_state(&job), "RUNNING", "the job outlives recloop");
    let out = recloop(&ws, &data, "1").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&ws);
    let attempts: Vec<(u32, String, Option<JobEnd>)> = events
        .iter()
        .filter(|e| {
            e.idempotency_key
                .as_deref()
                .is_some_and(|k| k.contains("/start/eval/job/"))
        })
        .map(|e| match &e.event {
            Event::JobSubmitted {
                attempt, job_id, ..
            } => (*attempt, job_id.clone(), None),
            Event::JobEnded {
                attempt,
                job_id,
                end,
                ..
            } => (*attempt, job_id.clone(), Some(*end)),
            other => panic!("{other:?}"),
        })
        .collect();
    // one submission, adopted by the resumed run and ended there
    assert_eq!(
        attempts,
        vec![
            (1, job.clone(), None),
            (1, job.clone(), Some(JobEnd::Succeeded))
        ]
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Event::RunResumed { .. }))
    );
}

#[test]
fn the_loop_evaluates_on_ray() {
    let Ok(address) = std::env::var("RECLOOP_TEST_RAY_ADDRESS") else {
        let msg = "the_loop_evaluates_on_ray: SKIPPED: RECLOOP_TEST_RAY_ADDRESS is not set; \
                   `source .ci/ray.sh && start_ray` starts a Ray head and sets it";
        assert!(
            std::env::var_os("CI").is_none(),
            "{msg} (CI is set, so the Ray tests must run)"
        );
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{msg}");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let section = format!(
        "[executor]\nkind = \"ray\"\naddress = \"{address}\"\ncpus = 1\nmemory_mib = 512\n\
         max_attempts = 2\npoll_s = 0.2\n"
    );
    let ws = workspace_with(tmp.path(), "true", &section);
    let out = recloop(&ws, &tmp.path().join("data"), "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&ws);
    let jobs_dir = ws.join(".recloop").join("jobs");
    let mut candidates = 0;
    for e in &events {
        if let Event::JobEnded {
            executor,
            job_id,
            end,
            proposal_id,
            ..
        } = &e.event
        {
            assert_eq!((executor.as_str(), *end), ("ray", JobEnd::Succeeded));
            let stdout =
                std::fs::read_to_string(jobs_dir.join(format!("ray-{job_id}")).join("stdout"))
                    .unwrap();
            assert!(metrics_of(&stdout)["ndcg@10"].is_number());
            candidates += usize::from(proposal_id.is_some());
        }
    }
    assert!(candidates >= 1, "no candidate job ran on Ray");
}
