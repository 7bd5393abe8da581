//! A/B statistics and off-policy estimators over sufficient statistics.
//!
//! Pure computation: no I/O, no knowledge of experiments, files or agents. Formulas follow
//! GrowthBook (gbstats), Spotify Confidence, Optimizely's mSPRT/ssrm and the Open Bandit
//! Pipeline; see `shared/reference/statistics.md`.
//!
//! Entry points:
//! - [`compare`]: two arms (mean, proportion or ratio metrics; optional CUPED), absolute or
//!   relative effect, Welch t or z, two-sided/greater/lesser, fixed horizon or always-valid
//!   sequential, Bayesian, non-inferiority. Convenience wrappers: [`sequential_harm_test`],
//!   [`non_inferiority_test`].
//! - [`srm_chi2`], [`srm_sequential`]: sample-ratio mismatch.
//! - [`msprt`], [`SequentialMonitor`], [`lan_demets_bounds`]: sequential testing.
//! - [`bonferroni`], [`holm`], [`benjamini_hochberg`], [`adjusted_interval`].
//! - [`minimum_detectable_effect`], [`sample_size`]: planning.
//! - [`ope`]: off-policy estimators for ranking logs with positions.
//! - [`run_json`]/[`run_request`]: the JSON contract of `recloop stats run`.
//!
//! Every error is a [`StatsError`] naming the offending field; results never contain NaN.

pub mod bayesian;
pub mod compare;
pub mod distributions;
pub mod error;
pub mod multiple;
pub mod ope;
pub mod power;
pub mod request;
pub mod sequential;
pub mod srm;
pub mod summary;

pub use bayesian::{GaussianPrior, Posterior, gaussian_posterior};
pub use compare::{
    Alternative, CompareRequest, CompareResult, Distribution, Effect, GoodDirection, HarmCheck,
    MarginKind, Method, NonInferiority, SequentialSpec, compare, effect, non_inferiority_test,
    sequential_harm_test, variance_of_ratios,
};
pub use error::{Result, StatsError};
pub use multiple::{adjusted_interval, benjamini_hochberg, bonferroni, holm};
pub use power::{PowerSpec, minimum_detectable_effect, sample_size};
pub use request::{
    DatasetError, DatasetLoader, DatasetSpec, LoggedDataset, PolicySpec, error_value, run_json,
    run_request,
};
pub use sequential::{MsprtRequest, MsprtResult, SequentialMonitor, lan_demets_bounds, msprt};
pub use srm::{SequentialSrmResult, SrmResult, srm_chi2, srm_sequential, srm_unhealthy};
pub use summary::{ArmSummary, MetricKind};
