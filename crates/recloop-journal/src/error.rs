//! Errors of the journal: what went wrong, and where.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, writing or reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database file exists but is not a SQLite database, or SQLite reports it corrupt.
    #[error(
        "journal {location} is corrupt: {detail} (restore it from a backup or an `recloop journal export`)"
    )]
    Corrupt {
        /// File path or URL of the journal.
        location: String,
        /// What was found.
        detail: String,
    },
    /// The database is a valid database, but not a recloop journal.
    #[error("{location} is not a recloop journal: {detail}")]
    Foreign {
        /// File path or URL.
        location: String,
        /// What was found instead (e.g. the tables present).
        detail: String,
    },
    /// The journal was written by a newer recloop with a schema this build does not know.
    #[error(
        "journal {location} has schema version {found}, but this recloop supports up to version {supported}; upgrade recloop"
    )]
    FutureSchema {
        /// File path or URL.
        location: String,
        /// Version found in the `meta` table.
        found: i64,
        /// Newest version this build understands.
        supported: i64,
    },
    /// The journal location could not be understood.
    #[error("invalid journal location `{location}`: {reason}")]
    InvalidLocation {
        /// What was given.
        location: String,
        /// Why it is not usable.
        reason: String,
    },
    /// An event could not be appended because it is malformed.
    #[error("invalid event `{event_type}`: {reason}")]
    InvalidEvent {
        /// The event's type tag.
        event_type: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An idempotency key was reused by an event of a different type.
    #[error(
        "idempotency key `{key}` already belongs to event #{seq} of type `{existing_type}`, not `{new_type}`"
    )]
    KeyConflict {
        /// The key.
        key: String,
        /// Sequence number of the event that owns it.
        seq: u64,
        /// Type of that event.
        existing_type: String,
        /// Type of the rejected event.
        new_type: String,
    },
    /// An import source is malformed.
    #[error("import {source_name}, line {line}: {reason}")]
    Import {
        /// Name of the input (file path or `stdin`).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// Import requires an empty journal.
    #[error(
        "cannot import into {location}: it already holds {events} events (import needs an empty journal)"
    )]
    NotEmpty {
        /// File path or URL.
        location: String,
        /// Events present.
        events: u64,
    },
    /// A referenced item (event, artifact, experiment) does not exist.
    #[error("{what} not found in journal {location}")]
    NotFound {
        /// What was looked up.
        what: String,
        /// File path or URL.
        location: String,
    },
    /// A database error that is none of the above.
    #[error("journal {location}: database error during {operation}: {source}")]
    Database {
        /// File path or URL.
        location: String,
        /// What the journal was doing.
        operation: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A file-system error (artifacts, database directory, export file).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A read-only analysis query was refused (a write, several statements), failed in the
    /// database, or ran past its time limit.
    #[error("read-only query failed: {reason}")]
    Query {
        /// Why, in the database's words where it gave some.
        reason: String,
    },
    /// An internal failure (a background task died); should not happen.
    #[error("journal internal error: {0}")]
    Internal(String),
}

impl JournalError {
    /// Wrap a driver error, recognising corruption and foreign-file conditions.
    pub(crate) fn db(location: &str, operation: &str, source: sqlx::Error) -> JournalError {
        if let Some(db) = source.as_database_error() {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLite primary codes: 11 = CORRUPT, 26 = NOTADB (extended codes keep the low byte).
            if let Ok(n) = code.parse::<i64>() {
                let primary = n & 0xff;
                if primary == 11 || primary == 26 {
                    return JournalError::Corrupt {
                        location: location.to_string(),
                        detail: db.message().to_string(),
                    };
                }
            }
        }
        JournalError::Database {
            location: location.to_string(),
            operation: operation.to_string(),
            source,
        }
    }

    /// Wrap an I/O error with its path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: path.into(),
            source,
        }
    }
}
