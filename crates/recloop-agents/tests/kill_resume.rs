//! Kill at a random point and resume: a run in a child process is killed with SIGKILL at random
//! moments (twice), then `run` resumes it; the final journal equals that of an uninterrupted run
//! with the same seed. The kill moments are printed with the seed that drew them
//! (`RECLOOP_KILL_SEED=N` replays them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rand::{Rng, SeedableRng};
use recloop_agents::orchestrator::{RunOptions, run};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RECLOOP_KILL_TEST_WORKSPACE";

fn opts() -> RunOptions {
    RunOptions {
        iterations: Some(3),
        seed: Some(11),
        approvals: common::approving(),
        ..Default::default()
    }
}

/// The child: runs the loop on the workspace named by the environment (does nothing otherwise).
#[test]
#[ignore = "run by killed_run_resumes_to_the_same_journal as its child process"]
fn kill_child() {
    let Ok(ws) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _ = run(Path::new(&ws), &opts());
}

fn finished(ws: &Path) -> bool {
    common::journal(ws)
        .events(&recloop_journal::EventFilter::default())
        .unwrap()
        .iter()
        .any(|e| matches!(e.event, recloop_journal::Event::RunFinished { .. }))
}

#[test]
fn killed_run_resumes_to_the_same_journal() {
    let a = common::synthetic_workspace();
    let t0 = Instant::now();
    run(a.path(), &opts()).unwrap();
    let full = t0.elapsed();
    let reference = common::canonical(a.path());

    let seed = std::env::var("RECLOOP_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    // A child that finishes before its kill moment leaves nothing to resume: start over on a
    // fresh workspace (a later child on a finished workspace would begin a second run).
    let mut attempts = 0;
    let b = loop {
        attempts += 1;
        assert!(
            attempts <= 4,
            "kill seed {seed}: the child always finished first"
        );
        let b = common::synthetic_workspace();
        let mut kills = 0;
        for round in 0..2 {
            if finished(b.path()) {
                break;
            }
            // A random moment within the (remaining) run, after the child's start-up.
            let delay = full.mul_f64(rng.random_range(0.05..0.8)) + Duration::from_millis(50);
            let mut child = Command::new(&exe)
                .args(["--exact", "kill_child", "--ignored", "--test-threads=1"])
                .env(CHILD_ENV, b.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let start = Instant::now();
            let mut exited = false;
            while start.elapsed() < delay {
                if child.try_wait().unwrap().is_some() {
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !exited {
                child.kill().unwrap(); // SIGKILL: no destructor, no flush, no cleanup
                kills += 1;
            }
            child.wait().unwrap();
            println!(
                "kill seed {seed}: attempt {attempts} round {round} {} after {delay:?}; finished = {}",
                if exited { "exited by itself" } else { "killed" },
                finished(b.path())
            );
        }
        if kills >= 1 {
            break b;
        }
    };
    if !finished(b.path()) {
        let s = run(b.path(), &opts()).unwrap();
        assert_eq!(s.run_id, "run-1", "kill seed {seed}");
    }
    let resumed = common::canonical(b.path());
    for (x, y) in reference.iter().zip(&resumed) {
        assert_eq!(x, y, "kill seed {seed}");
    }
    assert_eq!(reference.len(), resumed.len(), "kill seed {seed}");
}
