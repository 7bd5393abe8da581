//! Errors of the log crate; each names the file and, where known, the line and field.

use std::path::PathBuf;

/// An error reading, writing or aggregating logs.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// Operating-system I/O failure on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet or Arrow failure on a file.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A malformed CSV record.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Column name.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// A file whose columns do not match the log schema.
    #[error("{path}: {message}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// An invalid argument or row value.
    #[error("{field}: {message}")]
    Invalid {
        /// The argument or field.
        field: String,
        /// What was wrong.
        message: String,
    },
}

impl LogsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogsError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        LogsError::Parquet {
            path: path.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        LogsError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, LogsError>;
