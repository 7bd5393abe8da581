//! The `logs` adapter: exposures and events from Parquet/CSV files (via `recloop-logs`), for teams
//! whose real platform writes to a warehouse. The allocation is whatever the real platform did:
//! the adapter replays the logs day by day and cannot change traffic.
//!
//! PostgreSQL logs are read by [`crate::log_source::LogSource`] (the `external` platform).

use crate::adapter::{Adapter, DayReport};
use crate::error::{OnlineError, Result};
use crate::log_source::files_report;
use recloop_logs::{LogReader, MetricDef};
use std::path::{Path, PathBuf};

/// The metrics the simulator's logs support, as log aggregations.
pub fn sim_log_metrics() -> Vec<MetricDef> {
    vec![
        MetricDef::ratio("ctr", "clicks", "impressions"),
        MetricDef::ratio("hide_rate", "hides", "clicks"),
        MetricDef::Mean {
            name: "clicks_per_user".into(),
            event: "clicks".into(),
        },
        MetricDef::Mean {
            name: "watch_time_per_user".into(),
            event: "watch_min".into(),
        },
        MetricDef::Mean {
            name: "likes_per_user".into(),
            event: "likes".into(),
        },
    ]
}

/// Replays logs in a directory (`exposures.*` and `events.*`).
pub struct LogsAdapter {
    dir: PathBuf,
    experiment: String,
    control: String,
    treatment: String,
    metrics: Vec<MetricDef>,
    days: u32,
}

impl LogsAdapter {
    /// Open the logs of `experiment` in `dir`, comparing arm `treatment` with arm `control`.
    pub fn open(
        dir: &Path,
        experiment: &str,
        control: &str,
        treatment: &str,
        metrics: Vec<MetricDef>,
    ) -> Result<LogsAdapter> {
        if dir.to_string_lossy().starts_with("postgres") {
            return Err(OnlineError::Config {
                field: "online.logs".into(),
                reason: "the logs replay reads Parquet or CSV files; PostgreSQL logs are read by \
                         the external platform ([online] platform = \"external\")"
                    .into(),
            });
        }
        let err = |e: recloop_logs::LogsError| OnlineError::Logs {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let reader = LogReader::open(dir).map_err(err)?;
        let exposures = reader.read_exposures().map_err(err)?;
        let mine: Vec<_> = exposures
            .iter()
            .filter(|e| e.experiment == experiment)
            .collect();
        if mine.is_empty() {
            return Err(OnlineError::Logs {
                path: reader.exposures_path(),
                message: format!("no exposures for experiment `{experiment}`"),
            });
        }
        for arm in [control, treatment] {
            if !mine.iter().any(|e| e.arm == arm) {
                return Err(OnlineError::Logs {
                    path: reader.exposures_path(),
                    message: format!("experiment `{experiment}` has no exposures in arm `{arm}`"),
                });
            }
        }
        let days = mine.iter().map(|e| e.day).max().unwrap_or(0) + 1;
        Ok(LogsAdapter {
            dir: dir.to_path_buf(),
            experiment: experiment.to_string(),
            control: control.to_string(),
            treatment: treatment.to_string(),
            metrics,
            days,
        })
    }
}

impl Adapter for LogsAdapter {
    fn name(&self) -> &str {
        "logs"
    }

    fn metrics(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name().to_string()).collect()
    }

    fn days_available(&self) -> Option<u32> {
        Some(self.days)
    }

    fn run_day(&mut self, day: u32, _share: f64) -> Result<DayReport> {
        files_report(
            &self.dir,
            &self.experiment,
            [&self.control, &self.treatment],
            day,
            &self.metrics,
        )
    }
}
