//! The experiment platform: assignment, ramps, health gate, harm veto and verdicts.
//!
//! [`run_with_adapter`] runs one guarded experiment against any [`Adapter`]; [`run_experiment`]
//! puts two [`recloop_sim::Policy`]s in front of simulated users.

pub mod adapter;
pub mod analysis;
pub mod assign;
pub mod calibration;
pub mod error;
pub mod experiment;
pub mod external;
pub mod harness;
pub mod log_source;
pub mod logs_adapter;
pub mod off_policy;
pub mod ope_data;
pub mod platform;
pub mod sim_adapter;
pub mod standin;
pub mod verdict;

pub use adapter::{Adapter, DayReport};
pub use analysis::{Comparison, MetricStats};
pub use assign::{Arm, Assignment, Layer, Layers};
pub use calibration::{RepeatedRuns, repeated_runs};
pub use error::{OnlineError, Result};
pub use experiment::{
    Ack, ExperimentEvent, ExperimentReport, ExperimentSettings, Outcome, resolve_metrics,
    run_with_adapter,
};
pub use external::ExternalPlatform;
pub use harness::{BUILTIN_POLICIES, builtin_policy, default_sim_manifest, resolve_policy};
pub use log_source::LogSource;
pub use logs_adapter::{LogsAdapter, sim_log_metrics};
pub use ope_data::ObdLoader;
pub use platform::{OnlinePlatform, PlatformError, platform_for};
pub use sim_adapter::{
    ExperimentConfig, SIM_METRICS, SimAdapter, default_sim_guardrails, run_experiment,
};
pub use verdict::{OnlineGuardrail, ResolvedMetrics, decide};
