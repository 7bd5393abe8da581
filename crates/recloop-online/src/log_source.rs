//! Where an experiment's exposure and event logs are read from: a directory of Parquet/CSV files
//! (through `recloop-logs`), or PostgreSQL relations, aggregated inside the database (only the
//! per-arm sufficient statistics cross the wire). Both give the same cumulative [`DayReport`]
//! with the same semantics (see `recloop_logs::aggregate`): a unit belongs to its arm from its
//! first exposure on, a unit exposed to both arms is excluded, and its value is the sum of its
//! events from that exposure on, up to the day asked for.

use crate::adapter::DayReport;
use crate::analysis::MetricStats;
use crate::error::{OnlineError, Result};
use recloop_logs::{AggregateOptions, LogReader, MetricDef, aggregate};
use std::path::{Path, PathBuf};

/// The arm names an experiment's logs use.
pub const CONTROL_ARM: &str = "control";
/// See [`CONTROL_ARM`].
pub const TREATMENT_ARM: &str = "treatment";

/// A source of exposure and event logs.
#[derive(Debug, Clone, PartialEq)]
pub enum LogSource {
    /// A directory with `exposures` and `events` tables (files or hive-partitioned folders).
    Files(PathBuf),
    /// PostgreSQL relations with the same columns as the files.
    Postgres {
        /// Connection URL.
        url: String,
        /// The exposures relation (`unit_id, experiment, arm, ts, day`).
        exposures: String,
        /// The events relation (`unit_id, ts, day, metric, value`).
        events: String,
    },
}

impl LogSource {
    /// A source from a manifest value: a `postgres://` (or `postgresql://`) URL, else a directory
    /// relative to `base`.
    pub fn parse(value: &str, base: &Path, exposures: &str, events: &str) -> LogSource {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            LogSource::Postgres {
                url: value.to_string(),
                exposures: exposures.to_string(),
                events: events.to_string(),
            }
        } else {
            LogSource::Files(base.join(value))
        }
    }

    /// Where the logs are, for messages (a URL's password is hidden).
    pub fn describe(&self) -> String {
        match self {
            LogSource::Files(dir) => dir.display().to_string(),
            LogSource::Postgres { url, .. } => redact_url(url),
        }
    }

    /// Cumulative observations of `experiment` up to and including `day`, for `metrics`. Every
    /// metric is present (empty statistics while no unit was exposed).
    pub fn day_report(
        &self,
        experiment: &str,
        day: u32,
        metrics: &[MetricDef],
    ) -> Result<DayReport> {
        let mut report = match self {
            LogSource::Files(dir) => {
                files_report(dir, experiment, [CONTROL_ARM, TREATMENT_ARM], day, metrics)?
            }
            LogSource::Postgres {
                url,
                exposures,
                events,
            } => postgres_report(url, exposures, events, experiment, day, metrics)?,
        };
        for m in metrics {
            report
                .metrics
                .entry(m.name().to_string())
                .or_insert_with(|| [empty_stats(m), empty_stats(m)]);
        }
        Ok(report)
    }
}

