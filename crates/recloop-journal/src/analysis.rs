//! Read-only SQL for analysis (an agent's `run_sql_query` tool): one `SELECT`/`WITH`/`VALUES`
//! statement, at most `max_rows` rows, within a time limit, on a connection that cannot write.
//!
//! Layers, each enough on its own against writes:
//! * the text: one statement only, starting with `SELECT`, `WITH` or `VALUES` ([`check_sql`]);
//!   it is then wrapped as `SELECT * FROM (…) LIMIT n+1`, where a second statement is a syntax
//!   error;
//! * the database: SQLite through a separate connection opened read-only (`SQLITE_OPEN_READONLY`
//!   and `PRAGMA query_only`), PostgreSQL in a `READ ONLY` transaction that is rolled back.
//!
//! The time limit is a progress handler that interrupts SQLite, and `statement_timeout` on
//! PostgreSQL. [`MemoryDb`] is an in-memory SQLite database of given tables (exposure and event
//! logs) queried the same way.

use crate::error::{JournalError, Result};
use crate::sql::{ColType, Dialect, Val};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row, SqlSafeStr, Statement};
use sqlx::{TypeInfo, ValueRef};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The journal tables worth querying (the views the projection maintains, and the log).
pub const JOURNAL_TABLES: &[&str] = &[
    "v_experiments",
    "v_runs",
    "v_leaderboard",
    "v_lessons",
    "v_assets",
    "v_trajectories",
    "v_harness_versions",
    "v_budget",
    "events",
    "search_docs",
];

/// The result of a read-only query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (at most the limit asked for); NULL is `Val::Text(None)`.
    pub rows: Vec<Vec<Val>>,
    /// True when the query had more rows than the limit.
    pub truncated: bool,
}

/// Longest cell in [`QueryResult::to_table`], in characters.
const MAX_CELL: usize = 80;

impl QueryResult {
    /// A compact text table: a header line, one line per row (cells separated by ` | `, long
    /// cells cut), and a footer with the row count or `(truncated at N rows)`.
    pub fn to_table(&self) -> String {
        let mut out = self.columns.join(" | ");
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(cell_text).collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
        if self.truncated {
            out.push_str(&format!("(truncated at {} rows)", self.rows.len()));
        } else {
            out.push_str(&format!(
                "({} row{})",
                self.rows.len(),
                if self.rows.len() == 1 { "" } else { "s" }
            ));
        }
        out
    }

    /// One line: the row count and the first row (for journaling an analysis).
    pub fn summary(&self) -> String {
        let n = match (self.rows.len(), self.truncated) {
            (n, true) => format!("{n}+ rows"),
            (1, false) => "1 row".to_string(),
            (n, false) => format!("{n} rows"),
        };
        match self.rows.first() {
            Some(r) => {
                let first: Vec<String> = self
                    .columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| format!("{c}={}", cell_text(v)))
                    .collect();
                format!("{n}; first: {}", first.join(", "))
            }
            None => n,
        }
    }
}

