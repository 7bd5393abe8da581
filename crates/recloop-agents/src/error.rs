//! Errors of the agents and the orchestrator.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed.
    #[error("git {args}: {message}")]
    Git {
        /// The arguments.
        args: String,
        /// stderr of git.
        message: String,
    },
    /// A unified diff was rejected.
    #[error("diff rejected: {0}")]
    Diff(String),
    /// No sandbox could be chosen for the workspace's commands.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A command could not be run in the sandbox.
    #[error("sandbox: {0}")]
    Command(#[from] recloop_sandbox::SandboxError),
    /// The manifest or workspace is not usable.
    #[error(transparent)]
    Core(#[from] recloop_core::CoreError),
    /// A pipeline or harness file is malformed.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file (or logical location).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(String),
    /// The online platform failed.
    #[error("online: {0}")]
    Online(String),
    /// The language model failed or its answer was unusable.
    #[error("llm: {0}")]
    Llm(String),
    /// Nothing to do or a referenced id does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A budget ran out.
    #[error("budget exhausted: {0}")]
    Budget(String),
    /// A decision waits for a person (`recloop approvals`, `recloop approve ID`).
    #[error("waiting for approval {id}: {question}")]
    AwaitingApproval {
        /// Approval id.
        id: String,
        /// The question asked.
        question: String,
    },
    /// The machinery failed on one candidate (holdout, platform, language model): recorded as
    /// `stage_failed`, not as a verdict or a gate failure.
    #[error("{} failure: {detail}", class.as_str())]
    Stage {
        /// The class of failure.
        class: recloop_core::ErrorClass,
        /// What went wrong.
        detail: String,
    },
    /// The run was stopped on purpose after a number of steps (resumption tests).
    #[error("stopped after {0} steps (resumption test)")]
    Stopped(usize),
    /// The run was cancelled (Ctrl-C): its jobs were cancelled, and `recloop run` continues it.
    #[error("the run was cancelled; its evaluation jobs were cancelled")]
    Cancelled,
    /// A worker thread panicked.
    #[error("a worker thread panicked while working on {0}")]
    WorkerPanicked(String),
}

impl AgentError {
    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<crate::config_edit::EditError> for AgentError {
    fn from(e: crate::config_edit::EditError) -> AgentError {
        AgentError::Invalid {
            path: e.file,
            reason: e.reason,
        }
    }
}