fn empty_stats(m: &MetricDef) -> MetricStats {
    MetricStats {
        ratio: matches!(m, MetricDef::Ratio { .. }),
        ..MetricStats::default()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// The report from a log directory, comparing `arms` (`[control, treatment]`). A directory that
/// does not exist yet (no data has arrived) gives an empty report.
pub(crate) fn files_report(
    dir: &Path,
    experiment: &str,
    arms: [&str; 2],
    day: u32,
    metrics: &[MetricDef],
) -> Result<DayReport> {
    let empty = DayReport {
        day,
        ..Default::default()
    };
    if !dir.exists() {
        return Ok(empty);
    }
    let err = |e: recloop_logs::LogsError| OnlineError::Logs {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let reader = LogReader::open(dir).map_err(err)?;
    let agg = aggregate(
        &reader,
        AggregateOptions {
            metrics: metrics.to_vec(),
            experiment: Some(experiment.to_string()),
            max_day: Some(day),
            cuped: false,
        },
    )
    .map_err(err)?;
    let mut report = empty;
    for (arm, units) in agg.unit_counts(experiment) {
        if arm == arms[0] {
            report.units[0] = units;
        } else if arm == arms[1] {
            report.units[1] = units;
        }
    }
    for m in metrics {
        let name = m.name();
        let get = |arm: &str| {
            agg.summary(experiment, arm, name)
                .map(|a| MetricStats::from_summary(&a.summary))
        };
        if let (Some(c), Some(t)) = (get(arms[0]), get(arms[1])) {
            report.metrics.insert(name.to_string(), [c, t]);
        }
    }
    Ok(report)
}

/// The per-arm sufficient statistics of one metric, computed by PostgreSQL. `$1` experiment,
/// `$2` last day, `$3` numerator event, `$4` denominator event (the numerator again for a
/// mean), `$5`/`$6` the arms.
fn metric_sql(exposures: &str, events: &str) -> String {
    format!(
        "WITH first AS ( \
           SELECT unit_id, min(ts) AS t0, min(arm) AS arm, count(DISTINCT arm) AS arms \
           FROM {exposures} WHERE experiment = $1::text AND day <= $2::int8 GROUP BY unit_id), \
         units AS (SELECT unit_id, t0, arm FROM first WHERE arms = 1 AND arm IN ($5::text, $6::text)), \
         ev AS (SELECT unit_id, ts, metric, value FROM {events} \
           WHERE day <= $2::int8 AND metric IN ($3::text, $4::text)), \
         per_unit AS ( \
           SELECT u.arm, u.unit_id, \
             coalesce(sum(e.value) FILTER (WHERE e.metric = $3::text), 0)::float8 AS m, \
             coalesce(sum(e.value) FILTER (WHERE e.metric = $4::text), 0)::float8 AS d \
           FROM units u LEFT JOIN ev e ON e.unit_id = u.unit_id AND e.ts >= u.t0 \
           GROUP BY u.arm, u.unit_id) \
         SELECT arm, count(*)::int8, coalesce(sum(m), 0)::float8, coalesce(sum(m * m), 0)::float8, \
           coalesce(sum(d), 0)::float8, coalesce(sum(d * d), 0)::float8, \
           coalesce(sum(m * d), 0)::float8, (count(*) FILTER (WHERE m > 0))::int8 \
         FROM per_unit GROUP BY arm"
    )
}

/// The report from PostgreSQL: one aggregate query per metric, run on a thread of its own (so
/// that it works inside and outside an async runtime).
fn postgres_report(
    url: &str,
    exposures: &str,
    events: &str,
    experiment: &str,
    day: u32,
    metrics: &[MetricDef],
) -> Result<DayReport> {
    let sql = metric_sql(exposures, events);
    on_own_runtime(url, |runtime| {
        runtime.block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut report = DayReport {
                day,
                ..Default::default()
            };
            for m in metrics {
                let (num, den, ratio) = match m {
                    MetricDef::Mean { event, .. } | MetricDef::Proportion { event, .. } => {
                        (event.as_str(), event.as_str(), false)
                    }
                    MetricDef::Ratio {
                        numerator,
                        denominator,
                        ..
                    } => (numerator.as_str(), denominator.as_str(), true),
                };
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(experiment)
                    .bind(i64::from(day))
                    .bind(num)
                    .bind(den)
                    .bind(CONTROL_ARM)
                    .bind(TREATMENT_ARM)
                    .fetch_all(&mut conn)
                    .await
                    .map_err(|e| format!("metric `{}`: {e}", m.name()))?;
                let mut arms = [MetricStats::default(), MetricStats::default()];
                for row in rows {
                    let get_f = |i: usize| row.try_get::<f64, _>(i).map_err(|e| e.to_string());
                    let arm: String = row.try_get(0).map_err(|e| e.to_string())?;
                    let n: i64 = row.try_get(1).map_err(|e| e.to_string())?;
                    let successes: i64 = row.try_get(7).map_err(|e| e.to_string())?;
                    let slot = usize::from(arm == TREATMENT_ARM);
                    let n = n.max(0) as u64;
                    report.units[slot] = n;
                    let (sum, sum_sq) = match m {
                        MetricDef::Proportion { .. } => (successes as f64, successes as f64),
                        _ => (get_f(2)?, get_f(3)?),
                    };
                    arms[slot] = if ratio {
                        MetricStats {
                            n,
                            sum,
                            sum_sq,
                            den: get_f(4)?,
                            den_sq: get_f(5)?,
                            cross: get_f(6)?,
                            ratio: true,
                        }
                    } else {
                        MetricStats {
                            n,
                            sum,
                            sum_sq,
                            den: n as f64,
                            den_sq: n as f64,
                            cross: sum,
                            ratio: false,
                        }
                    };
                }
                report.metrics.insert(m.name().to_string(), arms);
            }
            conn.close().await.map_err(|e| format!("close: {e}"))?;
            Ok(report)
        })
    })
}

/// Run `work` with a current-thread runtime on a thread of its own (callable from inside and
/// outside an async runtime); its error becomes a logs error naming the (redacted) `url`.
pub(crate) fn on_own_runtime<T: Send>(
    url: &str,
    work: impl FnOnce(&tokio::runtime::Runtime) -> std::result::Result<T, String> + Send,
) -> Result<T> {
    let fail = |message: String| OnlineError::Logs {
        path: PathBuf::from(redact_url(url)),
        message,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            work(&rt)
        })
        .join()
        .map_err(|_| fail("the database thread panicked".into()))?
        .map_err(fail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_their_password_and_directories_are_relative_to_the_workspace() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/logs"),
            "postgres://me:***@db:5432/logs"
        );
        assert_eq!(redact_url("postgres://db/logs"), "postgres://db/logs");
        let s = LogSource::parse("logs/", Path::new("/w"), "exposures", "events");
        assert_eq!(s, LogSource::Files(PathBuf::from("/w/logs/")));
        let s = LogSource::parse("postgresql://x:y@h/d", Path::new("/w"), "e", "v");
        assert_eq!(s.describe(), "postgresql://x:***@h/d");
    }

    #[test]
    fn missing_log_directory_is_an_empty_report_with_every_metric() {
        let dir = tempfile::tempdir().unwrap();
        let src = LogSource::Files(dir.path().join("not-yet"));
        let r = src
            .day_report(
                "x-1",
                0,
                &[MetricDef::ratio("ctr", "clicks", "impressions")],
            )
            .unwrap();
        assert_eq!(r.units, [0, 0]);
        assert!(r.metrics["ctr"][0].ratio);
    }
}
