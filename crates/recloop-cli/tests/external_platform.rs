//! `[online] platform = "external"` end to end: `recloop run` drives a stand-in A/B platform
//! (`recloop sim standin`, serving the workspace's simulated world behind the manifest's start,
//! traffic and stop commands) and judges its experiments from the logs the platform writes:
//! Parquet files in one test, PostgreSQL tables in the other (aggregated inside the database),
//! where the run is also killed with SIGKILL in the middle of an experiment and resumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_journal::{Event, EventFilter, Journal};
use recloop_online::LogSource;
use recloop_online::standin::StandIn;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_recloop");

/// The stand-in platform's server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A synthetic MovieLens workspace whose online stage is the stand-in behind `[online.external]`,
/// reading its logs from `logs` (with `relations` naming PostgreSQL tables).
fn workspace(root: &Path, state: &Path, logs: &str, relations: &str, days: (u32, u32)) -> PathBuf {
    let ws = root.join("ws");
    let out = Command::new(BIN)
        .args(["init", "--example", "movielens", "--dataset", "synthetic"])
        .arg(&ws)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = ws.join("recloop.toml");
    let mut manifest = std::fs::read_to_string(&path).unwrap();
    // one generalist Brainstorm, and no coverage level that asks a person: the example's
    // personas and approvals are not what this test is about
    let personas = manifest.find("\n# Brainstorm personas").unwrap();
    manifest.truncate(personas + 1);
    let asks = "hard = 0.25, attention_min = 0.25, min = 0.20";
    assert!(
        manifest.contains(asks),
        "the example's coverage guardrail changed"
    );
    let text = manifest.replace(asks, "hard = 0.25, min = 0.20");
    let (min_days, max_days) = days;
    let online = format!(
        "platform = \"external\"\nramp = [0.05, 0.5]\nmin_days_per_step = {min_days}\nmax_days = {max_days}\nusers = 3000"
    );
    let old = "platform = \"simulator\"\nramp = [0.01, 0.05, 0.20, 0.50]";
    assert!(text.contains(old), "the example's [online] changed");
    let guardrail =
        "  { name = \"retention_d7\", direction = \"increase\", attention = 0.02, hard = 0.05 },\n";
    assert!(text.contains(guardrail), "the example's guardrails changed");
    let command = |c: &str| {
        format!(
            "{c} = \"{BIN} sim standin {c} --state {}\"",
            state.display()
        )
    };
    let text = text.replace(old, &online).replace(
        guardrail,
        &format!(
            "{guardrail}  {{ name = \"hide_rate\", direction = \"decrease\", attention = 0.05, hard = 0.15 }},\n"
        ),
    ) + format!(
        "\n[online.external]\n{}\n{}\n{}\nlogs = \"{logs}\"\n{relations}day_seconds = 0.6\nsettle_seconds = 0.3\n",
        command("start"),
        command("traffic"),
        command("stop"),
    )
    .as_str();
    std::fs::write(&path, text).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&ws)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["commit", "-qam", "online stage on the stand-in platform"]);
    ws
}

fn serve(ws: &Path, state: &Path, sinks: &[&str]) -> Server {
    let child = Command::new(BIN)
        .args([
            "sim",
            "standin",
            "serve",
            "--day-seconds",
            "0.6",
            "--for-seconds",
            "600",
        ])
        .arg("--state")
        .arg(state)
        .arg("--workspace")
        .arg(ws)
        .args(sinks)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Server(child)
}

