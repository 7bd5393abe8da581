//! Evaluation jobs on a real Ray cluster through the Ray Jobs REST API: metrics come back, a job
//! stopped by someone else is journaled as killed and retried, a cancelled run stops its job.
//!
//! Needs `RECLOOP_TEST_RAY_ADDRESS` (a head's job server, e.g. `http://127.0.0.1:8265`;
//! `source .ci/ray.sh && start_ray` starts one); skipped with a message without it, failed
//! instead when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::evaluator::{EvalError, JobContext, OfflineEvaluator, Split};
use recloop_agents::executor::ray::RayExecutor;
use recloop_agents::executor::{CancelToken, Executor, ExecutorEvaluator, JobRunner, JobStatus};
use recloop_agents::record::Recorder;
use recloop_journal::{Event, EventFilter, JobEnd, Journal};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn address() -> Option<String> {
    let a = std::env::var("RECLOOP_TEST_RAY_ADDRESS").ok();
    common::require(
        a.is_some(),
        "a Ray head (RECLOOP_TEST_RAY_ADDRESS)",
        "run `source .ci/ray.sh && start_ray` and export RECLOOP_TEST_RAY_ADDRESS",
    )
    .then(|| a.unwrap_or_default())
}

fn manifest(offline_eval: &str) -> recloop_core::Manifest {
    recloop_core::Manifest::parse(
        &format!(
            "[project]\nname='x'\neditable=['a']\n[commands]\noffline_eval = '{offline_eval}'\n\
             [metrics]\nprimary={{name='m',direction='increase'}}\n\
             [executor]\nkind='ray'\ncpus=1\nmemory_mib=256\nmax_attempts=3\npoll_s=0.2\n"
        ),
        Path::new("recloop.toml"),
    )
    .unwrap()
}

fn setup(address: &str, dir: &Path) -> (Arc<RayExecutor>, Arc<JobRunner>, Recorder) {
    let x = Arc::new(RayExecutor::new(Some(address), dir.join("jobs")).unwrap());
    let runner = Arc::new(JobRunner::new(
        x.clone(),
        3,
        Duration::from_millis(200),
        CancelToken::new(),
    ));
    let rec = Recorder::new(Journal::for_workspace(dir, None).unwrap(), "run-1");
    (x, runner, rec)
}

fn ctx(rec: &Recorder) -> JobContext<'_> {
    JobContext {
        rec,
        iteration: 1,
        step: "develop/p-1/eval/offline/0".into(),
        proposal_id: Some("p-1".into()),
        job: "validation of candidate p-1 round 0 (offline)".into(),
    }
}

fn ended(rec: &Recorder) -> Vec<(String, u32, JobEnd, bool)> {
    rec.journal
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::JobEnded {
                job_id,
                attempt,
                end,
                retry,
                executor,
                ..
            } => {
                assert_eq!(executor, "ray");
                Some((job_id, attempt, end, retry))
            }
            _ => None,
        })
        .collect()
}

/// Wait until job `id` (the runner's only one in flight) runs on the cluster.
fn wait_running(x: &RayExecutor, runner: &JobRunner) -> String {
    let start = Instant::now();
    loop {
        if let Some(id) = runner.active_jobs().first()
            && x.status(id).unwrap() == JobStatus::Running
        {
            return id.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no job ran");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_ray_job_stopped_by_someone_else_is_journaled_and_retried() {
    let Some(address) = address() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (x, runner, rec) = setup(&address, tmp.path());
    // the first attempt sleeps long enough to be stopped; later ones print the metrics
    let ev = ExecutorEvaluator::new(
        manifest(
            "if [ -f started ]; then echo \"{\\\"m\\\": 0.75}\"; else touch started; sleep 60; fi",
        ),
        runner.clone(),
    );
    let (metrics, stopped) = std::thread::scope(|s| {
        let h = s.spawn(|| ev.evaluate_job(tmp.path(), Split::Validation, &ctx(&rec)));
        let id = wait_running(&x, &runner);
        // someone else stops it, through the job server, as `ray job stop` does
        let other = RayExecutor::new(Some(&address), tmp.path().join("other")).unwrap();
        other.cancel(&id).unwrap();
        (h.join().unwrap(), id)
    });
    assert_eq!(metrics.unwrap()["m"], 0.75);
    let ended = ended(&rec);
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(
        (&ended[0].0, ended[0].1, ended[0].2, ended[0].3),
        (&stopped, 1, JobEnd::Killed, true)
    );
    assert_eq!(
        (ended[1].1, ended[1].2, ended[1].3),
        (2, JobEnd::Succeeded, false)
    );
    assert_ne!(ended[1].0, stopped);
}

#[test]
fn cancelling_the_run_stops_its_ray_job() {
    let Some(address) = address() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (x, runner, rec) = setup(&address, tmp.path());
    let ev = ExecutorEvaluator::new(manifest("sleep 120; touch finished"), runner.clone());
    let (r, id) = std::thread::scope(|s| {
        let h = s.spawn(|| ev.evaluate_job(tmp.path(), Split::Validation, &ctx(&rec)));
        let id = wait_running(&x, &runner);
        runner.cancel_all();
        (h.join().unwrap(), id)
    });
    assert!(matches!(r, Err(EvalError::Cancelled)), "{r:?}");
    let start = Instant::now();
    loop {
        match x.status(&id).unwrap() {
            JobStatus::Ended { end, .. } => {
                assert_eq!(end, JobEnd::Killed, "Ray reports the job stopped");
                break;
            }
            _ => assert!(start.elapsed() < Duration::from_secs(30), "still running"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ended(&rec), vec![(id, 1, JobEnd::Cancelled, false)]);
    assert!(!tmp.path().join("finished").exists());
}

#[test]
fn a_ray_job_past_its_time_limit_is_a_time_out() {
    let Some(address) = address() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, rec) = setup(&address, tmp.path());
    let mut m = manifest("sleep 30");
    if let Some(x) = m.executor.as_mut() {
        x.time_limit_s = Some(1);
    }
    let x = Arc::new(RayExecutor::new(Some(&address), tmp.path().join("jobs")).unwrap());
    let runner = Arc::new(JobRunner::new(
        x,
        1,
        Duration::from_millis(200),
        CancelToken::new(),
    ));
    let r =
        ExecutorEvaluator::new(m, runner).evaluate_job(tmp.path(), Split::Validation, &ctx(&rec));
    match r {
        Err(EvalError::CommandFailed(msg)) => assert!(msg.contains("timed_out"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let e = ended(&rec);
    assert_eq!((e[0].1, e[0].2, e[0].3), (1, JobEnd::TimedOut, false));
}
