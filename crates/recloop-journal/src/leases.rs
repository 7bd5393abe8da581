//! Leases for workers that share a PostgreSQL journal: a step (a candidate, a brainstorm, the
//! production branch's merge lock) is worked on by the one worker holding its lease. A lease is a
//! row of `worker_leases` claimed with `SELECT … FOR UPDATE SKIP LOCKED`, renewed while its
//! holder works and free for another worker once it has expired. The rows are coordination
//! state beside the event log, not part of it: the journal's events (`lease_acquired`,
//! `lease_expired`, `lease_taken_over`) are what the record keeps.

use crate::backend::AnyBackend;
use crate::blocking::Journal;
use crate::error::{JournalError, Result};
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A claimed lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The step's key.
    pub key: String,
    /// Generation of this lease (1 for the first holder).
    pub epoch: u64,
    /// The expired lease this claim took over, if any.
    pub took_over: Option<ExpiredLease>,
}

/// An expired lease that a claim replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    /// Its holder.
    pub worker: String,
    /// Its generation.
    pub epoch: u64,
    /// When it expired (RFC 3339, UTC, the database's clock).
    pub expired_at: String,
}

/// Lease traffic of this process (for the workers benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Claim attempts (successful or not).
    pub claims: u64,
    /// Renewals.
    pub renewals: u64,
    /// Other lease statements (enqueue, finish, release, counts).
    pub other: u64,
}

impl LeaseStats {
    /// Every lease statement.
    pub fn total(&self) -> u64 {
        self.claims + self.renewals + self.other
    }
}

#[derive(Debug, Default)]
struct Counters {
    claims: AtomicU64,
    renewals: AtomicU64,
    other: AtomicU64,
}

/// The leases of a PostgreSQL journal (blocking, like [`Journal`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leases {
    journal: Journal,
    counters: Arc<Counters>,
}

