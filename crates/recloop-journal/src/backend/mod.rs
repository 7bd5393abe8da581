//! The storage backends behind one trait: embedded SQLite (the default) and PostgreSQL.
//!
//! A backend knows how to open its database, take the write lock, run a transaction and store
//! artifacts; everything else (numbering, validation, projection, queries) is shared code in
//! `store`, `projection` and `journal`, written once for both.

mod postgres;
mod sqlite;

pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

use crate::artifact::ArtifactHash;
use crate::error::{JournalError, Result};
use crate::event::{EventId, EventRecord, NewEvent};
use crate::sql::{ColType, Dialect, Val};
use crate::store::LogReport;
use std::future::Future;
use std::path::{Path, PathBuf};

/// Environment variable that selects a journal URL for a workspace (e.g. `postgres://…`).
pub const JOURNAL_URL_ENV: &str = "RECLOOP_JOURNAL_URL";

/// Where a journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file (artifacts in `artifacts/` beside it).
    Sqlite(PathBuf),
    /// A PostgreSQL database; `schema` (from a `?schema=NAME` URL parameter) isolates journals
    /// that share a database.
    Postgres {
        /// The connection URL without the `schema` parameter.
        url: String,
        /// Schema holding the tables (default: the server's `search_path`, usually `public`).
        schema: Option<String>,
    },
}

impl Location {
    /// Parse `postgres://…`/`postgresql://…` URLs, `sqlite://PATH`/`sqlite:PATH`, or a file path.
    pub fn parse(s: &str) -> Result<Location> {
        let t = s.trim();
        if t.is_empty() {
            return Err(JournalError::InvalidLocation {
                location: s.to_string(),
                reason: "empty location".into(),
            });
        }
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            let (base, query) = match t.split_once('?') {
                Some((b, q)) => (b, q),
                None => (t, ""),
            };
            let mut schema = None;
            let mut rest = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("schema", v)) => {
                        if v.is_empty()
                            || !v
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        {
                            return Err(JournalError::InvalidLocation {
                                location: redact(s),
                                reason: format!(
                                    "schema `{v}` must be lowercase letters, digits and `_`"
                                ),
                            });
                        }
                        schema = Some(v.to_string());
                    }
                    _ => rest.push(pair),
                }
            }
            let url = if rest.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", rest.join("&"))
            };
            return Ok(Location::Postgres { url, schema });
        }
        if let Some((scheme, _)) = t.split_once("://")
            && scheme != "sqlite"
            && scheme != "file"
        {
            return Err(JournalError::InvalidLocation {
                location: redact(s),
                reason: format!(
                    "unsupported scheme `{scheme}` (use a file path, sqlite://PATH or postgres://URL)"
                ),
            });
        }
        let path = t
            .strip_prefix("sqlite://")
            .or_else(|| t.strip_prefix("sqlite:"))
            .or_else(|| t.strip_prefix("file://"))
            .unwrap_or(t);
        Ok(Location::Sqlite(PathBuf::from(path)))
    }

    /// The journal of a workspace: `url` if given, else `$RECLOOP_JOURNAL_URL`, else
    /// `WORKSPACE/.recloop/journal.db`.
    pub fn for_workspace(workspace: &Path, url: Option<&str>) -> Result<Location> {
        if let Some(u) = url.filter(|u| !u.trim().is_empty()) {
            return Location::parse(u);
        }
        if let Ok(u) = std::env::var(JOURNAL_URL_ENV)
            && !u.trim().is_empty()
        {
            return Location::parse(&u);
        }
        Ok(Location::Sqlite(
            workspace.join(".recloop").join("journal.db"),
        ))
    }

    /// Printable form (passwords hidden).
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres { url, schema } => match schema {
                Some(s) => format!("{}?schema={s}", redact(url)),
                None => redact(url),
            },
        }
    }
}

/// Hide the password of a URL.
pub(crate) fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((auth, host)) = rest.split_once('@')
        && let Some((user, _)) = auth.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// What every storage backend provides. Shared logic lives above it; implementations only open
