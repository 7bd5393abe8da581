//! Errors of the server, and how each becomes an HTTP response.

use axum::http::StatusCode;

/// What can go wrong while serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(#[from] recloop_journal::JournalError),
    /// Answering an approval failed (unknown, already answered, reason missing).
    #[error("{0}")]
    Approval(String),
    /// Nothing at this path or id.
    #[error("not found: {0}")]
    NotFound(String),
    /// A malformed request (query parameter, form field).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No valid token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A template failed to render.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// Invalid settings (address, token).
    #[error("{0}")]
    Config(String),
    /// Binding or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A background task stopped unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

impl ServerError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::Approval(_) => StatusCode::CONFLICT,
            ServerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Result of the server's functions.
pub type Result<T> = std::result::Result<T, ServerError>;