fn cell_text(v: &Val) -> String {
    let s = match v {
        Val::Int(Some(i)) => i.to_string(),
        Val::Real(Some(f)) => real_text(*f),
        Val::Text(Some(t)) => t.replace(['\n', '\r'], " "),
        _ => "NULL".into(),
    };
    if s.chars().count() > MAX_CELL {
        let mut cut: String = s.chars().take(MAX_CELL - 1).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

/// A double in few characters: integers as such, else six decimals (trailing zeros cut), or
/// scientific notation for very small and very large magnitudes.
fn real_text(f: f64) -> String {
    let a = f.abs();
    if !f.is_finite() || (a != 0.0 && !(1e-4..1e15).contains(&a)) {
        return format!("{f:.4e}");
    }
    if f.fract() == 0.0 {
        return format!("{f:.0}");
    }
    let s = format!("{f:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn refused(reason: impl Into<String>) -> JournalError {
    JournalError::Query {
        reason: reason.into(),
    }
}

/// Check that `sql` is one read-only statement (`SELECT`, `WITH` or `VALUES`) and return it
/// without the trailing `;` (and comments after it), trimmed. Strings, quoted identifiers
/// and comments of `dialect` are skipped when looking for a second statement.
pub fn check_sql(sql: &str, dialect: Dialect) -> Result<String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut end = None;
    let mut first_word = None;
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = find_from(b, i + 2, b"\n").map_or(b.len(), |p| p + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = find_from(b, i + 2, b"*/").map_or(b.len(), |p| p + 2);
                continue;
            }
            _ if end.is_some() && !c.is_ascii_whitespace() && c != b';' => {
                return Err(refused(
                    "one statement at a time: remove everything after the first `;`",
                ));
            }
            b';' => {
                end.get_or_insert(i);
            }
            b'\'' => {
                // PostgreSQL escape strings (E'…') take backslash escapes
                let escapes = dialect == Dialect::Postgres
                    && i > 0
                    && (b[i - 1] == b'e' || b[i - 1] == b'E')
                    && (i < 2 || !is_ident(b[i - 2]));
                i = close_quote(b, i + 1, b'\'', escapes);
                continue;
            }
            b'"' => {
                let start = i + 1;
                i = close_quote(b, start, b'"', false);
                // a quoted identifier names a function as well as an unquoted one
                refuse_side_effects(sql.get(start..i.saturating_sub(1)).unwrap_or(""))?;
                continue;
            }
            b'`' if dialect == Dialect::Sqlite => {
                i = close_quote(b, i + 1, b'`', false);
                continue;
            }
            b'[' if dialect == Dialect::Sqlite => {
                i = find_from(b, i + 1, b"]").map_or(b.len(), |p| p + 1);
                continue;
            }
            b'$' if dialect == Dialect::Postgres && (i == 0 || !is_ident(b[i - 1])) => {
                // a dollar-quoted string: $tag$ … $tag$
                let tag_end = (i + 1..b.len()).find(|&k| !(is_ident(b[k]) && b[k] != b'$'));
                if let Some(t) = tag_end
                    && b[t] == b'$'
                    && !b[i + 1..t].first().is_some_and(u8::is_ascii_digit)
                {
                    let tag = &b[i..=t];
                    i = find_from(b, t + 1, tag).map_or(b.len(), |p| p + tag.len());
                    continue;
                }
            }
            c if (c.is_ascii_alphabetic() || c == b'_') && (i == 0 || !is_ident(b[i - 1])) => {
                let stop = (i..b.len()).find(|&k| !is_ident(b[k])).unwrap_or(b.len());
                let word = &sql[i..stop];
                if first_word.is_none() {
                    first_word = Some(word.to_ascii_uppercase());
                }
                refuse_side_effects(&word.to_ascii_lowercase())?;
                i = stop;
                continue;
            }
            c if first_word.is_none() && !c.is_ascii_whitespace() && c != b'(' => {
                first_word = Some(String::new());
            }
            _ => {}
        }
        i += 1;
    }
    match first_word.as_deref() {
        Some("SELECT" | "WITH" | "VALUES") => {}
        None => return Err(refused("empty query")),
        Some(w) => {
            return Err(refused(format!(
                "only read-only queries are allowed (SELECT, WITH or VALUES), not `{w}`"
            )));
        }
    }
    let body = &sql[..end.unwrap_or(sql.len())];
    Ok(body.trim().to_string())
}

/// Functions a read-only transaction still lets run, whose effects reach outside the query:
/// other sessions, the server's files, other databases, session-level locks.
const SIDE_EFFECT_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_stat_file",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_logical_emit_message",
    "pg_notify",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "set_config",
    "lo_export",
    "lo_import",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "load_extension",
];

/// Refuse a query naming one of [`SIDE_EFFECT_FUNCTIONS`] (`word` in lower case, or as quoted).
fn refuse_side_effects(word: &str) -> Result<()> {
    if SIDE_EFFECT_FUNCTIONS.contains(&word) {
        return Err(refused(format!(
            "`{word}` has effects outside a read-only query and is not allowed"
        )));
    }
    Ok(())
}