/// the database, take the write lock, run a transaction and store artifacts.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Where the journal lives (printable, passwords hidden).
    fn location(&self) -> &str;

    /// The SQL dialect.
    fn dialect(&self) -> Dialect;

    /// Append events atomically: all or none, in order, each with the next sequence number.
    fn append_batch(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<EventId>>> + Send;

    /// Insert exported records into an empty journal (one transaction).
    fn import_records(&self, records: Vec<EventRecord>)
    -> impl Future<Output = Result<u64>> + Send;

    /// Empty the views and replay the log (one transaction). Returns events replayed.
    fn rebuild_views(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Check the log (sequence, checksums, parents) and, for SQLite, the file's integrity.
    fn verify(&self) -> impl Future<Output = Result<LogReport>> + Send;

    /// Canonical text of every view (for comparing rebuilds).
    fn dump_views(&self) -> impl Future<Output = Result<String>> + Send;

    /// Run a read-only query with `?` placeholders, decoding columns by `types`.
    fn query(
        &self,
        sql: String,
        params: Vec<Val>,
        types: Vec<ColType>,
    ) -> impl Future<Output = Result<Vec<Vec<Val>>>> + Send;

    /// One read-only analysis query (see [`crate::analysis`]).
    fn query_read_only(
        &self,
        sql: String,
        max_rows: usize,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<crate::analysis::QueryResult>> + Send;

    /// Store an artifact; returns its sha256.
    fn put_artifact(&self, bytes: Vec<u8>) -> impl Future<Output = Result<ArtifactHash>> + Send;

    /// Read an artifact (hash checked); `None` when absent.
    fn get_artifact(
        &self,
        hash: ArtifactHash,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Every stored artifact hash, sorted.
    fn list_artifacts(&self) -> impl Future<Output = Result<Vec<ArtifactHash>>> + Send;

    /// Close the connections.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Either backend, chosen at run time by [`Location`].
#[derive(Clone, Debug)]
pub enum AnyBackend {
    /// Embedded SQLite.
    Sqlite(SqliteBackend),
    /// PostgreSQL.
    Postgres(PostgresBackend),
}

impl AnyBackend {
    /// Open (creating or migrating when needed) the journal at `location`.
    pub async fn open(location: &Location) -> Result<AnyBackend> {
        match location {
            Location::Sqlite(p) => Ok(AnyBackend::Sqlite(SqliteBackend::open(p).await?)),
            Location::Postgres { url, schema } => Ok(AnyBackend::Postgres(
                PostgresBackend::open(url, schema.as_deref()).await?,
            )),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Sqlite($b) => $e,
            AnyBackend::Postgres($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    fn location(&self) -> &str {
        dispatch!(self, b => b.location())
    }

    fn dialect(&self) -> Dialect {
        dispatch!(self, b => b.dialect())
    }

    async fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<EventId>> {
        dispatch!(self, b => b.append_batch(events).await)
    }

    async fn import_records(&self, records: Vec<EventRecord>) -> Result<u64> {
        dispatch!(self, b => b.import_records(records).await)
    }

    async fn rebuild_views(&self) -> Result<u64> {
        dispatch!(self, b => b.rebuild_views().await)
    }

    async fn verify(&self) -> Result<LogReport> {
        dispatch!(self, b => b.verify().await)
    }

    async fn dump_views(&self) -> Result<String> {
        dispatch!(self, b => b.dump_views().await)
    }

    async fn query(
        &self,
        sql: String,
        params: Vec<Val>,
        types: Vec<ColType>,
    ) -> Result<Vec<Vec<Val>>> {
        dispatch!(self, b => b.query(sql, params, types).await)
    }

    async fn query_read_only(
        &self,
        sql: String,
        max_rows: usize,
        timeout: std::time::Duration,
    ) -> Result<crate::analysis::QueryResult> {
        dispatch!(self, b => b.query_read_only(sql, max_rows, timeout).await)
    }

    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactHash> {
        dispatch!(self, b => b.put_artifact(bytes).await)
    }

    async fn get_artifact(&self, hash: ArtifactHash) -> Result<Option<Vec<u8>>> {
        dispatch!(self, b => b.get_artifact(hash).await)
    }

    async fn list_artifacts(&self) -> Result<Vec<ArtifactHash>> {
        dispatch!(self, b => b.list_artifacts().await)
    }

    async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("/tmp/j.db").unwrap(),
            Location::Sqlite("/tmp/j.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/j.db").unwrap(),
            Location::Sqlite("/tmp/j.db".into())
        );
        assert_eq!(
            Location::parse("postgres://u:pw@h:5/db?schema=t_1&sslmode=disable").unwrap(),
            Location::Postgres {
                url: "postgres://u:pw@h:5/db?sslmode=disable".into(),
                schema: Some("t_1".into())
            }
        );
        assert!(Location::parse("mysql://x").is_err());
        assert!(Location::parse("postgres://h/db?schema=Bad-Name").is_err());
        assert_eq!(
            Location::parse("postgres://u:pw@h/db").unwrap().display(),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn workspace_default_is_dot_recloop() {
        // An explicit URL wins; without one the default file is used (env var not set in tests
        // that assert the default, so check the explicit path only).
        let l = Location::for_workspace(Path::new("/w"), Some("/x/j.db")).unwrap();
        assert_eq!(l, Location::Sqlite("/x/j.db".into()));
        if std::env::var(JOURNAL_URL_ENV).is_err() {
            let l = Location::for_workspace(Path::new("/w"), None).unwrap();
            assert_eq!(l, Location::Sqlite("/w/.recloop/journal.db".into()));
        }
    }
}
