//! Build an untrained model from its kind and `pipeline.toml` hyper-parameters.

use super::params::{check_param, kind_name, resolve};
use crate::error::{RecError, Result};
use crate::models::{Model, ModelKind};
use std::collections::BTreeMap;

/// A fresh model of `kind` with `params` (defaults for absent keys); `seed` seeds stochastic
/// training. Fails on unknown or out-of-range parameters.
pub fn build_model(
    kind: ModelKind,
    params: &BTreeMap<String, f64>,
    seed: u64,
) -> Result<Box<dyn Model>> {
    for (name, &value) in params {
        if let Some(reason) = check_param(kind, name, value) {
            return Err(RecError::Model {
                model: kind_name(kind).to_string(),
                reason,
            });
        }
    }
    let p = resolve(kind, params);
    let _ = (p, seed);
    Err(RecError::Model {
        model: kind_name(kind).to_string(),
        reason: "not available yet".into(),
    })
}
