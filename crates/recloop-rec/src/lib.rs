//! The built-in recommender: datasets (fetch, load, split), models, the pipeline specification,
//! scoring scripts and offline metrics.
//!
//! It knows nothing about agents or the journal.

pub mod bench;
pub mod data;
pub mod error;
pub mod eval;
pub mod example;
pub mod interactions;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod split;

pub use error::{RecError, Result};
pub use interactions::Interactions;
pub use models::{Model, ModelKind};