fn find_from(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    if from > b.len() {
        return None;
    }
    b[from..]
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

/// The index just past the quote closing a quoted run that starts at `i` (doubled quotes
/// escape; with `escapes`, so does a backslash).
fn close_quote(b: &[u8], mut i: usize, q: u8, escapes: bool) -> usize {
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// `sql` (checked) wrapped so the database returns at most `max_rows + 1` rows.
fn wrapped(sql: &str, max_rows: usize) -> String {
    format!(
        "SELECT * FROM (\n{sql}\n) AS recloop_query LIMIT {}",
        max_rows.saturating_add(1)
    )
}

fn limit_text(timeout: Duration) -> String {
    format!(
        "the query exceeded its time limit of {:.1} s",
        timeout.as_secs_f64()
    )
}

fn db_reason(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => d.message().to_string(),
        None => e.to_string(),
    }
}

fn finish(columns: Vec<String>, mut rows: Vec<Vec<Val>>, max_rows: usize) -> QueryResult {
    let truncated = rows.len() > max_rows;
    rows.truncate(max_rows);
    QueryResult {
        columns,
        rows,
        truncated,
    }
}

/// Run a checked query on a SQLite connection that cannot write, interrupted at `timeout`.
pub(crate) async fn sqlite_query(
    conn: &mut SqliteConnection,
    sql: &str,
    max_rows: usize,
    timeout: Duration,
) -> Result<QueryResult> {
    let sql = check_sql(sql, Dialect::Sqlite)?;
    let started = Instant::now();
    let deadline = started + timeout;
    conn.lock_handle()
        .await
        .map_err(|e| refused(db_reason(&e)))?
        .set_progress_handler(1000, move || Instant::now() < deadline);
    let timed_out = |e: &sqlx::Error| {
        if Instant::now() >= deadline {
            refused(limit_text(timeout))
        } else {
            refused(db_reason(e))
        }
    };
    let q = wrapped(&sql, max_rows);
    let rows = sqlx::query(AssertSqlSafe(q.as_str()))
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| timed_out(&e))?;
    let columns = match rows.first() {
        Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
        None => conn
            .prepare(AssertSqlSafe(q.as_str()).into_sql_str())
            .await
            .map(|s| s.columns().iter().map(|c| c.name().to_string()).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut row = Vec::with_capacity(r.len());
        for i in 0..r.len() {
            let raw = r.try_get_raw(i).map_err(|e| refused(e.to_string()))?;
            let kind = if raw.is_null() {
                "NULL".to_string()
            } else {
                raw.type_info().name().to_string()
            };
            let err = |e: sqlx::Error| refused(e.to_string());
            row.push(match kind.as_str() {
                "NULL" => Val::Text(None),
                "INTEGER" | "BOOLEAN" => {
                    Val::Int(r.try_get_unchecked::<Option<i64>, _>(i).map_err(err)?)
                }
                "REAL" | "NUMERIC" => {
                    Val::Real(r.try_get_unchecked::<Option<f64>, _>(i).map_err(err)?)
                }
                "BLOB" => {
                    let bytes = r.try_get_unchecked::<Option<Vec<u8>>, _>(i).map_err(err)?;
                    Val::text(format!("<blob {} bytes>", bytes.map_or(0, |b| b.len())))
                }
                _ => Val::Text(r.try_get_unchecked::<Option<String>, _>(i).map_err(err)?),
            });
        }
        out.push(row);
    }
    Ok(finish(columns, out, max_rows))
}

/// Run a checked query on PostgreSQL in a read-only transaction with `statement_timeout`,
/// rolled back afterwards.
/// `prelude` (empty, or a `WITH …` list of common table expressions written by recloop, not
/// the model) goes before the wrapped query: its names are visible inside the query.
pub(crate) async fn postgres_query(
    pool: &sqlx::PgPool,
    location: &str,
    prelude: &str,
    sql: &str,
    max_rows: usize,
    timeout: Duration,
) -> Result<QueryResult> {
    let sql = check_sql(sql, Dialect::Postgres)?;
    let run = async {
        let mut tx = pool
            .begin()
            .await
            .map_err(|e| JournalError::db(location, "starting a read-only query", e))?;
        tx.execute("SET TRANSACTION READ ONLY")
            .await
            .map_err(|e| JournalError::db(location, "starting a read-only query", e))?;
        let ms = timeout.as_millis().max(1);
        tx.execute(AssertSqlSafe(format!("SET LOCAL statement_timeout = {ms}")))
            .await
            .map_err(|e| JournalError::db(location, "setting the statement timeout", e))?;
        let q = format!("{prelude}{}", wrapped(&sql, max_rows));
        let rows = match sqlx::query(AssertSqlSafe(q.as_str()))
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                let canceled = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "57014");
                let _ = tx.rollback().await;
                return Err(if canceled {
                    refused(limit_text(timeout))
                } else {
                    refused(db_reason(&e))
                });
            }
        };
        let columns: Vec<String> = match rows.first() {
            Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
            None => (&mut *tx)
                .prepare(AssertSqlSafe(q.as_str()).into_sql_str())
                .await
                .map(|s| s.columns().iter().map(|c| c.name().to_string()).collect())
                .unwrap_or_default(),
        };
        let _ = tx.rollback().await;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                let raw = r.try_get_raw(i).map_err(|e| refused(e.to_string()))?;
                row.push(pg_value(&raw));
            }
            out.push(row);
        }
        Ok(finish(columns, out, max_rows))
    };
    // the server enforces the limit; this guards against a server that does not answer
    match tokio::time::timeout(timeout + Duration::from_secs(5), run).await {
        Ok(r) => r,
        Err(_) => Err(refused(limit_text(timeout))),
    }
}

