//! Paged and aggregated reads of the experiment view, for readers of large journals (the
//! dashboard): a page of experiments with the total that matched, and per-iteration counts.

use recloop_core::Decision;
use serde::{Deserialize, Serialize};

use crate::views::ExperimentView;

/// Filter and page of [`crate::Journal::experiments_page`]; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentQuery {
    /// Only this run.
    pub run_id: Option<String>,
    /// Only this lifecycle status (`proposed`, `rejected`, `decided`, `merged`, ...).
    pub status: Option<String>,
    /// Only this decision.
    pub decision: Option<Decision>,
    /// Only candidates that started from this production commit (children of a merge).
    pub base_commit: Option<String>,
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<usize>,
    /// Skip this many.
    pub offset: usize,
    /// Newest first instead of in the order they were proposed.
    pub newest_first: bool,
}

/// One page of experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentPage {
    /// Experiments that matched the filter (all pages).
    pub total: u64,
    /// This page.
    pub items: Vec<ExperimentView>,
}

/// What one iteration of a run did, counted from the experiment view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationCounts {
    /// Run.
    pub run_id: String,
    /// Iteration.
    pub iteration: u32,
    /// Proposals made.
    pub experiments: u64,
    /// Proposals rejected before any code was written.
    pub rejected: u64,
    /// KEEP verdicts.
    pub keeps: u64,
    /// EXTEND verdicts.
    pub extends: u64,
    /// DISCARD verdicts.
    pub discards: u64,
}
