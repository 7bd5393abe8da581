//! Errors of the simulator.

/// Result alias for this crate.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// What went wrong while building or running the simulated world.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The ground-truth data is unusable.
    #[error("ground truth: {0}")]
    GroundTruth(String),
    /// A parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// Parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// A policy returned something unusable.
    #[error("policy `{policy}`: {reason}")]
    Policy {
        /// Policy name.
        policy: String,
        /// Why.
        reason: String,
    },
    /// The recommender (dataset, pipeline) failed.
    #[error("recommender: {0}")]
    Rec(#[from] recloop_rec::RecError),
    /// Writing logs failed.
    #[error("{path}: {message}")]
    Logs {
        /// File.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
}