/// Decode one binary-format PostgreSQL value of a common type; others show as `<TYPE>`.
fn pg_value(v: &sqlx::postgres::PgValueRef<'_>) -> Val {
    if v.is_null() {
        return Val::Text(None);
    }
    let name = v.type_info().name().to_string();
    let Ok(b) = v.as_bytes() else {
        return Val::text(format!("<{name}>"));
    };
    let int = |n: usize| -> Option<i64> {
        (b.len() == n).then(|| b.iter().fold(0i64, |a, &x| (a << 8) | i64::from(x)))
    };
    let sign_extend = |x: i64, bits: u32| (x << (64 - bits)) >> (64 - bits);
    let out = match name.as_str() {
        "BOOL" => b
            .first()
            .map(|x| Val::text(if *x != 0 { "true" } else { "false" })),
        "INT2" => int(2).map(|x| Val::int(sign_extend(x, 16))),
        "INT4" => int(4).map(|x| Val::int(sign_extend(x, 32))),
        "INT8" => int(8).map(Val::int),
        "OID" => int(4).map(Val::int),
        "FLOAT4" => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| Val::real(f64::from(f32::from_be_bytes(a)))),
        "FLOAT8" => <[u8; 8]>::try_from(b)
            .ok()
            .map(|a| Val::real(f64::from_be_bytes(a))),
        "NUMERIC" => pg_numeric(b).map(Val::text),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "JSON" | "UNKNOWN" | "CHAR" | "XML" => {
            std::str::from_utf8(b).ok().map(Val::text)
        }
        "JSONB" => b
            .split_first()
            .and_then(|(_, rest)| std::str::from_utf8(rest).ok().map(Val::text)),
        "TIMESTAMPTZ" | "TIMESTAMP" => int(8).and_then(|us| {
            let epoch = chrono::DateTime::from_timestamp(946_684_800, 0)?;
            let t = epoch + chrono::Duration::microseconds(us);
            Some(Val::text(if name == "TIMESTAMPTZ" {
                t.to_rfc3339()
            } else {
                t.naive_utc().to_string()
            }))
        }),
        "DATE" => int(4).and_then(|d| {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)?;
            Some(Val::text(
                (epoch + chrono::Duration::days(sign_extend(d, 32))).to_string(),
            ))
        }),
        "UUID" => (b.len() == 16).then(|| {
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Val::text(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ))
        }),
        _ => None,
    };
    out.unwrap_or_else(|| Val::text(format!("<{name}>")))
}

/// The decimal text of a binary-format NUMERIC.
fn pg_numeric(b: &[u8]) -> Option<String> {
    let word = |k: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(k)?, *b.get(k + 1)?])) };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    let digit = |pos: i64| -> u16 {
        // pos: power of 10000 (weight .. down)
        let idx = weight - pos;
        if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        }
    };
    let mut int_part = String::new();
    if weight >= 0 {
        for pos in (0..=weight).rev() {
            if int_part.is_empty() {
                int_part = digit(pos).to_string();
            } else {
                int_part.push_str(&format!("{:04}", digit(pos)));
            }
        }
    } else {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut pos = -1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(pos)));
        pos -= 1;
    }
    frac.truncate(dscale);
    let mut s = if sign == 0x4000 {
        "-".to_string()
    } else {
        String::new()
    };
    s.push_str(&int_part);
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        s.push('.');
        s.push_str(frac);
    }
    Some(s)
}

