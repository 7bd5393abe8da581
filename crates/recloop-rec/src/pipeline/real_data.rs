//! Adapter from the dataset loaders and split protocols (`crate::data`, `crate::split`) to
//! [`PipelineData`](super::data::PipelineData).

use super::data::PipelineData;
use crate::error::{RecError, Result};

/// Load dataset `name` (fetching it into the cache if needed) and split it by `protocol`.
pub fn load(name: &str, protocol: &str, seed: u64) -> Result<PipelineData> {
    let _ = seed;
    Err(RecError::Data {
        name: name.to_string(),
        reason: format!("loading with protocol {protocol:?} is not wired yet"),
    })
}
