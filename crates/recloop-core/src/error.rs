//! Errors raised while reading and validating core types.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The manifest file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not match the schema (`message` carries line and column).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The manifest parsed but a value is not acceptable.
    #[error("{path}: invalid `{field}`: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}
