//! A stand-in A/B platform, to try `[online] platform = "external"` without a real one and to
//! test it end to end: `recloop sim standin start|traffic|stop` are the commands a manifest
//! declares, and `recloop sim standin serve` is the platform itself. It serves the workspace's
//! simulated world: every `day_seconds` of wall-clock time it simulates one day of each running
//! experiment at its current traffic share and appends that day's exposures and events to
//! Parquet files (`exposures/experiment=ID/day=N.parquet`, written aside and renamed into place)
//! and/or PostgreSQL tables `exposures` and `events`.
//!
//! The commands only write the state file (`experiments.json`, replaced atomically) and append a
//! line to `calls.log`; the server only reads the state. It keeps the simulated users in memory:
//! restarting it restarts its experiments' populations.

use crate::assign::Assignment;
use crate::error::{OnlineError, Result};
use crate::log_source::{CONTROL_ARM, TREATMENT_ARM, on_own_runtime};
use recloop_logs::{EventRow, ExposureRow, LogFormat};
use recloop_sim::grounded::{WorkspaceWorld, load_workspace_world, workspace_policy};
use recloop_sim::policy::RankedListPolicy;
use recloop_sim::{Policy, Simulation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One experiment as the stand-in knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandInExperiment {
    /// Snapshot of the candidate's files, taken at `start`.
    pub candidate: PathBuf,
    /// Snapshot of production's files.
    pub control: PathBuf,
    /// Treatment share (control gets the same).
    pub share: f64,
    /// Start, seconds since the Unix epoch.
    pub started_at: f64,
    /// The outcome `stop` was told, once stopped.
    pub stopped: Option<String>,
}

/// The stand-in's state directory.
#[derive(Debug, Clone)]
pub struct StandIn {
    dir: PathBuf,
}

/// Where the stand-in writes its logs.
#[derive(Debug, Clone, Default)]
pub struct StandInSinks {
    /// A log directory (Parquet, partitioned by experiment and day).
    pub files: Option<PathBuf>,
    /// A PostgreSQL URL (tables `exposures` and `events`, created when missing).
    pub postgres: Option<String>,
    /// The PostgreSQL schema holding the tables (created when missing; default `public`).
    pub schema: Option<String>,
}

impl StandInSinks {
    fn schema(&self) -> Result<&str> {
        let schema = self.schema.as_deref().unwrap_or("public");
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(OnlineError::Config {
                field: "--postgres-schema".into(),
                reason: format!("{schema:?} is not a plain identifier (letters, digits, _)"),
            });
        }
        Ok(schema)
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> OnlineError + '_ {
    move |e| OnlineError::Logs {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| OnlineError::Config {
        field: name.into(),
        reason: "not set: the stand-in's commands run from recloop's [online.external]".into(),
    })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl StandIn {
    /// The stand-in keeping its state in `dir`.
    pub fn new(dir: &Path) -> StandIn {
        StandIn {
            dir: dir.to_path_buf(),
        }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("experiments.json")
    }

    /// All experiments started so far.
    pub fn experiments(&self) -> Result<BTreeMap<String, StandInExperiment>> {
        let path = self.state_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| OnlineError::Logs {
                path,
                message: format!("not a stand-in state: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn update(
        &self,
        call: &str,
        change: impl FnOnce(&mut BTreeMap<String, StandInExperiment>) -> Result<()>,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut all = self.experiments()?;
        change(&mut all)?;
        let path = self.state_path();
        let tmp = self.dir.join(".experiments.json.tmp");
        let text = serde_json::to_string_pretty(&all).map_err(|e| OnlineError::Logs {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let log = self.dir.join("calls.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(&log))?;
        writeln!(f, "{call}").map_err(io(&log))
    }

    /// The lines `calls.log` holds: one per command, in order (`start ID`, `traffic ID SHARE`,
    /// `stop ID OUTCOME`).
    pub fn calls(&self) -> Result<Vec<String>> {
        let log = self.dir.join("calls.log");
        match std::fs::read_to_string(&log) {
            Ok(t) => Ok(t.lines().map(str::to_string).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&log)(e)),
        }
    }

    /// `start`: snapshot the candidate and production (from `RECLOOP_CANDIDATE_DIR` and
    /// `RECLOOP_CONTROL_DIR`) and register experiment `RECLOOP_EXPERIMENT` at share 0.
    pub fn start(&self) -> Result<()> {
        let id = env("RECLOOP_EXPERIMENT")?;
        let root = self.dir.join("deploy").join(&id);
        let candidate = root.join(TREATMENT_ARM);
        let control = root.join(CONTROL_ARM);
        copy_tree(Path::new(&env("RECLOOP_CANDIDATE_DIR")?), &candidate)?;
        copy_tree(Path::new(&env("RECLOOP_CONTROL_DIR")?), &control)?;
        self.update(&format!("start {id}"), |all| {
            if all.contains_key(&id) {
                return Err(OnlineError::Config {
                    field: "RECLOOP_EXPERIMENT".into(),
                    reason: format!("experiment {id} was already started"),
                });
            }
            all.insert(
                id.clone(),
                StandInExperiment {
                    candidate,
                    control,
                    share: 0.0,
                    started_at: now(),
                    stopped: None,
                },
            );
            Ok(())
        })
    }

    /// `traffic`: set the share of `RECLOOP_EXPERIMENT` to `RECLOOP_SHARE`.
    pub fn traffic(&self) -> Result<()> {
        let id = env("RECLOOP_EXPERIMENT")?;
        let text = env("RECLOOP_SHARE")?;
        let share: f64 = text
            .parse()
            .ok()
            .filter(|s: &f64| (0.0..=0.5).contains(s))
            .ok_or_else(|| OnlineError::Config {
                field: "RECLOOP_SHARE".into(),
                reason: format!("{text:?} is not a share in [0, 0.5]"),
            })?;
        self.update(&format!("traffic {id} {share}"), |all| {
            let x = running(all, &id)?;
            x.share = share;
            Ok(())
        })
    }

    /// `stop`: stop `RECLOOP_EXPERIMENT` with `RECLOOP_OUTCOME`.
    pub fn stop(&self) -> Result<()> {
        let id = env("RECLOOP_EXPERIMENT")?;
        let outcome = env("RECLOOP_OUTCOME")?;
        self.update(&format!("stop {id} {outcome}"), |all| {
            let x = running(all, &id)?;
            x.share = 0.0;
            x.stopped = Some(outcome.clone());
            Ok(())
        })
    }

    /// Serve the workspace's simulated world until `until` (seconds since the epoch) or forever:
    /// every `day_seconds`, one more day of each running experiment is simulated and logged.
    pub fn serve(
        &self,
        workspace: &Path,
        users: usize,
        day_seconds: f64,
        sinks: &StandInSinks,
        until: Option<f64>,
    ) -> Result<()> {
        let manifest =
            recloop_core::Manifest::load(workspace).map_err(|e| OnlineError::Config {
                field: "recloop.toml".into(),
                reason: e.to_string(),
            })?;
        let seed = manifest.run.seed;
        let ww = load_workspace_world(workspace, seed).map_err(|e| OnlineError::Config {
            field: "workspace".into(),
            reason: e.to_string(),
        })?;
        if let Some(url) = &sinks.postgres {
            pg_create_tables(url, sinks.schema()?)?;
        }
        let mut live: BTreeMap<String, Served> = BTreeMap::new();
        while until.is_none_or(|u| now() < u) {
            for (id, x) in self.experiments()? {
                if x.stopped.is_some() {
                    live.remove(&id);
                    continue;
                }
                if !live.contains_key(&id) {
                    live.insert(id.clone(), Served::new(&x, &ww, users, seed)?);
                }
                let Some(served) = live.get_mut(&id) else {
                    continue;
                };
                while x.started_at + f64::from(served.next_day + 1) * day_seconds <= now() {
                    served.day(&id, x.share, sinks)?;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

fn running<'a>(
    all: &'a mut BTreeMap<String, StandInExperiment>,
    id: &str,
) -> Result<&'a mut StandInExperiment> {
    match all.get_mut(id) {
        Some(x) if x.stopped.is_none() => Ok(x),
        Some(_) => Err(OnlineError::Config {
            field: "RECLOOP_EXPERIMENT".into(),
            reason: format!("experiment {id} is stopped"),
        }),
        None => Err(OnlineError::Config {
            field: "RECLOOP_EXPERIMENT".into(),
            reason: format!("no experiment {id} was started"),
        }),
    }
}

/// A running experiment's simulated population and arms.
struct Served {
    sim: Simulation,
    assignment: Assignment,
    policies: [RankedListPolicy; 2],
    next_day: u32,
}

impl Served {
    fn new(x: &StandInExperiment, ww: &WorkspaceWorld, users: usize, seed: u64) -> Result<Served> {
        let policy = |dir: &Path| {
            workspace_policy(dir, ww).map_err(|e| OnlineError::Config {
                field: dir.display().to_string(),
                reason: e.to_string(),
            })
        };
        Ok(Served {
            sim: Simulation::new(Arc::clone(&ww.world), users, seed)?,
            assignment: Assignment {
                seed: seed ^ 0x5EED_A551_6E00,
            },
            policies: [policy(&x.control)?, policy(&x.candidate)?],
            next_day: 0,
        })
    }

    /// Simulate and log the next day at `share`.
    fn day(&mut self, id: &str, share: f64, sinks: &StandInSinks) -> Result<()> {
        let day = self.next_day;
        let a = self.assignment;
        let assign = move |u: u64| a.arm(u, share).map(|arm| arm.index());
        let policies: [&dyn Policy; 2] = [&self.policies[0], &self.policies[1]];
        let mut records = Vec::new();
        self.sim
            .step_day(day, &assign, &policies, Some(&mut records))?;
        let (exposures, events) = recloop_sim::logs::log_rows(&records, id);
        if let Some(dir) = &sinks.files {
            write_day(dir, id, day, &exposures, &events)?;
        }
        if let Some(url) = &sinks.postgres {
            pg_insert(url, sinks.schema()?, &exposures, &events)?;
        }
        self.next_day += 1;
        Ok(())
    }
}

/// Write one day's rows as `exposures/experiment=ID/day=N.parquet` and the same under `events/`,
/// each written aside (a hidden name the readers skip) and renamed into place.
fn write_day(
    dir: &Path,
    id: &str,
    day: u32,
    exposures: &[ExposureRow],
    events: &[EventRow],
) -> Result<()> {
    let scratch = dir.join(format!(".day-{id}-{day}"));
    let err = |e: recloop_logs::LogsError| OnlineError::Logs {
        path: scratch.clone(),
        message: e.to_string(),
    };
    let mut w = recloop_logs::LogWriter::create(&scratch, LogFormat::Parquet).map_err(err)?;
    for row in exposures {
        w.write_exposure(row).map_err(err)?;
    }
    for row in events {
        w.write_event(row).map_err(err)?;
    }
    w.finish().map_err(err)?;
    for table in ["exposures", "events"] {
        let to = dir.join(table).join(format!("experiment={id}"));
        std::fs::create_dir_all(&to).map_err(io(&to))?;
        let from = scratch.join(format!("{table}.parquet"));
        let to = to.join(format!("day={day}.parquet"));
        std::fs::rename(&from, &to).map_err(io(&to))?;
    }
    std::fs::remove_dir_all(&scratch).map_err(io(&scratch))
}

/// Write exposure and event rows into PostgreSQL tables `SCHEMA.exposures` and `SCHEMA.events`
/// (schema and tables created when missing; rows appended in one transaction), as the stand-in
/// platform does day by day. `recloop sim logs` uses it for a workspace whose logs are kept in
/// PostgreSQL.
pub fn write_logs_to_postgres(
    url: &str,
    schema: &str,
    exposures: &[ExposureRow],
    events: &[EventRow],
) -> Result<()> {
    let sinks = StandInSinks {
        files: None,
        postgres: Some(url.to_string()),
        schema: Some(schema.to_string()),
    };
    let schema = sinks.schema()?;
    pg_create_tables(url, schema)?;
    pg_insert(url, schema, exposures, events)
}

fn pg_create_tables(url: &str, schema: &str) -> Result<()> {
    on_own_runtime(url, |rt| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            for sql in [
                format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                format!("CREATE TABLE IF NOT EXISTS {schema}.exposures (unit_id int8 NOT NULL, experiment text NOT NULL, arm text NOT NULL, ts int8 NOT NULL, day int4 NOT NULL)"),
                format!("CREATE TABLE IF NOT EXISTS {schema}.events (unit_id int8 NOT NULL, ts int8 NOT NULL, day int4 NOT NULL, metric text NOT NULL, value float8 NOT NULL)"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut c)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
            }
            Ok(())
        })
    })
}

/// Insert one day's rows in one transaction (arrays unnested by the server).
fn pg_insert(
    url: &str,
    schema: &str,
    exposures: &[ExposureRow],
    events: &[EventRow],
) -> Result<()> {
    on_own_runtime(url, |rt| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut tx = c.begin().await.map_err(|e| e.to_string())?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {schema}.exposures SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int4[])"
            )))
            .bind(exposures.iter().map(|r| r.unit_id as i64).collect::<Vec<_>>())
            .bind(exposures.iter().map(|r| r.experiment.clone()).collect::<Vec<_>>())
            .bind(exposures.iter().map(|r| r.arm.clone()).collect::<Vec<_>>())
            .bind(exposures.iter().map(|r| r.ts).collect::<Vec<_>>())
            .bind(exposures.iter().map(|r| r.day as i32).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("insert exposures: {e}"))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {schema}.events SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int4[], $4::text[], $5::float8[])"
            )))
            .bind(events.iter().map(|r| r.unit_id as i64).collect::<Vec<_>>())
            .bind(events.iter().map(|r| r.ts).collect::<Vec<_>>())
            .bind(events.iter().map(|r| r.day as i32).collect::<Vec<_>>())
            .bind(events.iter().map(|r| r.metric.clone()).collect::<Vec<_>>())
            .bind(events.iter().map(|r| r.value).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("insert events: {e}"))?;
            tx.commit().await.map_err(|e| format!("commit: {e}"))
        })
    })
}

/// Copy the files of `from` into `to` (no `.git`, `.recloop` or `target`).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if [".git", ".recloop", "target"].iter().any(|n| name == *n) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}