/// Open a read-only connection to the SQLite journal at `path`.
pub(crate) async fn sqlite_read_only(path: &std::path::Path) -> Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5))
        .pragma("query_only", "ON");
    SqliteConnection::connect_with(&options).await.map_err(|e| {
        JournalError::db(
            &path.display().to_string(),
            "opening a read-only connection",
            e,
        )
    })
}

/// A one-thread runtime owned by a blocking handle ([`MemoryDb`], [`PgLogs`]), shut down in the
/// background when the handle goes.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn new(thread_name: &str) -> Result<OwnRuntime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map(|rt| OwnRuntime(Some(rt)))
            .map_err(|e| JournalError::Internal(format!("cannot start a runtime: {e}")))
    }

    /// Run `fut` on this runtime and wait for it.
    fn run<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let rt = self
            .0
            .as_ref()
            .ok_or_else(|| JournalError::Internal("runtime already shut down".into()))?;
        crate::blocking::run_on(rt, fut)
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A table for [`MemoryDb`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemTable {
    /// Table name (letters, digits and `_`).
    pub name: String,
    /// Column names and types.
    pub columns: Vec<(String, ColType)>,
    /// Rows, in column order.
    pub rows: Vec<Vec<Val>>,
}

/// An in-memory SQLite database of given tables, queried read-only like the journal
/// (for exposure and event logs). Blocking; cheap to clone.
#[derive(Clone)]
pub struct MemoryDb {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    runtime: OwnRuntime,
    conn: Arc<tokio::sync::Mutex<SqliteConnection>>,
    tables: Vec<(String, usize)>,
}

impl std::fmt::Debug for MemoryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDb")
            .field("tables", &self.inner.tables)
            .finish()
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

impl MemoryDb {
    /// Load `tables` into a new in-memory database, then make it read-only.
    pub fn new(tables: Vec<MemTable>) -> Result<MemoryDb> {
        for t in &tables {
            if !valid_name(&t.name) || !t.columns.iter().all(|(c, _)| valid_name(c)) {
                return Err(JournalError::Internal(format!(
                    "invalid table or column name in {}",
                    t.name
                )));
            }
        }
        let runtime = OwnRuntime::new("recloop-memdb")?;
        let sizes: Vec<(String, usize)> = tables
            .iter()
            .map(|t| (t.name.clone(), t.rows.len()))
            .collect();
        let conn = runtime.run(async move { load(tables).await })?;
        Ok(MemoryDb {
            inner: Arc::new(MemoryInner {
                runtime,
                conn: Arc::new(tokio::sync::Mutex::new(conn)),
                tables: sizes,
            }),
        })
    }

    /// The tables and their row counts.
    pub fn tables(&self) -> &[(String, usize)] {
        &self.inner.tables
    }

    /// One read-only query (see the module docs).
    pub fn query_read_only(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<QueryResult> {
        let conn = self.inner.conn.clone();
        let sql = sql.to_string();
        self.inner.runtime.run(async move {
            let mut c = conn.lock().await;
            sqlite_query(&mut c, &sql, max_rows, timeout).await
        })
    }
}

async fn load(tables: Vec<MemTable>) -> Result<SqliteConnection> {
    let loc = "memory";
    let db = |op: &str, e| JournalError::db(loc, op, e);
    let options = SqliteConnectOptions::new().in_memory(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| db("opening an in-memory database", e))?;
    let mut tx = conn.begin().await.map_err(|e| db("loading tables", e))?;
    for t in &tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(c, ty)| {
                format!(
                    "{c} {}",
                    match ty {
                        ColType::Int => "INTEGER",
                        ColType::Real => "REAL",
                        ColType::Text => "TEXT",
                    }
                )
            })
            .collect();
        tx.execute(AssertSqlSafe(format!(
            "CREATE TABLE {} ({})",
            t.name,
            cols.join(", ")
        )))
        .await
        .map_err(|e| db("creating a table", e))?;
        // many rows per INSERT (SQLite allows 32766 parameters per statement)
        let width = t.columns.len().max(1);
        let per_insert = (32_000 / width).clamp(1, 500);
        let one = format!("({})", vec!["?"; width].join(", "));
        for chunk in t.rows.chunks(per_insert) {
            let insert = format!(
                "INSERT INTO {} VALUES {}",
                t.name,
                vec![one.as_str(); chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(insert.as_str()));
            for v in chunk.iter().flatten() {
                q = match v {
                    Val::Int(x) => q.bind(*x),
                    Val::Real(x) => q.bind(*x),
                    Val::Text(x) => q.bind(x.clone()),
                };
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| db("loading rows", e))?;
        }
    }
    tx.commit().await.map_err(|e| db("loading tables", e))?;
    conn.execute("PRAGMA query_only = ON")
        .await
        .map_err(|e| db("making the database read-only", e))?;
    Ok(conn)
}

/// Exposure and event logs kept in PostgreSQL, queried read-only like the journal (an agent's
/// `run_sql_query` over logs the team keeps in its warehouse). The workspace's exposures and
/// events relations (tables, views, or parenthesised queries with an alias) are visible to a
/// query as `exposures(unit_id, experiment, arm, ts, day)` and
/// `events(unit_id, ts, day, metric, value)`, whatever their names in the database. Connects on
/// first use; blocking; cheap to clone.
#[derive(Clone)]
pub struct PgLogs {
    inner: Arc<PgLogsInner>,
}

struct PgLogsInner {
    runtime: OwnRuntime,
    pool: sqlx::PgPool,
    location: String,
    prelude: String,
}

impl std::fmt::Debug for PgLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLogs")
            .field("location", &self.inner.location)
            .finish()
    }
}