fn pool(backend: &AnyBackend) -> Result<sqlx::PgPool> {
    match backend {
        AnyBackend::Postgres(b) => Ok(b.pool().clone()),
        AnyBackend::Sqlite(_) => Err(JournalError::InvalidLocation {
            location: "sqlite".into(),
            reason: "leases need a PostgreSQL journal".into(),
        }),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(0.001)
}

impl Leases {
    /// The leases of `journal`, creating their table when missing; `None` for a SQLite journal
    /// (one process only).
    pub fn open(journal: &Journal) -> Result<Option<Leases>> {
        let pg = journal.run(|j| async move {
            let AnyBackend::Postgres(b) = j.backend() else {
                return Ok(None);
            };
            let loc = j.location().to_string();
            let mut tx =
                b.pool().begin().await.map_err(|e| {
                    JournalError::db(&loc, "creating the worker_leases table", e)
                })?;
            // the journal's write lock: two workers starting at once create the table once
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(b.lock_key())
                .execute(&mut *tx)
                .await
                .map_err(|e| JournalError::db(&loc, "taking the write lock", e))?;
            for sql in [
                "CREATE TABLE IF NOT EXISTS worker_leases (key TEXT PRIMARY KEY, queue TEXT NOT NULL, \
                 holder TEXT, epoch BIGINT NOT NULL DEFAULT 0, expires_at TIMESTAMPTZ, \
                 done BOOLEAN NOT NULL DEFAULT FALSE)",
                "CREATE INDEX IF NOT EXISTS worker_leases_queue ON worker_leases (queue, done, key)",
            ] {
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| JournalError::db(&loc, "creating the worker_leases table", e))?;
            }
            tx.commit()
                .await
                .map_err(|e| JournalError::db(&loc, "creating the worker_leases table", e))?;
            Ok(Some(()))
        })?;
        Ok(pg.map(|()| Leases {
            journal: journal.clone(),
            counters: Arc::default(),
        }))
    }

    /// Lease statements this handle (and its clones) sent.
    pub fn stats(&self) -> LeaseStats {
        LeaseStats {
            claims: self.counters.claims.load(Ordering::Relaxed),
            renewals: self.counters.renewals.load(Ordering::Relaxed),
            other: self.counters.other.load(Ordering::Relaxed),
        }
    }

    /// Add `keys` to `queue` (keys already present are left as they are).
    pub fn enqueue(&self, queue: &str, keys: &[String]) -> Result<()> {
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let (queue, keys) = (queue.to_string(), keys.to_vec());
        self.journal.run(|j| async move {
            let pool = pool(j.backend())?;
            sqlx::query(
                "INSERT INTO worker_leases (key, queue) SELECT k, $2 FROM UNNEST($1::text[]) AS k \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&keys)
            .bind(&queue)
            .execute(&pool)
            .await
            .map_err(|e| JournalError::db(j.location(), "enqueueing leases", e))?;
            Ok(())
        })
    }

    /// Claim the first key of `queue` that is not done and not held (or whose lease expired),
    /// for `ttl`; `None` when every such key is held by a live lease or done.
    pub fn claim_next(&self, queue: &str, worker: &str, ttl: Duration) -> Result<Option<Claim>> {
        self.counters.claims.fetch_add(1, Ordering::Relaxed);
        let (queue, worker) = (queue.to_string(), worker.to_string());
        self.journal.run(move |j| async move {
            let loc = j.location().to_string();
            let pool = pool(j.backend())?;
            let err = |e| JournalError::db(&loc, &format!("claiming a lease of {queue}"), e);
            let mut tx = pool.begin().await.map_err(err)?;
            let row = sqlx::query(
                "SELECT key, holder, epoch, \
                 to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                 FROM worker_leases WHERE queue = $1 AND NOT done \
                 AND (holder IS NULL OR expires_at < clock_timestamp()) \
                 ORDER BY key LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(&queue)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            let Some(row) = row else {
                tx.commit().await.map_err(err)?;
                return Ok(None);
            };
            let key: String = row.try_get(0).map_err(err)?;
            let holder: Option<String> = row.try_get(1).map_err(err)?;
            let old_epoch: i64 = row.try_get(2).map_err(err)?;
            let expired_at: Option<String> = row.try_get(3).map_err(err)?;
            let epoch: i64 = sqlx::query(
                "UPDATE worker_leases SET holder = $2, epoch = epoch + 1, \
                 expires_at = clock_timestamp() + make_interval(secs => $3) \
                 WHERE key = $1 RETURNING epoch",
            )
            .bind(&key)
            .bind(&worker)
            .bind(secs(ttl))
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?
            .try_get(0)
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(Some(Claim {
                key,
                epoch: epoch.max(0) as u64,
                took_over: holder.map(|worker| ExpiredLease {
                    worker,
                    epoch: old_epoch.max(0) as u64,
                    expired_at: expired_at.unwrap_or_default(),
                }),
            }))
        })
    }

    /// Extend a held lease by `ttl` from now; `false` when it is no longer this holder's (it
    /// expired and another worker took it, or the step is done).
    pub fn renew(&self, claim: &Claim, worker: &str, ttl: Duration) -> Result<bool> {
        self.counters.renewals.fetch_add(1, Ordering::Relaxed);
        let (key, worker, epoch) = (claim.key.clone(), worker.to_string(), claim.epoch as i64);
        self.journal.run(move |j| async move {
            let pool = pool(j.backend())?;
            let r = sqlx::query(
                "UPDATE worker_leases SET expires_at = clock_timestamp() + make_interval(secs => $4) \
                 WHERE key = $1 AND holder = $2 AND epoch = $3 AND NOT done",
            )
            .bind(&key)
            .bind(&worker)
            .bind(epoch)
            .bind(secs(ttl))
            .execute(&pool)
            .await
            .map_err(|e| JournalError::db(j.location(), &format!("renewing the lease of {key}"), e))?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Mark `key` done (its result is in the journal): nobody claims it again.
    pub fn finish(&self, key: &str) -> Result<()> {
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let key = key.to_string();
        self.journal.run(move |j| async move {
            let pool = pool(j.backend())?;
            sqlx::query(
                "UPDATE worker_leases SET done = TRUE, holder = NULL, expires_at = NULL WHERE key = $1",
            )
            .bind(&key)
            .execute(&pool)
            .await
            .map_err(|e| JournalError::db(j.location(), &format!("finishing the lease of {key}"), e))?;
            Ok(())
        })
    }

    /// Give a held lease back without finishing it (another worker may claim it at once).
    pub fn release(&self, claim: &Claim, worker: &str) -> Result<()> {
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let (key, worker, epoch) = (claim.key.clone(), worker.to_string(), claim.epoch as i64);
        self.journal.run(move |j| async move {
            let pool = pool(j.backend())?;
            sqlx::query(
                "UPDATE worker_leases SET holder = NULL, expires_at = NULL \
                 WHERE key = $1 AND holder = $2 AND epoch = $3",
            )
            .bind(&key)
            .bind(&worker)
            .bind(epoch)
            .execute(&pool)
            .await
            .map_err(|e| {
                JournalError::db(j.location(), &format!("releasing the lease of {key}"), e)
            })?;
            Ok(())
        })
    }

    /// Cumulative row activity of the journal's tables since the server's statistics were
    /// reset, from `pg_stat_user_tables` (the write load a benchmark measures): per table,
    /// (name, rows inserted, rows updated, index and sequential scans).
    pub fn table_activity(&self) -> Result<Vec<(String, u64, u64, u64)>> {
        self.journal.run(move |j| async move {
            let pool = pool(j.backend())?;
            let rows = sqlx::query(
                "SELECT relname::text, n_tup_ins, n_tup_upd, \
                 COALESCE(idx_scan, 0) + COALESCE(seq_scan, 0) FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() ORDER BY relname",
            )
            .fetch_all(&pool)
            .await
            .map_err(|e| JournalError::db(j.location(), "reading table statistics", e))?;
            let n = |r: &sqlx::postgres::PgRow, i: usize| -> u64 {
                r.try_get::<i64, _>(i).unwrap_or(0).max(0) as u64
            };
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.try_get::<String, _>(0).unwrap_or_default(),
                        n(r, 1),
                        n(r, 2),
                        n(r, 3),
                    )
                })
                .collect())
        })
    }

    /// Keys of `queue` not done yet.
    pub fn open_keys(&self, queue: &str) -> Result<u64> {
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let queue = queue.to_string();
        self.journal.run(move |j| async move {
            let pool = pool(j.backend())?;
            let n: i64 =
                sqlx::query("SELECT COUNT(*) FROM worker_leases WHERE queue = $1 AND NOT done")
                    .bind(&queue)
                    .fetch_one(&pool)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(|e| JournalError::db(j.location(), "counting leases", e))?;
            Ok(n.max(0) as u64)
        })
    }
}
