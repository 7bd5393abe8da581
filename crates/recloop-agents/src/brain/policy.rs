//! The built-in brain's policy: the numbers its search runs on (how many mutations it scores per
//! slot, how often a move is structural, how far a local move goes, how often an explore slot
//! skips a value change). A versioned harness like the language-model agents' files: it lives in
//! `.recloop/harness/builtin/policy.toml`, `recloop evolve --agent builtin` improves it by paired
//! replay of offline search episodes (`crate::evolve::policy`), and every version is a
//! `harness_version_created` event of agent `builtin`.

use crate::error::{AgentError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The agent name of the policy's harness versions.
pub const POLICY_AGENT: &str = "builtin";

/// The policy's file in its harness directory.
pub const POLICY_FILE: &str = "policy.toml";

/// The numbers the built-in brain's search runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrainPolicy {
    /// Mutations sampled and scored by TPE per batch slot.
    pub samples: usize,
    /// Probability that a local (exploit) move is structural (switch, add, remove, normalise).
    pub local_structural: f64,
    /// Probability that a global (explore, novel) move is structural.
    pub global_structural: f64,
    /// Width of a local move in a parameter's unit coordinates (uniform in ± half of it).
    pub local_step: f64,
    /// Probability that an explore slot skips a sampled value change (to favour structure).
    pub explore_value_skip: f64,
}

impl Default for BrainPolicy {
    fn default() -> Self {
        BrainPolicy {
            samples: 48,
            local_structural: 0.15,
            global_structural: 0.6,
            local_step: 0.4,
            explore_value_skip: 0.5,
        }
    }
}

/// Each policy number with the bounds an edit must respect.
pub const BOUNDS: [(&str, f64, f64); 5] = [
    ("samples", 4.0, 160.0),
    ("local_structural", 0.0, 0.6),
    ("global_structural", 0.1, 0.95),
    ("local_step", 0.05, 1.0),
    ("explore_value_skip", 0.0, 0.95),
];

impl BrainPolicy {
    /// The value of the number called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "samples" => self.samples as f64,
            "local_structural" => self.local_structural,
            "global_structural" => self.global_structural,
            "local_step" => self.local_step,
            "explore_value_skip" => self.explore_value_skip,
            _ => return None,
        })
    }

    /// This policy with `name` set to `value` (rounded for `samples`); `None` for an unknown
    /// name.
    pub fn with(&self, name: &str, value: f64) -> Option<BrainPolicy> {
        let mut p = self.clone();
        match name {
            "samples" => p.samples = value.round().max(1.0) as usize,
            "local_structural" => p.local_structural = value,
            "global_structural" => p.global_structural = value,
            "local_step" => p.local_step = value,
            "explore_value_skip" => p.explore_value_skip = value,
            _ => return None,
        }
        Some(p)
    }

    /// The first number outside its bounds, as (field, reason).
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        for (name, lo, hi) in BOUNDS {
            let v = self.get(name).unwrap_or(f64::NAN);
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return Err((name.into(), format!("must be in [{lo}, {hi}], found {v}")));
            }
        }
        Ok(())
    }

    /// The policy as its file's text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# The built-in brain's search policy (a versioned harness: `recloop evolve --agent builtin`\n# edits it by paired replay; `recloop journal show builtin@N` shows each version).\n{body}"
        )
    }

    /// Parse a policy file's text; errors name the file and the field.
    pub fn parse(text: &str, origin: &Path) -> Result<BrainPolicy> {
        let p: BrainPolicy = toml::from_str(text).map_err(|e| AgentError::Invalid {
            path: origin.display().to_string(),
            reason: e.message().trim().to_string(),
        })?;
        p.check().map_err(|(field, reason)| AgentError::Invalid {
            path: format!("{} ({field})", origin.display()),
            reason,
        })?;
        Ok(p)
    }

    /// The workspace's policy: its `policy.toml`, or the defaults when there is none.
    pub fn load(workspace: &Path) -> Result<BrainPolicy> {
        let file = path(workspace);
        match std::fs::read_to_string(&file) {
            Ok(text) => BrainPolicy::parse(&text, &file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BrainPolicy::default()),
            Err(e) => Err(AgentError::io(&file, e)),
        }
    }

    /// Write the policy to the workspace's `policy.toml`.
    pub fn save(&self, workspace: &Path) -> Result<()> {
        let file = path(workspace);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        }
        std::fs::write(&file, self.to_toml()).map_err(|e| AgentError::io(&file, e))
    }
}

/// Where the workspace's policy lives.
pub fn path(workspace: &Path) -> PathBuf {
    crate::harness::harness_dir(workspace, POLICY_AGENT).join(POLICY_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_bad_values_name_their_field() {
        let p = BrainPolicy::default();
        assert!(p.check().is_ok());
        let back = BrainPolicy::parse(&p.to_toml(), Path::new("policy.toml")).unwrap();
        assert_eq!(back, p);
        let err = BrainPolicy::parse("local_step = 3.0\n", Path::new("policy.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("local_step") && err.contains("[0.05, 1]"),
            "{err}"
        );
        let err = BrainPolicy::parse("speed = 1\n", Path::new("policy.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("speed"), "{err}");
        assert_eq!(p.with("samples", 12.4).unwrap().samples, 12);
        assert!(p.with("nope", 1.0).is_none());
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(BrainPolicy::load(tmp.path()).unwrap(), p);
        let edited = p.with("local_step", 0.2).unwrap();
        edited.save(tmp.path()).unwrap();
        assert_eq!(BrainPolicy::load(tmp.path()).unwrap(), edited);
    }
}