/// The columns the exposures relation of [`PgLogs`] shows to a query (the in-memory logs of
/// Parquet/CSV files have the same).
pub const EXPOSURE_COLUMNS: &str = "unit_id, experiment, arm, ts, day";
/// The columns the events relation shows to a query.
pub const EVENT_COLUMNS: &str = "unit_id, ts, day, metric, value";

impl PgLogs {
    /// Connect to the logs at `url`, whose relations are `exposures` and `events`. Like a
    /// journal URL, `url` may end in `?schema=NAME`: relations are then looked up in that schema
    /// first (its `search_path`).
    pub fn connect(url: &str, exposures: &str, events: &str) -> Result<PgLogs> {
        let parsed = crate::backend::Location::parse(url)?;
        let location = parsed.display();
        let crate::backend::Location::Postgres { url, schema } = parsed else {
            return Err(JournalError::InvalidLocation {
                location,
                reason: "logs in a database are named by a postgres:// URL".into(),
            });
        };
        let mut options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&url)
            .map_err(|e| JournalError::InvalidLocation {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        if let Some(s) = &schema {
            options = options.options([("search_path", s.as_str())]);
        }
        let runtime = OwnRuntime::new("recloop-pglogs")?;
        let loc = location.clone();
        let pool = runtime.run(async move {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| JournalError::db(&loc, "connecting to the logs", e))
        })?;
        Ok(PgLogs {
            inner: Arc::new(PgLogsInner {
                runtime,
                pool,
                location,
                prelude: log_prelude(exposures, events),
            }),
        })
    }

