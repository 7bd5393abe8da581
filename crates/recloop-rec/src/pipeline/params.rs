//! The hyper-parameters each model kind accepts in `pipeline.toml`, with defaults and valid ranges.
//!
//! This table is the schema the agents mutate within; the model factory reads values through it.

use crate::models::ModelKind;
use std::collections::BTreeMap;

/// One hyper-parameter of a model kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamDef {
    /// Key under `[models.params]`.
    pub name: &'static str,
    /// Value used when the key is absent.
    pub default: f64,
    /// Smallest valid value (inclusive).
    pub min: f64,
    /// Largest valid value (inclusive).
    pub max: f64,
    /// Whether the value must be a whole number.
    pub integer: bool,
    /// What the parameter does.
    pub doc: &'static str,
}

const fn p(
    name: &'static str,
    default: f64,
    min: f64,
    max: f64,
    integer: bool,
    doc: &'static str,
) -> ParamDef {
    ParamDef {
        name,
        default,
        min,
        max,
        integer,
        doc,
    }
}

const MOSTPOP: &[ParamDef] = &[];
const ITEMKNN: &[ParamDef] = &[p(
    "k",
    20.0,
    1.0,
    2000.0,
    true,
    "number of nearest neighbours kept per item (cosine similarity)",
)];
const EASE: &[ParamDef] = &[p(
    "lambda",
    500.0,
    1e-3,
    1e6,
    false,
    "L2 regularisation added to the diagonal of the Gram matrix",
)];
const IALS: &[ParamDef] = &[
    p("factors", 64.0, 1.0, 512.0, true, "latent dimensions"),
    p("reg", 0.05, 0.0, 1e4, false, "L2 regularisation"),
    p("alpha", 1.0, 1e-6, 1e4, false, "confidence weight of observed interactions"),
    p("iterations", 15.0, 1.0, 100.0, true, "alternating least-squares sweeps"),
];
const BPR: &[ParamDef] = &[
    p("factors", 64.0, 1.0, 512.0, true, "latent dimensions"),
    p("lr", 0.05, 1e-6, 1.0, false, "SGD learning rate"),
    p("reg", 0.001, 0.0, 10.0, false, "L2 regularisation"),
    p("epochs", 30.0, 1.0, 500.0, true, "passes over the training interactions"),
];

/// The hyper-parameters `kind` accepts.
pub fn param_defs(kind: ModelKind) -> &'static [ParamDef] {
    match kind {
        ModelKind::MostPop => MOSTPOP,
        ModelKind::ItemKnn => ITEMKNN,
        ModelKind::Ease => EASE,
        ModelKind::Ials => IALS,
        ModelKind::Bpr => BPR,
    }
}

/// The spelling of a kind in `pipeline.toml`.
pub fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::MostPop => "mostpop",
        ModelKind::ItemKnn => "itemknn",
        ModelKind::Ease => "ease",
        ModelKind::Ials => "ials",
        ModelKind::Bpr => "bpr",
    }
}

/// Every kind, in documentation order.
pub const ALL_KINDS: [ModelKind; 5] = [
    ModelKind::MostPop,
    ModelKind::ItemKnn,
    ModelKind::Ease,
    ModelKind::Ials,
    ModelKind::Bpr,
];

/// Why one parameter value is not acceptable, or `None` when it is.
pub fn check_param(kind: ModelKind, name: &str, value: f64) -> Option<String> {
    let defs = param_defs(kind);
    let Some(def) = defs.iter().find(|d| d.name == name) else {
        let known: Vec<&str> = defs.iter().map(|d| d.name).collect();
        return Some(if known.is_empty() {
            format!(
                "unknown hyper-parameter `{name}`: model kind `{}` takes none",
                kind_name(kind)
            )
        } else {
            format!(
                "unknown hyper-parameter `{name}` for model kind `{}` (known: {})",
                kind_name(kind),
                known.join(", ")
            )
        });
    };
    if !value.is_finite() {
        return Some(format!("`{name}` must be a finite number, found {value}"));
    }
    if def.integer && value.fract() != 0.0 {
        return Some(format!("`{name}` must be a whole number, found {value}"));
    }
    if value < def.min || value > def.max {
        return Some(format!(
            "`{name}` = {value} is outside the valid range [{}, {}]",
            def.min, def.max
        ));
    }
    None
}

/// Resolved parameter values: the given ones over the defaults.
pub fn resolve(kind: ModelKind, given: &BTreeMap<String, f64>) -> BTreeMap<&'static str, f64> {
    param_defs(kind)
        .iter()
        .map(|d| (d.name, given.get(d.name).copied().unwrap_or(d.default)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names_ranges_and_integers() {
        assert!(check_param(ModelKind::Ease, "lambda", 250.0).is_none());
        assert!(check_param(ModelKind::Ease, "lamda", 250.0).unwrap().contains("unknown"));
        assert!(check_param(ModelKind::Ials, "factors", 64.5).unwrap().contains("whole"));
        assert!(check_param(ModelKind::Ials, "reg", -1.0).unwrap().contains("range"));
        assert!(check_param(ModelKind::MostPop, "k", 1.0).unwrap().contains("takes none"));
        assert!(check_param(ModelKind::Ease, "lambda", f64::NAN).unwrap().contains("finite"));
    }

    #[test]
    fn resolve_fills_defaults() {
        let mut given = BTreeMap::new();
        given.insert("factors".to_string(), 32.0);
        let r = resolve(ModelKind::Ials, &given);
        assert_eq!(r["factors"], 32.0);
        assert_eq!(r["iterations"], 15.0);
    }
}
