//! Reading and validating model hyper-parameters given as `BTreeMap<String, f64>` (the form
//! `pipeline.toml` passes them in).

use crate::error::{RecError, Result};
use std::collections::BTreeMap;

/// One hyper-parameter a model accepts: its name, default and inclusive valid range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HyperParam {
    /// Key in the parameter map.
    pub name: &'static str,
    /// Value used when the key is absent.
    pub default: f64,
    /// Smallest valid value (inclusive).
    pub min: f64,
    /// Largest valid value (inclusive).
    pub max: f64,
    /// Whether the value must be a whole number.
    pub integer: bool,
}

/// Resolve `params` against `defs` for `model`: the value of every definition, in `defs` order.
///
/// Fails with an error naming the parameter when a key is unknown, a value is not finite, out of
/// range, or not a whole number where one is required.
pub fn resolve(
    model: &str,
    params: &BTreeMap<String, f64>,
    defs: &[HyperParam],
) -> Result<Vec<f64>> {
    let bad = |reason: String| RecError::Model {
        model: model.to_string(),
        reason,
    };
    for name in params.keys() {
        if !defs.iter().any(|d| d.name == name) {
            let known: Vec<&str> = defs.iter().map(|d| d.name).collect();
            return Err(bad(format!(
                "unknown hyper-parameter `{name}` (known: {})",
                known.join(", ")
            )));
        }
    }
    let mut out = Vec::with_capacity(defs.len());
    for d in defs {
        let v = params.get(d.name).copied().unwrap_or(d.default);
        check(model, d, v)?;
        out.push(v);
    }
    Ok(out)
}

/// Check one value against its definition.
pub fn check(model: &str, def: &HyperParam, v: f64) -> Result<()> {
    let bad = |reason: String| RecError::Model {
        model: model.to_string(),
        reason,
    };
    if !v.is_finite() {
        return Err(bad(format!(
            "hyper-parameter `{}` must be finite, got {v}",
            def.name
        )));
    }
    if v < def.min || v > def.max {
        return Err(bad(format!(
            "hyper-parameter `{}` = {v} is outside [{}, {}]",
            def.name, def.min, def.max
        )));
    }
    if def.integer && v.fract() != 0.0 {
        return Err(bad(format!(
            "hyper-parameter `{}` must be a whole number, got {v}",
            def.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[HyperParam] = &[
        HyperParam {
            name: "k",
            default: 3.0,
            min: 1.0,
            max: 10.0,
            integer: true,
        },
        HyperParam {
            name: "reg",
            default: 0.5,
            min: 0.0,
            max: 1.0,
            integer: false,
        },
    ];

    #[test]
    fn defaults_and_overrides() {
        let mut p = BTreeMap::new();
        assert_eq!(resolve("m", &p, DEFS).unwrap(), vec![3.0, 0.5]);
        p.insert("reg".to_string(), 0.25);
        assert_eq!(resolve("m", &p, DEFS).unwrap(), vec![3.0, 0.25]);
    }

    #[test]
    fn errors_name_the_parameter() {
        for (k, v, want) in [
            ("kk", 1.0, "unknown hyper-parameter `kk`"),
            ("k", 2.5, "`k` must be a whole number"),
            ("k", 11.0, "`k` = 11 is outside"),
            ("reg", f64::NAN, "`reg` must be finite"),
        ] {
            let p = BTreeMap::from([(k.to_string(), v)]);
            let e = resolve("m", &p, DEFS).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.starts_with("model m:"), "{e}");
        }
    }
}
