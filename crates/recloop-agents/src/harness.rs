//! Harness files: each agent's instructions, validation rules, output contract and tool discipline.
//!
//! The defaults are embedded in the binary and written into `.recloop/harness/<agent>/` of a
//! workspace on first use; from then on they are loaded from there (the only place an agent's
//! behaviour is described) and hashed so the journal can version them.

use crate::error::{AgentError, Result};
use recloop_core::HarnessSpec;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The agents that have a harness.
pub const AGENTS: [&str; 4] = ["brainstorm", "develop", "evaluate", "evolve"];

/// The files of one harness.
pub const FILES: [&str; 4] = [
    "instructions.md",
    "validation.md",
    "contract.schema.json",
    "tools.md",
];

macro_rules! harness_files {
    ($agent:literal) => {
        [
            include_str!(concat!("../harness/", $agent, "/instructions.md")),
            include_str!(concat!("../harness/", $agent, "/validation.md")),
            include_str!(concat!("../harness/", $agent, "/contract.schema.json")),
            include_str!(concat!("../harness/", $agent, "/tools.md")),
        ]
    };
}

/// The embedded default text of `agent`'s harness, in the order of [`FILES`].
pub fn default_files(agent: &str) -> Option<[&'static str; 4]> {
    match agent {
        "brainstorm" => Some(harness_files!("brainstorm")),
        "develop" => Some(harness_files!("develop")),
        "evaluate" => Some(harness_files!("evaluate")),
        "evolve" => Some(harness_files!("evolve")),
        _ => None,
    }
}

/// Directory of `agent`'s harness in `workspace`.
pub fn harness_dir(workspace: &Path, agent: &str) -> PathBuf {
    workspace.join(".recloop").join("harness").join(agent)
}

/// Write the default harness of every agent into the workspace where a file is missing.
/// Existing files (possibly evolved) are left alone. Returns the files written.
pub fn install_defaults(workspace: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for agent in AGENTS {
        let dir = harness_dir(workspace, agent);
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
        let Some(texts) = default_files(agent) else {
            continue;
        };
        for (name, text) in FILES.iter().zip(texts) {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, text).map_err(|e| AgentError::io(&path, e))?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

/// A loaded harness with its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Harness {
    /// The files.
    pub spec: HarnessSpec,
    /// sha256 over the file names and contents (hex, first 16 characters).
    pub version: String,
}

impl Harness {
    /// Load `agent`'s harness from the workspace (installing defaults first if absent) and check
    /// that its contract is valid JSON.
    pub fn load(workspace: &Path, agent: &str) -> Result<Harness> {
        if default_files(agent).is_none() {
            return Err(AgentError::NotFound(format!(
                "no agent named {agent:?} (expected one of {AGENTS:?})"
            )));
        }
        install_defaults(workspace)?;
        let dir = harness_dir(workspace, agent);
        let mut files = BTreeMap::new();
        for name in FILES {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| AgentError::io(&path, e))?;
            files.insert(name.to_string(), text);
        }
        let harness = Harness::from_files(agent, files);
        harness.contract().map_err(|reason| AgentError::Invalid {
            path: dir.join("contract.schema.json").display().to_string(),
            reason,
        })?;
        Ok(harness)
    }

    /// Build from in-memory files.
    pub fn from_files(agent: &str, files: BTreeMap<String, String>) -> Harness {
        let mut h = Sha256::new();
        for (name, text) in &files {
            h.update(name.as_bytes());
            h.update([0u8]);
            h.update(text.as_bytes());
            h.update([0u8]);
        }
        let version = hex::encode(h.finalize())[..16].to_string();
        Harness {
            spec: HarnessSpec {
                agent: agent.to_string(),
                files,
            },
            version,
        }
    }

    /// The text of one file (empty if missing).
    pub fn file(&self, name: &str) -> &str {
        self.spec.files.get(name).map(String::as_str).unwrap_or("")
    }

    /// The output contract as a JSON value.
    pub fn contract(&self) -> std::result::Result<serde_json::Value, String> {
        serde_json::from_str(self.file("contract.schema.json"))
            .map_err(|e| format!("contract is not valid JSON: line {}: {e}", e.line()))
    }

    /// Validate `answer` against the contract; the error lists every violation with its JSON path.
    pub fn validate_answer(&self, answer: &serde_json::Value) -> std::result::Result<(), String> {
        let schema = self.contract()?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("contract schema is invalid: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(answer)
            .map(|e| format!("at {}: {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The system prompt assembled from instructions, validation rules, tool discipline and contract.
    pub fn system_prompt(&self) -> String {
        format!(
            "{}\n\n{}\n\n{}\n\n# Output contract (JSON Schema)\n\n```json\n{}\n```\n",
            self.file("instructions.md").trim(),
            self.file("validation.md").trim(),
            self.file("tools.md").trim(),
            self.file("contract.schema.json").trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_written_loaded_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let written = install_defaults(dir.path()).unwrap();
        assert_eq!(written.len(), 16);
        let a = Harness::load(dir.path(), "brainstorm").unwrap();
        assert!(a.file("instructions.md").contains("Brainstorm agent"));
        // Edits on disk change the version; the loaded text is the file's, not the default.
        let p = harness_dir(dir.path(), "brainstorm").join("tools.md");
        std::fs::write(&p, "edited").unwrap();
        let b = Harness::load(dir.path(), "brainstorm").unwrap();
        assert_eq!(b.file("tools.md"), "edited");
        assert_ne!(a.version, b.version);
        // A second install does not overwrite the edit.
        assert!(install_defaults(dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(p).unwrap(), "edited");
    }

    #[test]
    fn every_default_contract_is_a_valid_schema() {
        for agent in AGENTS {
            let files = default_files(agent).unwrap();
            let map = FILES
                .iter()
                .zip(files)
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect();
            let h = Harness::from_files(agent, map);
            let schema = h.contract().unwrap();
            jsonschema::validator_for(&schema).unwrap();
        }
    }

    #[test]
    fn answers_are_checked_against_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::load(dir.path(), "develop").unwrap();
        assert!(
            h.validate_answer(&serde_json::json!({"summary": "did it", "files_changed": []}))
                .is_ok()
        );
        let err = h
            .validate_answer(&serde_json::json!({"files_changed": "x"}))
            .unwrap_err();
        assert!(err.contains("summary"), "{err}");
    }

    #[test]
    fn broken_contract_is_named() {
        let dir = tempfile::tempdir().unwrap();
        install_defaults(dir.path()).unwrap();
        let p = harness_dir(dir.path(), "evaluate").join("contract.schema.json");
        std::fs::write(&p, "{ not json").unwrap();
        let err = Harness::load(dir.path(), "evaluate")
            .unwrap_err()
            .to_string();
        assert!(err.contains("contract.schema.json"), "{err}");
    }
}
