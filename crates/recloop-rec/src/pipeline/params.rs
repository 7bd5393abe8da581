//! The hyper-parameters each model kind accepts in `pipeline.toml`, with defaults and valid ranges.
//!
//! The tables are the models' own (`crate::models::<kind>::PARAMS`): the schema the agents mutate
//! within. `seed`, when a kind has one, defaults to the workspace's evaluation seed.

use crate::models::ModelKind;
use std::collections::BTreeMap;

/// One hyper-parameter of a model kind (the models' own table entry).
pub use crate::models::hparams::HyperParam as ParamDef;

/// BPR's table until the model module publishes its own.
const BPR: &[ParamDef] = &[
    ParamDef {
        name: "factors",
        default: 64.0,
        min: 1.0,
        max: 512.0,
        integer: true,
    },
    ParamDef {
        name: "lr",
        default: 0.05,
        min: 1e-6,
        max: 1.0,
        integer: false,
    },
    ParamDef {
        name: "reg",
        default: 0.001,
        min: 0.0,
        max: 10.0,
        integer: false,
    },
    ParamDef {
        name: "epochs",
        default: 30.0,
        min: 1.0,
        max: 500.0,
        integer: true,
    },
    ParamDef {
        name: "seed",
        default: 42.0,
        min: 0.0,
        max: 9.007_199_254_740_992e15,
        integer: true,
    },
];

/// The hyper-parameters `kind` accepts.
pub fn param_defs(kind: ModelKind) -> &'static [ParamDef] {
    match kind {
        ModelKind::MostPop => crate::models::mostpop::PARAMS,
        ModelKind::ItemKnn => crate::models::itemknn::PARAMS,
        ModelKind::Ease => crate::models::ease::PARAMS,
        ModelKind::Ials => crate::models::ials::PARAMS,
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
        assert!(
            check_param(ModelKind::Ease, "lamda", 250.0)
                .unwrap()
                .contains("unknown")
        );
        assert!(
            check_param(ModelKind::Ials, "factors", 64.5)
                .unwrap()
                .contains("whole")
        );
        assert!(
            check_param(ModelKind::Ials, "reg", -1.0)
                .unwrap()
                .contains("range")
        );
        assert!(
            check_param(ModelKind::MostPop, "k", 1.0)
                .unwrap()
                .contains("takes none")
        );
        assert!(
            check_param(ModelKind::Ease, "lambda", f64::NAN)
                .unwrap()
                .contains("finite")
        );
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
