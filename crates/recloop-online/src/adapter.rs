//! The adapter trait: how the platform obtains traffic data from a world (simulated or real).

use crate::analysis::MetricStats;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Cumulative observations after one day of an experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayReport {
    /// Experiment day (0-based).
    pub day: u32,
    /// Units exposed so far per arm, `[control, treatment]`.
    pub units: [u64; 2],
    /// Per metric, cumulative per-unit sufficient statistics `[control, treatment]`.
    pub metrics: BTreeMap<String, [MetricStats; 2]>,
}

/// Something that runs (or reads) a day of traffic at a given allocation and reports per-arm
/// sufficient statistics.
pub trait Adapter {
    /// Short name for reports (`simulator`, `logs`).
    fn name(&self) -> &str;
    /// Names of the metrics this adapter observes.
    fn metrics(&self) -> Vec<String>;
    /// Run day `day` with the treatment at traffic share `share` (the control has the same share)
    /// and return the cumulative observations.
    fn run_day(&mut self, day: u32, share: f64) -> Result<DayReport>;
    /// Days of data available (`None`: unlimited, e.g. a simulator).
    fn days_available(&self) -> Option<u32> {
        None
    }
}
