//! Embedded SQLite backend: one file per workspace (`.recloop/journal.db`), WAL mode.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode, FULL syncs the WAL file
//! at every commit, so once `append` returns the event survives a process kill *and* a power
//! loss or OS crash. `synchronous=NORMAL` would only sync at checkpoints: still safe against a
//! killed process, but a power loss could roll back the last acknowledged commits — which would
//! break "acknowledged = durable", so we pay one fsync per transaction (batch appends amortise
//! it).
//!
//! Writers are serialised by `BEGIN IMMEDIATE` (across processes, with a 30 s busy timeout) and
//! by an in-process mutex (so tasks of one process queue instead of spinning on the busy handler).

use super::Backend;
use crate::artifact::{ArtifactDir, ArtifactHash};
use crate::error::{JournalError, Result};
use crate::event::{EventId, EventRecord, NewEvent};
use crate::schema;
use crate::sql::{ColType, Dialect, SqlConn, Val};
use crate::store::{self, LogReport};
use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The SQLite journal.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    pool: sqlx::SqlitePool,
    location: Arc<str>,
    path: PathBuf,
    artifacts: ArtifactDir,
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

type TxFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

impl SqliteBackend {
    /// Open or create the journal file at `path` (parent directories are created).
    pub async fn open(path: &Path) -> Result<SqliteBackend> {
        let location: Arc<str> = Arc::from(path.display().to_string());
        check_header(path, &location)?;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options)
            .await
            .map_err(|e| JournalError::db(&location, "opening the database", e))?;
        let artifacts_dir = path
            .parent()
            .map(|d| d.join("artifacts"))
            .unwrap_or_else(|| PathBuf::from("artifacts"));
        let backend = SqliteBackend {
            pool,
            location: location.clone(),
            path: path.to_path_buf(),
            artifacts: ArtifactDir::new(artifacts_dir),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        backend
            .write("checking the schema", |c, loc| {
                Box::pin(async move { schema::prepare(c, Dialect::Sqlite, &loc).await })
            })
            .await?;
        Ok(backend)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction; commit on success.
    async fn write<T, F>(&self, operation: &str, f: F) -> Result<T>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut SqliteConnection, Arc<str>) -> TxFuture<'c, T> + Send,
    {
        let _guard = self.write_lock.lock().await;
        let loc = self.location.clone();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| JournalError::db(&loc, operation, e))?;
        let out = f(&mut tx, loc.clone()).await?;
        tx.commit()
            .await
            .map_err(|e| JournalError::db(&loc, &format!("committing ({operation})"), e))?;
        Ok(out)
    }
}

/// A non-empty file that does not start with the SQLite header is not a journal.
fn check_header(path: &Path, location: &str) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(JournalError::io(path, e)),
    };
    let mut header = Vec::with_capacity(16);
    (&mut f)
        .take(16)
        .read_to_end(&mut header)
        .map_err(|e| JournalError::io(path, e))?;
    if header.is_empty() || header.as_slice() == SQLITE_HEADER {
        return Ok(());
    }
    Err(JournalError::Corrupt {
        location: location.to_string(),
        detail: "the file is not a SQLite database (wrong header)".into(),
    })
}

impl Backend for SqliteBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<EventId>> {
        self.write("appending events", |c, loc| {
            Box::pin(async move { store::append_in_tx(c, &loc, events).await })
        })
        .await
    }

    async fn import_records(&self, records: Vec<EventRecord>) -> Result<u64> {
        self.write("importing events", |c, loc| {
            Box::pin(async move { store::import_in_tx(c, &loc, records).await })
        })
        .await
    }

    async fn rebuild_views(&self) -> Result<u64> {
        self.write("rebuilding views", |c, loc| {
            Box::pin(async move { store::rebuild_in_tx(c, &loc).await })
        })
        .await
    }

    async fn verify(&self) -> Result<LogReport> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| JournalError::db(&self.location, "verifying", e))?;
        let rows = conn
            .query("PRAGMA quick_check", &[], &[ColType::Text])
            .await
            .map_err(|e| JournalError::db(&self.location, "checking integrity", e))?;
        let problems: Vec<String> = rows
            .iter()
            .map(|r| r[0].string())
            .filter(|s| s != "ok")
            .collect();
        if !problems.is_empty() {
            return Err(JournalError::Corrupt {
                location: self.location.to_string(),
                detail: problems.join("; "),
            });
        }
        store::verify_log(&mut *conn, &self.location).await
    }

    async fn dump_views(&self) -> Result<String> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| JournalError::db(&self.location, "dumping views", e))?;
        store::dump_views(&mut *conn, &self.location).await
    }

    async fn query(
        &self,
        sql: String,
        params: Vec<Val>,
        types: Vec<ColType>,
    ) -> Result<Vec<Vec<Val>>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| JournalError::db(&self.location, "querying", e))?;
        conn.query(&sql, &params, &types)
            .await
            .map_err(|e| JournalError::db(&self.location, "querying", e))
    }

    async fn query_read_only(
        &self,
        sql: String,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<crate::analysis::QueryResult> {
        // a connection of its own, opened read-only, closed afterwards
        let mut conn = crate::analysis::sqlite_read_only(&self.path).await?;
        let out = crate::analysis::sqlite_query(&mut conn, &sql, max_rows, timeout).await;
        let _ = sqlx::Connection::close(conn).await;
        out
    }

    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactHash> {
        let dir = self.artifacts.clone();
        tokio::task::spawn_blocking(move || dir.put(&bytes))
            .await
            .map_err(|e| JournalError::Internal(format!("artifact writer failed: {e}")))?
    }

    async fn get_artifact(&self, hash: ArtifactHash) -> Result<Option<Vec<u8>>> {
        let dir = self.artifacts.clone();
        tokio::task::spawn_blocking(move || dir.get(&hash))
            .await
            .map_err(|e| JournalError::Internal(format!("artifact reader failed: {e}")))?
    }

    async fn list_artifacts(&self) -> Result<Vec<ArtifactHash>> {
        let dir = self.artifacts.clone();
        tokio::task::spawn_blocking(move || dir.list())
            .await
            .map_err(|e| JournalError::Internal(format!("artifact listing failed: {e}")))?
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
