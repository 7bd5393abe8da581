//! Errors of the experiment platform.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = OnlineError> = std::result::Result<T, E>;

/// What went wrong in an experiment, and where.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// A metric the manifest or configuration needs is not observed by the adapter.
    #[error("metric `{metric}` ({role}) is not observed online; the adapter provides: {available}")]
    MissingMetric {
        /// Metric name.
        metric: String,
        /// Its role (`primary`, `guardrail`, ...).
        role: String,
        /// Comma-separated names the adapter does provide.
        available: String,
    },
    /// A statistic came out non-finite (NaN or infinite).
    #[error("metric `{metric}` has a non-finite value on day {day}: {detail}")]
    NonFinite {
        /// Metric name.
        metric: String,
        /// Experiment day.
        day: u32,
        /// What was non-finite.
        detail: String,
    },
    /// Two live experiments in the same layer would change the same parameter.
    #[error(
        "experiment `{experiment}` conflicts with live experiment `{owner}` in layer `{layer}`: both change parameter `{parameter}`"
    )]
    Conflict {
        /// The experiment that was refused.
        experiment: String,
        /// The live experiment that owns the parameter.
        owner: String,
        /// The layer.
        layer: String,
        /// The contested parameter.
        parameter: String,
    },
    /// A layer has no free buckets left for the requested traffic.
    #[error("layer `{layer}` has {free} free buckets, experiment `{experiment}` needs {needed}")]
    LayerFull {
        /// The layer.
        layer: String,
        /// The experiment that was refused.
        experiment: String,
        /// Buckets still free.
        free: u32,
        /// Buckets requested.
        needed: u32,
    },
    /// A configuration value is not acceptable.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Field name.
        field: String,
        /// Why.
        reason: String,
    },
    /// Exposure or event logs could not be read or are malformed.
    #[error("{path}: {message}")]
    Logs {
        /// File (or table) that was read.
        path: PathBuf,
        /// What was wrong (row, column, value).
        message: String,
    },
    /// The experiment platform failed while the experiment ran (e.g. a traffic command).
    #[error("platform: {0}")]
    Platform(String),
    /// A statistics computation (recloop-stats) refused its input.
    #[error("statistics ({context}): {message}")]
    Stats {
        /// What the platform was computing.
        context: String,
        /// The error of recloop-stats, naming the offending field.
        message: String,
    },
    /// The simulator failed.
    #[error("simulator: {0}")]
    Sim(#[from] recloop_sim::SimError),
    /// The callback (journal) asked to stop.
    #[error("stopped by the observer at day {day}: {reason}")]
    Stopped {
        /// Experiment day.
        day: u32,
        /// Reason given.
        reason: String,
    },
}
