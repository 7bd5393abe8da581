//! Errors of the recommender crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = RecError> = std::result::Result<T, E>;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum RecError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A specification or script is malformed (`location` is `file:line` when known).
    #[error("{location}: {reason}")]
    Spec { location: String, reason: String },
    /// A dataset is missing, malformed, or failed its checksum.
    #[error("dataset {name}: {reason}")]
    Data { name: String, reason: String },
    /// A model was used wrongly (e.g. scored before fitting, wrong dimensions).
    #[error("model {model}: {reason}")]
    Model { model: String, reason: String },
}
