//! Exposure and event logs of a simulation, written through `recloop-logs` (Parquet or CSV) so
//! the platform can analyse them like a warehouse table.

use crate::engine::LogRecord;
use crate::error::{Result, SimError};
use recloop_logs::{EventRow, ExposureRow, LogFormat, LogWriter, WrittenLogs};
use std::collections::HashSet;
use std::path::Path;

/// Arm names in the logs, by arm index.
pub const ARM_NAMES: [&str; 2] = ["control", "treatment"];

/// Event names written per interaction: `impressions`, `clicks`, `watch_min`, `likes`, `hides`.
pub const EVENT_METRICS: [&str; 5] = ["impressions", "clicks", "watch_min", "likes", "hides"];

/// The exposure and event rows of `records`: one exposure per unit (at its first record) and one
/// event row per impression, click (plus its watch minutes), like and hide. Time is seconds since
/// the start; the day is the simulated day.
pub fn log_rows(records: &[LogRecord], experiment: &str) -> (Vec<ExposureRow>, Vec<EventRow>) {
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    let mut exposed: HashSet<u64> = HashSet::new();
    for r in records {
        let ts = (r.time * 86_400.0) as i64;
        let day = r.time.max(0.0) as u32;
        if exposed.insert(r.unit) {
            let arm = ARM_NAMES
                .get(r.arm as usize)
                .copied()
                .unwrap_or("treatment");
            exposures.push(ExposureRow {
                unit_id: r.unit,
                experiment: experiment.to_string(),
                arm: arm.to_string(),
                ts,
                day,
            });
        }
        let mut event = |metric: &str, value: f64| {
            events.push(EventRow {
                unit_id: r.unit,
                ts,
                day,
                metric: metric.to_string(),
                value,
            })
        };
        match r.event {
            "impression" => event("impressions", 1.0),
            "click" => {
                event("clicks", 1.0);
                event("watch_min", f64::from(r.value));
            }
            "like" => event("likes", 1.0),
            "hide" => event("hides", 1.0),
            _ => {}
        }
    }
    (exposures, events)
}

/// Write `records` to `dir` as [`log_rows`] describes.
pub fn write_logs(
    records: &[LogRecord],
    dir: &Path,
    experiment: &str,
    format: LogFormat,
) -> Result<WrittenLogs> {
    let err = |e: recloop_logs::LogsError| SimError::Logs {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut w = LogWriter::create(dir, format).map_err(err)?;
    let (exposures, events) = log_rows(records, experiment);
    for row in &exposures {
        w.write_exposure(row).map_err(err)?;
    }
    for row in &events {
        w.write_event(row).map_err(err)?;
    }
    w.finish().map_err(err)
}

/// Simulate `days` days of `users` users under `policy` alone (production traffic, no
/// experiment) and write their exposure and event logs to `dir` under experiment `production`:
/// the logs an analyst would query. Seeded: the same arguments write the same rows.
pub fn simulate_logs(
    world: std::sync::Arc<crate::World>,
    policy: &dyn crate::Policy,
    users: usize,
    days: u32,
    seed: u64,
    dir: &Path,
    format: LogFormat,
) -> Result<WrittenLogs> {
    let records = simulate_production(world, policy, users, days, seed)?;
    write_logs(&records, dir, "production", format)
}

/// The records [`simulate_logs`] writes (turn them into rows with [`log_rows`] and experiment
/// `production`), for a caller that stores them elsewhere (PostgreSQL).
pub fn simulate_production(
    world: std::sync::Arc<crate::World>,
    policy: &dyn crate::Policy,
    users: usize,
    days: u32,
    seed: u64,
) -> Result<Vec<LogRecord>> {
    let mut sim = crate::Simulation::new(world, users, seed)?;
    let mut records = Vec::new();
    for day in 0..days {
        sim.step_day(day, &|_| Some(0), &[policy], Some(&mut records))?;
    }
    Ok(records)
}
