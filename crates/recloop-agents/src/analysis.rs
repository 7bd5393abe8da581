//! Brainstorm's analysis tools: `run_sql_query` (read-only SQL over the journal, or over the
//! workspace's exposure and event logs: Parquet/CSV files loaded into an in-memory database, or
//! the team's PostgreSQL, queried in place) and `journal_search`
//! (the journal's full-text retrieval). Every failure is the tool's answer to the model, never
//! a failed stage; every successful query is journaled (`note`, topic [`NOTE_TOPIC`]) and later
//! Brainstorm prompts show the latest ones as evidence.

use crate::record::Recorder;
use recloop_core::Manifest;
use recloop_journal::analysis::{EVENT_COLUMNS, EXPOSURE_COLUMNS, JOURNAL_TABLES};
use recloop_journal::sql::{ColType, Val};
use recloop_journal::{Event, EventRecord, Journal, MemTable, MemoryDb, PgLogs, SearchFilter};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Rows a query returns at most.
pub const MAX_ROWS: usize = 200;
/// Time a query may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
/// Topic of the `note` events that record analyses.
pub const NOTE_TOPIC: &str = "analysis.sql";
/// Hits `journal_search` returns at most.
pub const MAX_HITS: usize = 8;
/// Rows per log table the in-memory database takes at most (about 0.6 s of loading per
/// million rows; larger logs are refused with a message).
pub const MAX_LOG_ROWS: usize = 5_000_000;

/// Where the logs are, if the workspace names them.
enum Logs {
    None,
    Dir(PathBuf),
    /// A `postgres://` URL and the exposures and events relations in it.
    Postgres {
        url: String,
        exposures: String,
        events: String,
    },
}

/// The logs, opened: files loaded into memory, or a PostgreSQL connection.
enum LogsDb {
    Memory(MemoryDb),
    Postgres(PgLogs),
}

impl LogsDb {
    fn query_read_only(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> recloop_journal::Result<recloop_journal::QueryResult> {
        match self {
            LogsDb::Memory(db) => db.query_read_only(sql, max_rows, timeout),
            LogsDb::Postgres(db) => db.query_read_only(sql, max_rows, timeout),
        }
    }

    /// The tables, for messages.
    fn tables(&self) -> String {
        match self {
            LogsDb::Memory(db) => tables_of(db),
            LogsDb::Postgres(db) => format!(
                "exposures({EXPOSURE_COLUMNS}) and events({EVENT_COLUMNS}) in {}",
                db.location()
            ),
        }
    }

    /// Whether the logs have any rows.
    fn has_rows(&self) -> bool {
        match self {
            LogsDb::Memory(db) => db.tables().iter().any(|(_, n)| *n > 0),
            LogsDb::Postgres(db) => db
                .query_read_only(
                    "SELECT 1 FROM (SELECT unit_id FROM exposures LIMIT 1) a \
                     UNION ALL SELECT 1 FROM (SELECT unit_id FROM events LIMIT 1) b",
                    1,
                    TIME_LIMIT,
                )
                .is_ok_and(|r| !r.rows.is_empty()),
        }
    }
}

/// The analysis tools of one Brainstorm call.
pub struct Analysis {
    journal: Journal,
    logs: Logs,
    opened: OnceLock<std::result::Result<LogsDb, String>>,
    record: Option<(Recorder, u32)>,
    queries: AtomicU32,
}

impl Analysis {
    /// Tools over `journal` and the logs `manifest` names (`[online.external] logs` on the
    /// external platform, else `[online] logs`), relative to `workspace`.
    pub fn new(journal: Journal, manifest: &Manifest, workspace: &Path) -> Analysis {
        // the external platform's logs are where its experiments are; otherwise `[online] logs`
        // (PostgreSQL relations are named by `[online.external]`, else `exposures` and `events`)
        let external = manifest.online.external.as_ref();
        let from_external = || external.map(|e| (e.logs.clone(), Some(e)));
        let from_online = || manifest.online.logs.clone().map(|l| (l, None));
        let named = match manifest.online.platform.as_str() {
            "external" => from_external().or_else(from_online),
            _ => from_online().or_else(from_external),
        }
        .filter(|(l, _)| !l.trim().is_empty());
        let logs = match named {
            None => Logs::None,
            Some((url, relations))
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                Logs::Postgres {
                    url,
                    exposures: relations.map_or("exposures".into(), |e| e.exposures.clone()),
                    events: relations.map_or("events".into(), |e| e.events.clone()),
                }
            }
            Some((l, _)) => Logs::Dir(workspace.join(l)),
        };
        Analysis {
            journal,
            logs,
            opened: OnceLock::new(),
            record: None,
            queries: AtomicU32::new(0),
        }
    }

    /// The same tools, journaling every successful query under iteration `iteration` of
    /// `rec`'s run (steps `brainstorm/analysis/N`).
    pub fn recording(mut self, rec: Recorder, iteration: u32) -> Analysis {
        self.record = Some((rec, iteration));
        self
    }

