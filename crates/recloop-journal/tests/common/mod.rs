//! Test databases for both backends.
//!
//! PostgreSQL tests read `RECLOOP_TEST_POSTGRES_URL` (start one with
//! `source .ci/postgres.sh && start_postgres`). Without it they print a notice (straight to the
//! terminal, not captured by the test harness) and skip — except when `CI` is set, where a missing
//! URL fails the test so CI never silently skips the suite. When the URL is set but the server
//! cannot be reached, every PostgreSQL test FAILS with the connection error.
#![allow(dead_code)]

use recloop_journal::{Journal, Location};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Say once per test binary, visibly (the harness captures `eprintln!` of passing tests), that
/// the PostgreSQL tests are skipped and why.
fn skip_notice() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTICE: {PG_ENV} is not set: the PostgreSQL journal tests are SKIPPED (they pass \
             without running). Start a server with `source .ci/postgres.sh && start_postgres` \
             and export {PG_ENV} to run them.\n"
        );
    });
}

/// Panic (fail the test) with a clear message when the configured server cannot be reached.
/// Checked once per test binary; later tests reuse the answer.
fn check_reachable(base: &str) {
    static RESULT: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut guard = RESULT.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let base = base.to_string();
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&base)
                    .map_err(|e| format!("invalid URL: {e}"))?;
                // A single connection (not a pool) so the driver's own error is reported.
                use sqlx::Connection;
                let conn = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    sqlx::postgres::PgConnection::connect_with(&opts),
                )
                .await
                .map_err(|_| "no answer within 10 s".to_string())?
                .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("connection check panicked".into()));
        *guard = Some(outcome);
    }
    if let Some(Err(e)) = guard.as_ref() {
        panic!(
            "{PG_ENV} is set but the PostgreSQL server cannot be used: {e}. \
             Start it (`source .ci/postgres.sh && start_postgres`) or unset {PG_ENV} to skip \
             the PostgreSQL tests."
        );
    }
}

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty journal location that is cleaned up on drop.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub const PG_ENV: &str = "RECLOOP_TEST_POSTGRES_URL";

impl TestDb {
    /// A new SQLite journal file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = dir
            .path()
            .join(".recloop")
            .join("journal.db")
            .display()
            .to_string();
        TestDb {
            kind: Kind::Sqlite,
            url,
            _dir: Some(dir),
        }
    }

    /// A new PostgreSQL schema, or `None` (after a notice) when no server is configured.
    pub fn postgres() -> Option<TestDb> {
        let base = match std::env::var(PG_ENV) {
            Ok(u) if !u.trim().is_empty() => u,
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "{PG_ENV} is not set but CI is: the PostgreSQL journal suite must run in CI \
                         (source .ci/postgres.sh && start_postgres)"
                    );
                }
                skip_notice();
                return None;
            }
        };
        check_reachable(&base);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("t_{}_{}_{}", std::process::id(), n, nanos);
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            kind: Kind::Postgres,
            url: format!("{base}{sep}schema={schema}"),
            _dir: None,
        })
    }

    /// A fresh database of `kind` (None = skip).
    pub fn new(kind: Kind) -> Option<TestDb> {
        match kind {
            Kind::Sqlite => Some(TestDb::sqlite()),
            Kind::Postgres => TestDb::postgres(),
        }
    }

    /// Open (creating) the journal.
    pub fn open(&self) -> Journal {
        Journal::open(&self.url).unwrap()
    }

    /// Run raw SQL statements against the database behind the journal (bypassing it).
    pub fn exec_raw(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sql = sql.to_string();
        rt.block_on(async move {
            match Location::parse(&self.url).unwrap() {
                Location::Sqlite(path) => {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).unwrap();
                    }
                    let opts = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true);
                    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
                Location::Postgres { url, schema } => {
                    use std::str::FromStr;
                    let mut opts = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
                    if let Some(s) = &schema {
                        opts = opts.options([("search_path", s.as_str())]);
                    }
                    let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
                    if let Some(s) = &schema {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "CREATE SCHEMA IF NOT EXISTS \"{s}\""
                        )))
                        .execute(&pool)
                        .await
                        .unwrap();
                    }
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
            }
        });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.kind == Kind::Postgres
            && let Ok(Location::Postgres {
                url,
                schema: Some(s),
            }) = Location::parse(&self.url)
        {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{s}\" CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        }
    }
}