    /// Where the logs are (password hidden).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// One read-only query (see the module docs) over `exposures` and `events`.
    pub fn query_read_only(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<QueryResult> {
        let inner = self.inner.clone();
        let sql = sql.to_string();
        self.inner.runtime.run(async move {
            postgres_query(
                &inner.pool,
                &inner.location,
                &inner.prelude,
                &sql,
                max_rows,
                timeout,
            )
            .await
        })
    }
}

/// The common table expressions that show the workspace's log relations under the names
/// queries use; none for a relation already named so.
fn log_prelude(exposures: &str, events: &str) -> String {
    let ctes: Vec<String> = [
        ("exposures", exposures, EXPOSURE_COLUMNS),
        ("events", events, EVENT_COLUMNS),
    ]
    .into_iter()
    .filter(|(name, relation, _)| relation.trim() != *name)
    .map(|(name, relation, columns)| {
        format!("{name} AS (SELECT {columns} FROM {})", relation.trim())
    })
    .collect();
    if ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {}\n", ctes.join(",\n"))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn log_relations_are_shown_under_the_names_queries_use() {
        assert_eq!(log_prelude("exposures", " events "), "");
        assert_eq!(
            log_prelude("analytics.ab_exposures", "events"),
            "WITH exposures AS (SELECT unit_id, experiment, arm, ts, day FROM \
             analytics.ab_exposures)\n"
        );
        let both = log_prelude("x", "(SELECT * FROM raw) r");
        assert!(
            both.ends_with(
                "events AS (SELECT unit_id, ts, day, metric, value FROM (SELECT * FROM raw) r)\n"
            ),
            "{both}"
        );
    }

    use super::*;

    #[test]
    fn one_read_only_statement_passes() {
        let ok = |s: &str, d| check_sql(s, d).unwrap();
        assert_eq!(ok("SELECT 1;", Dialect::Sqlite), "SELECT 1");
        assert_eq!(ok("  select 1 ; -- done\n", Dialect::Sqlite), "select 1");
        assert!(
            ok(
                "-- c\nWITH a AS (SELECT 1) SELECT * FROM a",
                Dialect::Sqlite
            )
            .ends_with("FROM a")
        );
        assert_eq!(ok("SELECT ';' AS x", Dialect::Sqlite), "SELECT ';' AS x");
        // a name inside a string, or a longer identifier, is not a call
        assert_eq!(
            ok(
                "SELECT 'pg_terminate_backend' AS set_config_key",
                Dialect::Postgres
            ),
            "SELECT 'pg_terminate_backend' AS set_config_key"
        );
        assert_eq!(
            ok("SELECT \"a;b\" FROM t", Dialect::Sqlite),
            "SELECT \"a;b\" FROM t"
        );
        assert_eq!(ok("SELECT $$;$$", Dialect::Postgres), "SELECT $$;$$");
        assert_eq!(
            ok("SELECT $x$ ; $x$", Dialect::Postgres),
            "SELECT $x$ ; $x$"
        );
        assert_eq!(ok("(SELECT 1)", Dialect::Sqlite), "(SELECT 1)");
        assert_eq!(ok("VALUES (1)", Dialect::Postgres), "VALUES (1)");
    }