    /// Tool definitions (name, description, JSON Schema of arguments).
    pub fn definitions() -> Vec<(String, String, Value)> {
        vec![
            (
                "run_sql_query".into(),
                format!(
                    "One read-only SQL query (SELECT, WITH or VALUES; at most {MAX_ROWS} rows, \
                     {} s). database \"journal\" (default): SQLite or PostgreSQL tables {} \
                     (JSON in text columns). database \"logs\": tables exposures({EXPOSURE_COLUMNS}) \
                     and events({EVENT_COLUMNS}), when the workspace has logs (SQLite for \
                     Parquet/CSV logs, PostgreSQL for logs kept there). Aggregate; never dump \
                     raw tables.",
                    TIME_LIMIT.as_secs(),
                    JOURNAL_TABLES.join(", ")
                ),
                json!({"type": "object", "properties": {
                    "sql": {"type": "string"},
                    "database": {"type": "string", "enum": ["journal", "logs"]}
                }, "required": ["sql"]}),
            ),
            (
                "journal_search".into(),
                format!(
                    "Full-text search over the journal's hypotheses, verdicts, failures, lessons \
                     and diagnoses; the best {MAX_HITS} hits"
                ),
                json!({"type": "object", "properties": {"text": {"type": "string"}},
                       "required": ["text"]}),
            ),
        ]
    }

    /// Answer a call of one of these tools; `None` when `name` is not one of them.
    pub fn call(&self, name: &str, args: &Value) -> Option<std::result::Result<String, String>> {
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match name {
            "run_sql_query" => Some(self.run_sql_query(&arg("sql"), &arg("database"))),
            "journal_search" => Some(self.journal_search(&arg("text"))),
            _ => None,
        }
    }

    /// Run one read-only query on `database` (`journal` when empty, or `logs`); the answer is
    /// a compact text table.
    pub fn run_sql_query(&self, sql: &str, database: &str) -> std::result::Result<String, String> {
        self.query(sql, database).map(|r| r.to_table())
    }

    /// [`Self::run_sql_query`] with the rows as values (journaled the same way), for plain
    /// code that reads the answer.
    pub fn query(
        &self,
        sql: &str,
        database: &str,
    ) -> std::result::Result<recloop_journal::QueryResult, String> {
        let result = match database {
            "" | "journal" => self
                .journal
                .query_read_only(sql, MAX_ROWS, TIME_LIMIT)
                .map_err(|e| {
                    format!(
                        "{e}\n(database \"journal\" has tables {}; database \"logs\": {})",
                        JOURNAL_TABLES.join(", "),
                        self.logs_state()
                    )
                })?,
            "logs" => {
                let db = self.logs_db()?;
                db.query_read_only(sql, MAX_ROWS, TIME_LIMIT)
                    .map_err(|e| format!("{e}\n(database \"logs\" has tables {})", db.tables()))?
            }
            other => {
                return Err(format!(
                    "unknown database {other:?}: use \"journal\" or \"logs\""
                ));
            }
        };
        self.journal_query(
            sql,
            if database.is_empty() {
                "journal"
            } else {
                database
            },
            &result,
        )?;
        Ok(result)
    }

    /// Whether the logs have any rows to analyse (false when the workspace names none).
    pub fn has_logs(&self) -> bool {
        self.logs_db().is_ok_and(LogsDb::has_rows)
    }

    fn journal_query(
        &self,
        sql: &str,
        database: &str,
        result: &recloop_journal::QueryResult,
    ) -> std::result::Result<(), String> {
        let Some((rec, it)) = &self.record else {
            return Ok(());
        };
        let n = self.queries.fetch_add(1, Ordering::SeqCst) + 1;
        rec.emit(
            *it,
            &format!("brainstorm/analysis/{n}"),
            Event::Note {
                topic: NOTE_TOPIC.into(),
                text: sql.trim().to_string(),
                data: json!({
                    "database": database,
                    "rows": result.rows.len(),
                    "truncated": result.truncated,
                    "summary": result.summary(),
                }),
            },
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("the query ran but could not be journaled: {e}"))
    }

    /// What the logs database holds, for messages.
    fn logs_state(&self) -> String {
        match &self.logs {
            Logs::None => "none (the workspace names no logs directory in [online] logs or \
                           [online.external] logs)"
                .into(),
            Logs::Dir(d) => format!("tables exposures, events from {}", d.display()),
            Logs::Postgres { url, .. } => format!(
                "tables exposures, events in PostgreSQL at {}",
                recloop_journal::Location::parse(url)
                    .map_or_else(|e| e.to_string(), |l| l.display())
            ),
        }
    }

