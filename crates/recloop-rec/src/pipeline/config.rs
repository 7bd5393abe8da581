//! The workspace's evaluation configuration, `eval/eval.toml`: which data, which split protocol,
//! which seed. It lives under the protected `eval/` folder so agents cannot move the goalposts.
//!
//! ```toml
//! dataset = "ml-1m"     # ml-100k | ml-1m | synthetic
//! protocol = "a"        # split protocol of the dataset (ignored for synthetic)
//! seed = 42             # split and model seed
//!
//! [synthetic]           # only for dataset = "synthetic"
//! users = 400
//! items = 300
//! ```

use super::locate::line_col;
use super::synthetic::SyntheticSpec;
use crate::error::{RecError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Path of the evaluation configuration inside a workspace.
pub const EVAL_CONFIG_FILE: &str = "eval/eval.toml";

/// Datasets a workspace may evaluate on.
pub const DATASETS: [&str; 3] = ["ml-100k", "ml-1m", "synthetic"];

/// `eval/eval.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Dataset name: `ml-100k`, `ml-1m` or `synthetic`.
    pub dataset: String,
    /// Split protocol (`a`, `b` or `temporal` for real datasets).
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Seed of the split and of every seeded model.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Size of the generated dataset when `dataset = "synthetic"`.
    #[serde(default)]
    pub synthetic: SyntheticSpec,
}

fn default_protocol() -> String {
    "a".to_string()
}
fn default_seed() -> u64 {
    42
}

impl EvalConfig {
    /// Read `eval/eval.toml` of the workspace `dir`.
    pub fn load_workspace(dir: &Path) -> Result<EvalConfig> {
        let file = dir.join(EVAL_CONFIG_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| RecError::Io {
            path: file.clone(),
            source,
        })?;
        EvalConfig::parse(&text, &file)
    }

    /// Parse and check configuration text (`origin` names the file in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<EvalConfig> {
        let config: EvalConfig = toml::from_str(text).map_err(|e| {
            let location = match e.span() {
                Some(span) => {
                    let (line, column) = line_col(text, span.start);
                    format!("{}:{line}:{column}", origin.display())
                }
                None => origin.display().to_string(),
            };
            RecError::Spec {
                location,
                reason: e.message().trim().to_string(),
            }
        })?;
        let bad = |key: &str, reason: String| {
            let line = super::locate::line_of(text, &[super::locate::Seg::Key(key)]);
            RecError::Spec {
                location: match line {
                    Some(l) => format!("{}:{l}", origin.display()),
                    None => origin.display().to_string(),
                },
                reason,
            }
        };
        if !DATASETS.contains(&config.dataset.as_str()) {
            return Err(bad(
                "dataset",
                format!(
                    "unknown dataset {:?} (expected one of {})",
                    config.dataset,
                    DATASETS.join(", ")
                ),
            ));
        }
        let s = &config.synthetic;
        if s.users < 2 || s.items < 10 || s.genres == 0 || s.per_user < 3 {
            return Err(bad(
                "synthetic",
                "synthetic data needs users ≥ 2, items ≥ 10, genres ≥ 1, per_user ≥ 3".into(),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_dataset() {
        let c =
            EvalConfig::parse("dataset = \"synthetic\"\nseed = 3\n", Path::new("e.toml")).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.protocol, "a");
        let e = EvalConfig::parse("seed = 1\ndataset = \"netflix\"\n", Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("e.toml:2"), "{e}");
        assert!(e.contains("netflix"), "{e}");
    }
}
