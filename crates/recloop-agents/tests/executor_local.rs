//! The job runner on the local executor: failures and time-outs are journaled and retried within
//! the bound, a cancelled run cancels its job, a resumed run adopts (or replaces) what an earlier
//! process journaled. Runs anywhere (the unconfined backend; the sandbox itself is tested in
//! recloop-sandbox).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_agents::evaluator::{EvalError, JobContext, OfflineEvaluator, Split};
use recloop_agents::executor::local::LocalExecutor;
use recloop_agents::executor::{
    CancelToken, Executor, ExecutorEvaluator, JobError, JobRunner, JobSpec,
};
use recloop_agents::record::Recorder;
use recloop_journal::{Event, EventFilter, JobEnd, Journal, NewEvent};
use recloop_sandbox::{Backend, Sandbox};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn executor() -> Arc<dyn Executor> {
    Arc::new(LocalExecutor::new(Sandbox::new(
        Backend::Unconfined,
        Duration::from_secs(60),
        0,
    )))
}

fn runner(attempts: u32) -> JobRunner {
    JobRunner::new(
        executor(),
        attempts,
        Duration::from_millis(20),
        CancelToken::new(),
    )
}

fn spec(dir: &Path, command: &str, limit: Duration) -> JobSpec {
    JobSpec {
        name: "test".into(),
        dir: dir.to_path_buf(),
        command: command.into(),
        time_limit: limit,
        cpus: 1,
        memory_mib: 0,
    }
}

fn recorder(dir: &Path) -> Recorder {
    Recorder::new(Journal::for_workspace(dir, None).unwrap(), "run-1")
}

fn ctx<'a>(rec: &'a Recorder, step: &str) -> JobContext<'a> {
    JobContext {
        rec,
        iteration: 1,
        step: step.into(),
        proposal_id: Some("p-1".into()),
        job: "validation of candidate p-1".into(),
    }
}

/// (attempt, end, retry) of every `job_ended`, and the job ids of every `job_submitted`.
fn journaled(rec: &Recorder) -> (Vec<(u32, JobEnd, bool)>, Vec<String>) {
    let events = rec.journal.events(&EventFilter::default()).unwrap();
    let mut ended = Vec::new();
    let mut submitted = Vec::new();
    for e in events {
        match e.event {
            Event::JobEnded {
                attempt,
                end,
                retry,
                proposal_id,
                ..
            } => {
                assert_eq!(proposal_id.as_deref(), Some("p-1"));
                ended.push((attempt, end, retry));
            }
            Event::JobSubmitted { job_id, .. } => submitted.push(job_id),
            _ => {}
        }
    }
    (ended, submitted)
}

#[test]
fn a_failed_attempt_is_journaled_and_retried_until_one_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    // fails on the first two attempts, succeeds on the third
    let cmd = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; \
               if [ $n -lt 3 ]; then echo boom-$n >&2; exit 3; fi; echo '{\"m\": 0.5}'";
    let logs = runner(3)
        .run(
            &spec(tmp.path(), cmd, Duration::from_secs(30)),
            Some(&ctx(&rec, "s")),
        )
        .unwrap();
    assert!(logs.stdout.contains("0.5"), "{logs:?}");
    let (ended, submitted) = journaled(&rec);
    assert_eq!(
        ended,
        vec![
            (1, JobEnd::Failed, true),
            (2, JobEnd::Failed, true),
            (3, JobEnd::Succeeded, false)
        ]
    );
    assert_eq!(submitted.len(), 3);
    let events = rec.journal.events(&EventFilter::default()).unwrap();
    let detail = events
        .iter()
        .find_map(|e| match &e.event {
            Event::JobEnded {
                attempt: 2, detail, ..
            } => Some(detail.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        detail.contains("exit status 3") && detail.contains("boom-2"),
        "{detail}"
    );
}

#[test]
fn the_bound_holds_and_time_outs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    let start = Instant::now();
    let err = runner(2)
        .run(
            &spec(tmp.path(), "sleep 20", Duration::from_millis(300)),
            Some(&ctx(&rec, "s")),
        )
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    match &err {
        JobError::Exhausted { attempts, end, .. } => {
            assert_eq!((*attempts, *end), (2, "timed_out"), "{err}");
        }
        other => panic!("{other}"),
    }
    let (ended, _) = journaled(&rec);
    assert_eq!(
        ended,
        vec![(1, JobEnd::TimedOut, true), (2, JobEnd::TimedOut, false)]
    );
}