    /// The logs database, opened on first use (files loaded into memory, or a connection).
    fn logs_db(&self) -> std::result::Result<&LogsDb, String> {
        match &self.logs {
            Logs::None => {
                return Err(format!(
                    "no logs to query: {}. Database \"journal\" has tables {}",
                    self.logs_state(),
                    JOURNAL_TABLES.join(", ")
                ));
            }
            Logs::Dir(dir) if !dir.exists() => {
                return Err(format!(
                    "no logs to query: {} does not exist yet (with the simulator, `recloop sim \
                     logs` writes production logs there). Database \"journal\" has tables {}",
                    dir.display(),
                    JOURNAL_TABLES.join(", ")
                ));
            }
            _ => {}
        }
        self.opened
            .get_or_init(|| match &self.logs {
                Logs::Dir(dir) => load_logs(dir).map(LogsDb::Memory),
                Logs::Postgres {
                    url,
                    exposures,
                    events,
                } => PgLogs::connect(url, exposures, events)
                    .map(LogsDb::Postgres)
                    .map_err(|e| format!("cannot open the logs: {e}")),
                Logs::None => Err("no logs".into()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The journal's best full-text hits for `text`, one compact line each.
    pub fn journal_search(&self, text: &str) -> std::result::Result<String, String> {
        if text.trim().is_empty() {
            return Err("empty search text".into());
        }
        let mut filter = SearchFilter {
            limit: Some(MAX_HITS),
            ..Default::default()
        };
        let mut hits = self
            .journal
            .search(text, &filter)
            .map_err(|e| e.to_string())?;
        if hits.is_empty() {
            filter.any_word = true;
            hits = self
                .journal
                .search(text, &filter)
                .map_err(|e| e.to_string())?;
        }
        if hits.is_empty() {
            return Ok(format!("no journal entries match {text:?}"));
        }
        Ok(hits
            .iter()
            .map(|h| {
                let mut line = format!("- {} [{}]", h.doc_id, h.kind);
                if let Some(l) = h.lever.as_deref().filter(|l| !l.is_empty()) {
                    line.push_str(&format!(" lever {l}"));
                }
                if let Some(s) = h.status.as_deref().filter(|s| !s.is_empty()) {
                    line.push_str(&format!(" ({s})"));
                }
                line.push_str(&format!(": {} — {}", h.title, clip(&h.body, 240)));
                line
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

fn tables_of(db: &MemoryDb) -> String {
    db.tables()
        .iter()
        .map(|(t, n)| format!("{t} ({n} rows)"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let mut out: String = one_line.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// Read `exposures` and `events` of a recloop-logs directory into an in-memory database.
fn load_logs(dir: &Path) -> std::result::Result<MemoryDb, String> {
    let fail =
        |e: recloop_logs::LogsError| format!("cannot read the logs in {}: {e}", dir.display());
    let reader = recloop_logs::LogReader::open(dir).map_err(fail)?;
    let exposures = reader.read_exposures().map_err(fail)?;
    let events = reader.read_events().map_err(fail)?;
    for (table, n) in [("exposures", exposures.len()), ("events", events.len())] {
        if n > MAX_LOG_ROWS {
            return Err(format!(
                "the logs in {} are too large to analyse in memory: {table} has {n} rows (at \
                 most {MAX_LOG_ROWS})",
                dir.display()
            ));
        }
    }
    let col = |n: &str, t| (n.to_string(), t);
    let tables = vec![
        MemTable {
            name: "exposures".into(),
            columns: vec![
                col("unit_id", ColType::Int),
                col("experiment", ColType::Text),
                col("arm", ColType::Text),
                col("ts", ColType::Int),
                col("day", ColType::Int),
            ],
            rows: exposures
                .into_iter()
                .map(|e| {
                    vec![
                        Val::int(e.unit_id as i64),
                        Val::text(e.experiment),
                        Val::text(e.arm),
                        Val::int(e.ts),
                        Val::int(i64::from(e.day)),
                    ]
                })
                .collect(),
        },
        MemTable {
            name: "events".into(),
            columns: vec![
                col("unit_id", ColType::Int),
                col("ts", ColType::Int),
                col("day", ColType::Int),
                col("metric", ColType::Text),
                col("value", ColType::Real),
            ],
            rows: events
                .into_iter()
                .map(|e| {
                    vec![
                        Val::int(e.unit_id as i64),
                        Val::int(e.ts),
                        Val::int(i64::from(e.day)),
                        Val::text(e.metric),
                        Val::real(e.value),
                    ]
                })
                .collect(),
        },
    ];
    MemoryDb::new(tables).map_err(|e| format!("cannot load the logs of {}: {e}", dir.display()))
}

/// The latest `limit` analyses journaled in `events` (oldest of them first), as an evidence
/// section; empty when there are none.
pub fn evidence(events: &[EventRecord], limit: usize) -> String {
    let notes: Vec<(&EventRecord, &str, &Value)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Note { topic, text, data } if topic == NOTE_TOPIC => {
                Some((e, text.as_str(), data))
            }
            _ => None,
        })
        .collect();
    if notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Recent analyses (run_sql_query)\n");
    for (e, sql, data) in notes.iter().skip(notes.len().saturating_sub(limit)) {
        out.push_str(&format!(
            "- {} i{} [{}] `{}` → {}\n",
            e.run_id,
            e.iteration,
            data.get("database")
                .and_then(Value::as_str)
                .unwrap_or("journal"),
            clip(sql, 300),
            clip(
                data.get("summary").and_then(Value::as_str).unwrap_or(""),
                300
            )
        ));
    }
    out
}
