//! Build an untrained model from its kind and `pipeline.toml` hyper-parameters.

use super::params::{check_param, kind_name, param_defs};
use crate::error::{RecError, Result};
use crate::models::{Model, ModelKind, bpr, ease, ials, itemknn, mostpop};
use std::collections::BTreeMap;

/// A fresh model of `kind` with `params` (defaults for absent keys). When the kind takes a `seed`
/// and `params` does not set one, `seed` is used. Fails on unknown or out-of-range parameters.
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
    let mut params = params.clone();
    if param_defs(kind).iter().any(|d| d.name == "seed") && !params.contains_key("seed") {
        // keep it exactly representable as f64
        params.insert("seed".into(), (seed % (1u64 << 52)) as f64);
    }
    Ok(match kind {
        ModelKind::MostPop => Box::new(mostpop::MostPop::from_params(&params)?),
        ModelKind::ItemKnn => Box::new(itemknn::ItemKnn::from_params(&params)?),
        ModelKind::Ease => Box::new(ease::Ease::from_params(&params)?),
        ModelKind::Ials => Box::new(ials::Ials::from_params(&params)?),
        ModelKind::Bpr => Box::new(bpr::Bpr::from_params(&params)?),
    })
}
