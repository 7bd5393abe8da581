//! The append-only experiment journal, its views and the knowledge base.
//!
//! Everything recloop does is recorded here as typed, versioned [`Event`]s, before its effect is
//! relied on. Views (experiments with lineage, leaderboard, knowledge assets, lessons,
//! trajectories, harness versions, budget) are tables derived from the events by one projection
//! function, maintained in the same transaction as each append and rebuildable at any time.
//!
//! * [`Journal`] — blocking handle (internal runtime); [`AsyncJournal`] — async handle.
//!   Open with `Journal::open("path/journal.db" | "postgres://…[?schema=NAME]")` or
//!   `Journal::for_workspace(dir, url)` (`dir/.recloop/journal.db` by default).
//! * Backends behind one trait ([`Backend`]): SQLite (bundled, WAL, `synchronous=FULL`) and
//!   PostgreSQL; same schema and numbered migrations (`migrations/`).
//! * Resumption: idempotency keys ([`NewEvent::key`]), [`Journal::find_by_key`] and
//!   [`Journal::last_completed_step`].
//! * Retrieval: [`Journal::search`] (FTS5 / tsvector), [`Journal::similar_experiments`],
//!   [`Journal::best_first`].
//! * Analysis: [`Journal::query_read_only`] (one `SELECT`, row and time limits, a connection
//!   that cannot write) and [`MemoryDb`] for other tables queried the same way.
//! * Artifacts: [`Journal::put_artifact`] (content-addressed, sha256).
//!
//! The journal records; it holds no business rules (verdicts, lesson promotion and admission
//! are decided by the agents' plain code and arrive here as events).

pub mod analysis;
pub mod artifact;
pub mod backend;
mod blocking;
pub mod error;
pub mod event;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod journal;
pub mod leases;
pub mod paging;
mod projection;
mod retrieval;
pub mod schema;
pub mod sql;
mod store;
mod transfer;
mod viewbatch;
pub mod views;

pub use analysis::{MemTable, MemoryDb, PgLogs, QueryResult};
pub use artifact::ArtifactHash;
pub use backend::{AnyBackend, Backend, JOURNAL_URL_ENV, Location, PostgresBackend, SqliteBackend};
pub use blocking::Journal;
pub use error::{JournalError, Result};
pub use event::{EVENT_SCHEMA_VERSION, Event, EventId, EventRecord, JobEnd, NewEvent, RunOutcome};
pub use journal::AsyncJournal;
pub use leases::{Claim, ExpiredLease, LeaseStats, Leases};
pub use paging::{ExperimentPage, ExperimentQuery, IterationCounts};
pub use schema::SCHEMA_VERSION;
pub use store::LogReport;
pub use transfer::{ExportHeader, TransferSummary};
pub use views::{
    AssetView, BudgetView, EventFilter, ExperimentView, HarnessVersionView, LessonView,
    ProductionVersion, RankedExperiment, RunView, SearchFilter, SearchHit, SimilarExperiment,
    TrajectoryView,
};
