//! PostgreSQL backend, selected by a `postgres://` URL (optionally `?schema=NAME`).
//!
//! Same logical schema as SQLite (migrations in `migrations/postgres/`); full-text search through
//! a generated `tsvector` column with a GIN index; artifacts in the `artifacts` table. Writers are
//! serialised by a transaction-scoped advisory lock, which keeps sequence numbers gap-free even
//! across processes; with the default `synchronous_commit=on`, a committed append is durable.

use super::Backend;
use crate::artifact::ArtifactHash;
use crate::error::{JournalError, Result};
use crate::event::{EventId, EventRecord, NewEvent};
use crate::schema;
use crate::sql::{ColType, Dialect, SqlConn, Val};
use crate::store::{self, LogReport};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Row};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL journal.
#[derive(Clone, Debug)]
pub struct PostgresBackend {
    pool: sqlx::PgPool,
    location: Arc<str>,
    schema: Option<String>,
    lock_key: i64,
}

type TxFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

impl PostgresBackend {
    /// Connect to `url` (tables in `schema`, created if missing) and prepare the schema.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<PostgresBackend> {
        let display = super::Location::Postgres {
            url: url.to_string(),
            schema: schema.map(str::to_string),
        }
        .display();
        let location: Arc<str> = Arc::from(display);
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| JournalError::InvalidLocation {
                location: location.to_string(),
                reason: e.to_string(),
            })?;
        if let Some(s) = schema {
            options = options.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(20))
            .connect_with(options)
            .await
            .map_err(|e| JournalError::db(&location, "connecting", e))?;
        // One lock per schema: journals in different schemas do not serialise each other.
        let lock_key = 0x7265_636c_6f6f_7000_i64 ^ fnv(schema.unwrap_or("public"));
        let backend = PostgresBackend {
            pool,
            location,
            schema: schema.map(str::to_string),
            lock_key,
        };
        let schema_name = backend.schema.clone();
        backend
            .write("checking the schema", move |c, loc| {
                Box::pin(async move {
                    if let Some(s) = schema_name {
                        // The name was validated as [a-z0-9_]+ by Location::parse.
                        c.exec(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""), &[])
                            .await
                            .map_err(|e| JournalError::db(&loc, "creating the schema", e))?;
                    }
                    schema::prepare(c, Dialect::Postgres, &loc).await
                })
            })
            .await?;
        Ok(backend)
    }

    /// The connection pool (leases use it).
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// The key of the journal's advisory write lock.
    pub(crate) fn lock_key(&self) -> i64 {
        self.lock_key
    }

    /// Drop the schema holding this journal (tests use it to clean up). Refuses without a schema.
    pub async fn drop_schema(&self) -> Result<()> {
        let Some(s) = &self.schema else {
            return Err(JournalError::InvalidLocation {
                location: self.location.to_string(),
                reason: "no schema given; refusing to drop tables of the default schema".into(),
            });
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| JournalError::db(&self.location, "dropping the schema", e))?;
        conn.exec(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"), &[])
            .await
            .map_err(|e| JournalError::db(&self.location, "dropping the schema", e))?;
        Ok(())
    }

    /// Run `f` in a transaction holding the journal's advisory lock; commit on success.
    async fn write<T, F>(&self, operation: &str, f: F) -> Result<T>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut PgConnection, Arc<str>) -> TxFuture<'c, T> + Send,
    {
        let loc = self.location.clone();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| JournalError::db(&loc, operation, e))?;
        tx.exec(
            "SELECT pg_advisory_xact_lock(?)",
            &[Val::int(self.lock_key)],
        )
        .await
        .map_err(|e| JournalError::db(&loc, "taking the write lock", e))?;
        let out = f(&mut tx, loc.clone()).await?;
        tx.commit()
            .await
            .map_err(|e| JournalError::db(&loc, &format!("committing ({operation})"), e))?;
        Ok(out)
    }
}

fn fnv(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 1) as i64
}

impl Backend for PostgresBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
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
        crate::analysis::postgres_query(&self.pool, &self.location, "", &sql, max_rows, timeout)
            .await
    }

    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactHash> {
        let hash = ArtifactHash::of(&bytes);
        sqlx::query(
            "INSERT INTO artifacts (hash, size, content) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(hash.as_str())
        .bind(bytes.len() as i64)
        .bind(bytes)
        .execute(&self.pool)
        .await
        .map_err(|e| JournalError::db(&self.location, "storing an artifact", e))?;
        Ok(hash)
    }

    async fn get_artifact(&self, hash: ArtifactHash) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT content FROM artifacts WHERE hash = $1")
            .bind(hash.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| JournalError::db(&self.location, "reading an artifact", e))?;
        let Some(row) = row else { return Ok(None) };
        let bytes: Vec<u8> = row
            .try_get(0)
            .map_err(|e| JournalError::db(&self.location, "reading an artifact", e))?;
        if ArtifactHash::of(&bytes) != hash {
            return Err(JournalError::Corrupt {
                location: self.location.to_string(),
                detail: format!("artifact {hash}: content does not match its sha256"),
            });
        }
        Ok(Some(bytes))
    }

    async fn list_artifacts(&self) -> Result<Vec<ArtifactHash>> {
        let rows = self
            .query(
                "SELECT hash FROM artifacts ORDER BY hash".into(),
                vec![],
                vec![ColType::Text],
            )
            .await?;
        rows.iter()
            .map(|r| {
                ArtifactHash::parse(&r[0].string()).map_err(|e| JournalError::Corrupt {
                    location: self.location.to_string(),
                    detail: e,
                })
            })
            .collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
