//! The `logs` adapter: simulated logs written through recloop-logs, replayed and judged; malformed
//! logs give clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_core::{Manifest, Verdict};
use recloop_logs::LogFormat;
use recloop_online::{
    Ack, Adapter, ExperimentSettings, LogsAdapter, SimAdapter, run_with_adapter, sim_log_metrics,
};
use recloop_sim::logs::write_logs;
use recloop_sim::{World, clickbait_only_policy, relevance_policy};
use std::path::Path;
use std::sync::Arc;

fn manifest() -> Manifest {
    let text = r#"
[project]
name = "logs"
editable = ["pipeline.toml"]
[metrics]
primary = { name = "watch_time_per_user", direction = "increase" }
guardrails = [{ name = "hide_rate", direction = "decrease", attention = 0.05, hard = 0.15 }]
[online]
platform = "logs"
logs = "logs"
ramp = [0.5]
min_days_per_step = 1
max_days = 5
"#;
    Manifest::parse(text, Path::new("recloop.toml")).unwrap()
}

fn simulate(dir: &Path, format: LogFormat) {
    let world = Arc::new(World::synthetic(300, 400, 4).unwrap());
    let control = relevance_policy(&world, 1.0, 1);
    let treatment = clickbait_only_policy(&world);
    let mut sim = SimAdapter::new(world, 3000, 5, &control, &treatment)
        .unwrap()
        .with_logs();
    for day in 0..5 {
        sim.run_day(day, 0.5).unwrap();
    }
    let logs = sim.take_logs();
    assert!(!logs.is_empty());
    write_logs(&logs, dir, "exp-1", format).unwrap();
}

fn judge(dir: &Path) -> Verdict {
    let mut adapter =
        LogsAdapter::open(dir, "exp-1", "control", "treatment", sim_log_metrics()).unwrap();
    assert_eq!(adapter.days_available(), Some(5));
    run_with_adapter(
        &manifest(),
        &mut adapter,
        &ExperimentSettings::default(),
        &mut |_| Ack::Continue,
    )
    .unwrap()
    .verdict
}

#[test]
fn parquet_logs_of_a_harmful_candidate_are_judged_discard() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), LogFormat::Parquet);
    let v = judge(dir.path());
    assert_eq!(v.decision, recloop_core::Decision::Discard, "{v:?}");
    let watch = v
        .effects
        .iter()
        .find(|e| e.metric == "watch_time_per_user")
        .unwrap();
    assert!(watch.effect < 0.0);
}

#[test]
fn csv_logs_work_too_and_malformed_logs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), LogFormat::Csv);
    let v = judge(dir.path());
    assert_eq!(v.decision, recloop_core::Decision::Discard);
    // unknown experiment
    let err = LogsAdapter::open(
        dir.path(),
        "nope",
        "control",
        "treatment",
        sim_log_metrics(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("no exposures for experiment `nope`"),
        "{err}"
    );
    // a corrupted events file names the file
    let events = dir.path().join("events.csv");
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("12,not-a-time,0,clicks,1\n");
    std::fs::write(&events, text).unwrap();
    let mut adapter = LogsAdapter::open(
        dir.path(),
        "exp-1",
        "control",
        "treatment",
        sim_log_metrics(),
    )
    .unwrap();
    let err = adapter.run_day(4, 0.5).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("events.csv") || msg.contains("not-a-time"),
        "{msg}"
    );
    // a missing directory
    let err = LogsAdapter::open(
        Path::new("/nonexistent/logs"),
        "e",
        "a",
        "b",
        sim_log_metrics(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("/nonexistent/logs"), "{err}");
}

#[test]
fn truncated_parquet_and_missing_metrics_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), LogFormat::Parquet);
    // a metric the logs cannot provide, required by the manifest
    let mut m = manifest();
    m.metrics.primary.name = "retention_d30".into();
    let mut adapter = LogsAdapter::open(
        dir.path(),
        "exp-1",
        "control",
        "treatment",
        sim_log_metrics(),
    )
    .unwrap();
    let err = run_with_adapter(
        &m,
        &mut adapter,
        &ExperimentSettings::default(),
        &mut |_| Ack::Continue,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("retention_d30") && msg.contains("watch_time_per_user"),
        "{msg}"
    );
    // a truncated events file names the file
    let events = dir.path().join("events.parquet");
    let bytes = std::fs::read(&events).unwrap();
    std::fs::write(&events, &bytes[..bytes.len() / 2]).unwrap();
    let err = LogsAdapter::open(
        dir.path(),
        "exp-1",
        "control",
        "treatment",
        sim_log_metrics(),
    )
    .and_then(|mut a| a.run_day(0, 0.5).map(|_| ()))
    .unwrap_err();
    assert!(err.to_string().contains("events.parquet"), "{err}");
}
