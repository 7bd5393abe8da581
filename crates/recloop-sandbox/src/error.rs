//! The errors of the sandbox: one variant per cause.

use std::path::PathBuf;

/// What went wrong before or around a confined command (a command that ran and failed is not an
/// error: see [`crate::CommandOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No confining backend works on this machine.
    #[error(
        "no sandbox is available: {reason}. Fix: install bubblewrap (`apt-get install bubblewrap`, \
         `dnf install bubblewrap`, `pacman -S bubblewrap`) or enable unprivileged user namespaces; \
         or choose the unconfined backend explicitly"
    )]
    Unavailable {
        /// Why each backend was rejected.
        reason: String,
    },

    /// A path could not be read, created or resolved.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The command (or bubblewrap) could not be started.
    #[error("cannot start `{command}`: {source}")]
    Start {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// One step of the built-in confinement failed, so the command did not run.
    #[error("cannot confine `{command}`: {step} failed: {source}{hint}")]
    Setup {
        /// The command line.
        command: String,
        /// The step that failed (e.g. `unshare(CLONE_NEWUSER | ...)`, `pivot_root`).
        step: String,
        /// The error the kernel returned.
        #[source]
        source: std::io::Error,
        /// What this error usually means on this machine, with a leading separator (may be empty).
        hint: String,
    },

    /// Waiting for the command failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SandboxError {
        SandboxError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`SandboxError`].
pub type Result<T> = std::result::Result<T, SandboxError>;