#[test]
fn cancelling_the_run_cancels_the_job_in_flight_and_nothing_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    let r = Arc::new(runner(3));
    let start = Instant::now();
    let err = std::thread::scope(|s| {
        let h = s.spawn(|| {
            r.run(
                &spec(
                    tmp.path(),
                    "sleep 30; touch finished",
                    Duration::from_secs(60),
                ),
                Some(&ctx(&rec, "s")),
            )
        });
        while r.active_jobs().is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        r.cancel_all();
        h.join().unwrap().unwrap_err()
    });
    assert!(matches!(err, JobError::Cancelled), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!tmp.path().join("finished").exists());
    let (ended, submitted) = journaled(&rec);
    assert_eq!(ended, vec![(1, JobEnd::Cancelled, false)]);
    assert_eq!(submitted.len(), 1);
    // a cancelled token refuses new jobs outright
    let again = r.run(&spec(tmp.path(), "true", Duration::from_secs(5)), None);
    assert!(matches!(again, Err(JobError::Cancelled)));
}

#[test]
fn a_resumed_run_replaces_a_job_the_executor_lost_and_reuses_journaled_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    // an earlier process journaled attempt 1 as failed and submitted attempt 2, then died
    for (step, event) in [
        (
            "s/job/1/submitted",
            Event::JobSubmitted {
                proposal_id: Some("p-1".into()),
                job: "j".into(),
                executor: "local".into(),
                job_id: "local-91".into(),
                attempt: 1,
            },
        ),
        (
            "s/job/1/ended",
            Event::JobEnded {
                proposal_id: Some("p-1".into()),
                job: "j".into(),
                executor: "local".into(),
                job_id: "local-91".into(),
                attempt: 1,
                end: JobEnd::Preempted,
                detail: "node failed".into(),
                retry: true,
            },
        ),
        (
            "s/job/2/submitted",
            Event::JobSubmitted {
                proposal_id: Some("p-1".into()),
                job: "j".into(),
                executor: "local".into(),
                job_id: "local-92".into(),
                attempt: 2,
            },
        ),
    ] {
        rec.journal
            .append(NewEvent::new("run-1", 1, event).key(rec.key(1, step)))
            .unwrap();
    }
    let logs = runner(3)
        .run(
            &spec(tmp.path(), "echo '{\"m\": 1}'", Duration::from_secs(30)),
            Some(&ctx(&rec, "s")),
        )
        .unwrap();
    assert!(logs.stdout.contains("\"m\""));
    let (ended, submitted) = journaled(&rec);
    // attempt 1 is not rerun, attempt 2's job is unknown to this process (lost), attempt 3 runs
    assert_eq!(
        ended,
        vec![
            (1, JobEnd::Preempted, true),
            (2, JobEnd::Lost, true),
            (3, JobEnd::Succeeded, false)
        ]
    );
    assert_eq!(submitted.len(), 3);
    // and once attempt 3 is journaled, running the step again submits nothing new
    runner(3)
        .run(
            &spec(tmp.path(), "echo '{\"m\": 1}'", Duration::from_secs(30)),
            Some(&ctx(&rec, "s")),
        )
        .unwrap_err();
    assert_eq!(journaled(&rec).1.len(), 3, "no new submission");
}

#[test]
fn the_executor_evaluator_runs_the_manifest_commands_as_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    let manifest = recloop_core::Manifest::parse(
        "[project]\nname='x'\neditable=['a']\n\
         [commands]\noffline_eval = \"echo '{\\\"m\\\": 0.25, \\\"k\\\": null}'\"\n\
         holdout_eval = 'exit 4'\n\
         [metrics]\nprimary={name='m',direction='increase'}\n\
         [executor]\nkind='local'\nmax_attempts=2\n",
        Path::new("recloop.toml"),
    )
    .unwrap();
    let ev = ExecutorEvaluator::new(manifest, Arc::new(runner(2)));
    let m = ev
        .evaluate_job(tmp.path(), Split::Validation, &ctx(&rec, "v"))
        .unwrap();
    assert_eq!(m["m"], 0.25);
    assert!(m["k"].is_nan());
    match ev.evaluate_job(tmp.path(), Split::Holdout, &ctx(&rec, "h")) {
        Err(EvalError::CommandFailed(msg)) => {
            assert!(
                msg.contains("2 attempt(s)") && msg.contains("failed"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
    let (ended, _) = journaled(&rec);
    assert_eq!(
        ended,
        vec![
            (1, JobEnd::Succeeded, false),
            (1, JobEnd::Failed, true),
            (2, JobEnd::Failed, false)
        ]
    );
}