/// `recloop run --iterations N` in `ws`, killed with its output in the panic if it has not ended
/// in ten minutes (a hang fails the test instead of stalling CI).
fn run(ws: &Path, iterations: &str) -> std::process::Output {
    // the output goes beside the workspace, not into its git tree
    let out_dir = ws.parent().unwrap();
    let log = |name: &str| std::fs::File::create(out_dir.join(name)).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--iterations", iterations])
        .current_dir(ws)
        .stdout(log("run.stdout"))
        .stderr(log("run.stderr"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "`recloop run` still running after 10 minutes\nstderr:\n{}",
                std::fs::read_to_string(out_dir.join("run.stderr")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(out_dir.join("run.stdout")).unwrap(),
        stderr: std::fs::read(out_dir.join("run.stderr")).unwrap(),
    }
}

fn events(ws: &Path, types: &[&str]) -> Vec<Event> {
    let j = Journal::for_workspace(ws, None).unwrap();
    j.events(&EventFilter {
        types: types.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
    .into_iter()
    .map(|e| e.event)
    .collect()
}

/// Each experiment the platform was asked to run: started once, stopped once, its shares in
/// ramp order (a share repeated once only where `repeat` names the experiment whose command a
/// kill interrupted).
fn check_calls(calls: &[String], experiments: &[String], repeat: Option<&str>) {
    for x in experiments {
        let mine: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .filter(|c| c.split(' ').nth(1) == Some(x))
            .collect();
        assert_eq!(
            mine.first(),
            Some(&format!("start {x}").as_str()),
            "{mine:?}"
        );
        assert_eq!(
            mine.iter().filter(|c| c.starts_with("start ")).count(),
            1,
            "{mine:?}"
        );
        assert_eq!(
            mine.iter().filter(|c| c.starts_with("stop ")).count(),
            1,
            "{mine:?}"
        );
        assert!(mine.last().unwrap().starts_with("stop "), "{mine:?}");
        let shares: Vec<f64> = mine
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("traffic {x} ")))
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(shares.first() == Some(&0.05), "{mine:?}");
        let repeats = shares.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{mine:?}");
        assert!(
            repeats == 0 || (repeats == 1 && repeat == Some(x.as_str())),
            "{mine:?}"
        );
    }
}

fn experiment_ids(ws: &Path) -> Vec<String> {
    events(ws, &["experiment_started"])
        .into_iter()
        .filter_map(|e| match e {
            Event::ExperimentStarted {
                experiment_id,
                platform,
                ..
            } => {
                assert_eq!(platform, "external");
                Some(experiment_id)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_drives_the_external_platform_and_judges_it_from_parquet_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("platform");
    let logs = state.join("logs");
    let ws = workspace(tmp.path(), &state, &logs.display().to_string(), "", (1, 4));
    let _server = serve(&ws, &state, &["--logs", &logs.display().to_string()]);
    let out = run(&ws, "2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = experiment_ids(&ws);
    assert!(!ids.is_empty(), "no candidate went online:\n{stdout}");
    let verdicts = events(&ws, &["verdict"]);
    for x in &ids {
        assert!(
            verdicts
                .iter()
                .any(|v| matches!(v, Event::Verdict { experiment_id: Some(e), .. } if e == x)),
            "no verdict for {x}"
        );
        let day0 = logs
            .join("events")
            .join(format!("experiment={x}"))
            .join("day=0.parquet");
        assert!(day0.is_file(), "{} missing", day0.display());
    }
    check_calls(&StandIn::new(&state).calls().unwrap(), &ids, None);
    // the final comparison is off by default on a platform with real traffic
    assert!(!stdout.contains("simulated"), "{stdout}");
}

/// PostgreSQL (`RECLOOP_TEST_POSTGRES_URL`; skipped with a message when unset, except under CI).
#[test]
fn a_killed_run_resumes_its_external_experiment_from_postgres_logs() {
    let Some(url) = common::pg_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("platform");
    let files = state.join("logs");
    let schema = common::fresh_schema("xlogs");
    let relations = format!("exposures = \"{schema}.exposures\"\nevents = \"{schema}.events\"\n");
    let ws = workspace(tmp.path(), &state, &url, &relations, (2, 6));
    // the platform writes the same logs to both sinks: the database's aggregate is checked
    // against the files' below
    let _server = serve(
        &ws,
        &state,
        &[
            "--postgres",
            &url,
            "--postgres-schema",
            &schema,
            "--logs",
            &files.display().to_string(),
        ],
    );
    // two iterations: the first candidate may be stopped offline (the brain screens model
    // families, and one fails the example's coverage guardrail); the killed one is the second
    let mut first = Command::new(BIN)
        .args(["run", "--iterations", "2"])
        .current_dir(&ws)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kill it once the first experiment is at its second step
    let standin = StandIn::new(&state);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "the experiment never reached 50 %"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        if standin.calls().unwrap().iter().any(|c| c.ends_with(" 0.5")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before = standin.calls().unwrap();
    assert!(!before.iter().any(|c| c.starts_with("stop ")), "{before:?}");
    // the kill may land while `traffic 0.5` runs: then the state still holds it as pending and
    // the resumed run must issue it again (it cannot know whether it took effect)
    let killed_id = before
        .last()
        .and_then(|c| c.split(' ').nth(1))
        .unwrap()
        .to_string();
    let state_file = ws
        .join(".recloop/external")
        .join(format!("{killed_id}.json"));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let interrupted = !state["pending"].is_null();
    if interrupted {
        assert_eq!(state["pending"]["key"], "traffic", "{state}");
        assert_eq!(state["pending"]["share"], 0.5, "{state}");
    }
    eprintln!("killed with a pending command: {interrupted}");

    let out = run(&ws, "2");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !events(&ws, &["run_resumed"]).is_empty(),
        "the second run did not resume"
    );
    let ids = experiment_ids(&ws);
    let calls = standin.calls().unwrap();
    check_calls(&calls, &ids, interrupted.then_some(killed_id.as_str()));
    // the resumed run neither restarted the killed experiment nor touched its live share: its
    // next call is its stop
    assert_eq!(calls[..before.len()], before[..]);
    let killed = &ids[0];
    assert_eq!(killed, &killed_id);
    let after: Vec<&String> = calls[before.len()..]
        .iter()
        .filter(|c| c.split(' ').nth(1) == Some(killed))
        .collect();
    if interrupted {
        // the interrupted share once more (the same share: idempotent), then the stop
        assert_eq!(after.len(), 2, "{calls:?}");
        assert_eq!(after[0], &format!("traffic {killed} 0.5"), "{calls:?}");
    } else {
        assert_eq!(after.len(), 1, "{calls:?}");
    }
    assert!(
        after
            .last()
            .unwrap()
            .starts_with(&format!("stop {killed} ")),
        "{calls:?}"
    );
    // each ramp step is journaled once, although the resumed run replayed the days
    let ramps: Vec<Event> = events(&ws, &["ramp_advanced"])
        .into_iter()
        .filter(
            |e| matches!(e, Event::RampAdvanced { experiment_id, .. } if experiment_id == killed),
        )
        .collect();
    assert_eq!(ramps.len(), 1, "{ramps:?}");
    let verdicts = events(&ws, &["verdict"]);
    assert!(
        verdicts
            .iter()
            .any(|v| matches!(v, Event::Verdict { experiment_id: Some(e), .. } if e == &ids[0]))
    );

    // the aggregate computed by PostgreSQL equals the one computed from the same rows in files
    let metrics = recloop_online::sim_log_metrics();
    let pg = LogSource::Postgres {
        url: url.clone(),
        exposures: format!("{schema}.exposures"),
        events: format!("{schema}.events"),
    };
    let fs = LogSource::Files(files.clone());
    for day in [0, 3] {
        let a = pg.day_report(&ids[0], day, &metrics).unwrap();
        let b = fs.day_report(&ids[0], day, &metrics).unwrap();
        assert_eq!(a.units, b.units, "day {day}");
        assert!(a.units[0] > 0 && a.units[1] > 0, "day {day}: {:?}", a.units);
        for (name, arms) in &b.metrics {
            for (x, y) in a.metrics[name].iter().zip(arms) {
                assert_eq!((x.n, x.ratio), (y.n, y.ratio), "{name} day {day}");
                for (p, q) in [
                    (x.sum, y.sum),
                    (x.sum_sq, y.sum_sq),
                    (x.den, y.den),
                    (x.den_sq, y.den_sq),
                    (x.cross, y.cross),
                ] {
                    assert!(
                        (p - q).abs() <= 1e-9 * q.abs().max(1.0),
                        "{name} day {day}: {p} vs {q}"
                    );
                }
            }
        }
    }
}
