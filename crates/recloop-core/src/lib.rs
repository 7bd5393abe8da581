//! Domain types, identifiers and the workspace manifest of recloop.
//!
//! This crate does no I/O beyond reading `recloop.toml`. Every other crate depends on it; it
//! depends on none of them.

pub mod domain;
pub mod error;
pub mod manifest;
pub mod metric;
pub mod persona;

pub use domain::*;
pub use error::{CoreError, Result};
pub use manifest::{
    EvolveSection, ExecutorSection, ExternalSection, LlmBudget, LlmSection, LogMetricSpec,
    Manifest, ModelPrices, OffPolicySection, OnlineSection, ProjectSection, Quotas, SearchParam,
    WorkersSection,
};
pub use metric::{
    Direction, GuardrailCheck, GuardrailLevel, GuardrailSpec, MetricSpec, MetricValues,
    MetricsSection,
};
pub use persona::{Persona, PersonaSpec};
