//! Exposure and event logs of a simulation, written through `recloop-logs` (Parquet or CSV) so
//! the platform can analyse them like a warehouse table.

use crate::engine::LogRecord;
use crate::error::{Result, SimError};
use recloop_logs::{LogFormat, LogWriter, WrittenLogs};
use std::collections::HashSet;
use std::path::Path;

/// Arm names in the logs, by arm index.
pub const ARM_NAMES: [&str; 2] = ["control", "treatment"];

/// Event names written per interaction: `impressions`, `clicks`, `watch_min`, `likes`, `hides`.
pub const EVENT_METRICS: [&str; 5] = ["impressions", "clicks", "watch_min", "likes", "hides"];

/// Write `records` to `dir`: one exposure per unit (at its first record) and one event row per
/// impression, click (plus its watch minutes), like and hide. Time is seconds since the start.
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
    let mut exposed: HashSet<u64> = HashSet::new();
    for r in records {
        let ts = (r.time * 86_400.0) as i64;
        let day = r.time.max(0.0) as u32;
        if exposed.insert(r.unit) {
            let arm = ARM_NAMES
                .get(r.arm as usize)
                .copied()
                .unwrap_or("treatment");
            w.exposure(r.unit, experiment, arm, ts, day).map_err(err)?;
        }
        match r.event {
            "impression" => w.event(r.unit, ts, day, "impressions", 1.0).map_err(err)?,
            "click" => {
                w.event(r.unit, ts, day, "clicks", 1.0).map_err(err)?;
                w.event(r.unit, ts, day, "watch_min", f64::from(r.value))
                    .map_err(err)?;
            }
            "like" => w.event(r.unit, ts, day, "likes", 1.0).map_err(err)?,
            "hide" => w.event(r.unit, ts, day, "hides", 1.0).map_err(err)?,
            _ => {}
        }
    }
    w.finish().map_err(err)
}