    #[test]
    fn writes_and_second_statements_are_refused() {
        for (s, d) in [
            ("DELETE FROM events", Dialect::Sqlite),
            ("INSERT INTO t VALUES (1)", Dialect::Postgres),
            ("DROP TABLE events", Dialect::Sqlite),
            ("PRAGMA query_only = OFF", Dialect::Sqlite),
            ("ATTACH DATABASE 'x' AS y", Dialect::Sqlite),
            ("SELECT 1; DELETE FROM events", Dialect::Sqlite),
            ("SELECT 1; COMMIT", Dialect::Postgres),
            (
                "SELECT E'\\''; DELETE FROM events; SELECT '",
                Dialect::Postgres,
            ),
            ("SELECT 1 /* ; */ ; DROP TABLE x", Dialect::Sqlite),
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
                Dialect::Postgres,
            ),
            (
                "SELECT pg_catalog.PG_READ_FILE('/etc/passwd')",
                Dialect::Postgres,
            ),
            ("SELECT \"pg_cancel_backend\"(1)", Dialect::Postgres),
            (
                "WITH x AS (SELECT dblink_exec('d', 'DROP TABLE t')) SELECT 1",
                Dialect::Postgres,
            ),
            ("SELECT load_extension('x')", Dialect::Sqlite),
            ("", Dialect::Sqlite),
            ("  -- nothing\n", Dialect::Sqlite),
        ] {
            assert!(check_sql(s, d).is_err(), "{s:?} must be refused");
        }
    }

    #[test]
    fn doubles_print_short() {
        assert_eq!(real_text(31125.0), "31125");
        assert_eq!(real_text(0.1 + 0.2), "0.3");
        assert_eq!(real_text(-0.123_456_78), "-0.123457");
        assert_eq!(real_text(0.000_012_5), "1.2500e-5");
        assert_eq!(real_text(0.0), "0");
        assert_eq!(real_text(f64::NAN), "NaN");
    }

    #[test]
    fn numerics_decode() {
        // 12345.678: ndigits 3, weight 1, sign 0, dscale 3, digits 1 2345 6780 (trailing zeros
        // of the scale are cut: 2.5000 prints as 2.5)
        let mut b = Vec::new();
        for w in [3u16, 1, 0, 3, 1, 2345, 6780] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b).unwrap(), "12345.678");
        // -0.0012: ndigits 1, weight -1, sign 0x4000, dscale 4, digits 12
        let mut b = Vec::new();
        for w in [1u16, 0xFFFF, 0x4000, 4, 12] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b).unwrap(), "-0.0012");
        // 20000: ndigits 1, weight 1, digits 2 (0 implied)
        let mut b = Vec::new();
        for w in [1u16, 1, 0, 0, 2] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b).unwrap(), "20000");
    }

    #[test]
    fn memory_db_is_read_only_limited_and_timed() {
        let db = MemoryDb::new(vec![MemTable {
            name: "events".into(),
            columns: vec![
                ("unit_id".into(), ColType::Int),
                ("metric".into(), ColType::Text),
                ("value".into(), ColType::Real),
            ],
            rows: (0..500)
                .map(|i| {
                    vec![
                        Val::int(i),
                        Val::text(if i % 2 == 0 { "click" } else { "watch" }),
                        Val::real(i as f64 / 2.0),
                    ]
                })
                .collect(),
        }])
        .unwrap();
        let r = db
            .query_read_only("SELECT metric, count(*) AS n, sum(value) FROM events GROUP BY metric ORDER BY metric", 200, Duration::from_secs(5))
            .unwrap();
        assert_eq!(r.columns, ["metric", "n", "sum(value)"]);
        assert_eq!(
            r.rows[0],
            [Val::text("click"), Val::int(250), Val::real(31125.0)]
        );
        assert!(!r.truncated);
        let all = db
            .query_read_only("SELECT * FROM events", 200, Duration::from_secs(5))
            .unwrap();
        assert_eq!(all.rows.len(), 200);
        assert!(all.truncated);
        assert!(
            all.to_table().ends_with("(truncated at 200 rows)"),
            "{}",
            all.to_table()
        );
        // writes are refused by the database too (a WITH … DELETE passes the keyword check)
        let e = db
            .query_read_only(
                "WITH x AS (SELECT 1) DELETE FROM events",
                200,
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(e.to_string().contains("query"), "{e}");
        // and the connection itself refuses writes (query_only)
        let conn = db.inner.conn.clone();
        let raw = db
            .inner
            .runtime
            .run(async move {
                let mut c = conn.lock().await;
                Ok(c.execute("DELETE FROM events")
                    .await
                    .map(|r| r.rows_affected()))
            })
            .unwrap();
        assert!(raw.is_err(), "{raw:?}");
        assert_eq!(
            db.query_read_only("SELECT count(*) FROM events", 200, Duration::from_secs(5))
                .unwrap()
                .rows[0],
            [Val::int(500)]
        );
        let t = Instant::now();
        let e = db
            .query_read_only(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                200,
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(e.to_string().contains("time limit"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let empty = db
            .query_read_only(
                "SELECT unit_id AS u FROM events WHERE 0",
                200,
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(empty.columns, ["u"]);
        assert_eq!(empty.to_table(), "u\n(0 rows)");
    }

    #[test]
    fn the_journal_connection_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let b = crate::backend::SqliteBackend::open(&path).await.unwrap();
            let mut ro = sqlite_read_only(&path).await.unwrap();
            for w in [
                "DELETE FROM events",
                "CREATE TABLE x (a)",
                "PRAGMA query_only = OFF; CREATE TABLE x (a)",
            ] {
                let r = sqlx::raw_sql(AssertSqlSafe(w)).execute(&mut ro).await;
                assert!(r.is_err(), "{w}: {r:?}");
            }
            let r = sqlite_query(
                &mut ro,
                "SELECT count(*) AS n FROM meta",
                10,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(r.columns, ["n"]);
            use crate::backend::Backend;
            b.close().await;
        });
    }
}
