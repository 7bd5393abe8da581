//! Harness versions as the journal records them, and keeping `.recloop/harness/` in step.
//!
//! Every version has a number per agent, a parent, its files, the diff from the parent and the
//! evidence of its admission. Rejected edits are versions too (`admitted = false`): the archive.
//! The latest admitted version is what the agents use; the files on disk are its working copy.

use crate::error::{AgentError, Result};
use crate::harness::{self, FILES, Harness};
use recloop_journal::{Event, HarnessVersionView, Journal};
use std::path::Path;

/// The versions of `agent`'s harness in the journal, by number.
pub fn list(journal: &Journal, agent: &str) -> Result<Vec<HarnessVersionView>> {
    journal
        .harness_versions(Some(agent))
        .map_err(|e| AgentError::Journal(e.to_string()))
}

/// The latest admitted version, if any.
pub fn latest_admitted(versions: &[HarnessVersionView]) -> Option<&HarnessVersionView> {
    versions
        .iter()
        .filter(|v| v.admitted)
        .max_by_key(|v| v.version)
}

/// The next free version number.
pub fn next_number(versions: &[HarnessVersionView]) -> u32 {
    versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
}

/// The harness of a recorded version.
pub fn harness_of(agent: &str, v: &HarnessVersionView) -> Harness {
    Harness::from_files(agent, v.files.clone())
}

/// Write `h`'s files into the workspace's harness directory.
pub fn write(workspace: &Path, h: &Harness) -> Result<()> {
    let dir = harness::harness_dir(workspace, &h.spec.agent);
    std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
    for name in FILES {
        let path = dir.join(name);
        std::fs::write(&path, h.file(name)).map_err(|e| AgentError::io(&path, e))?;
    }
    Ok(())
}

/// Bring the files on disk to the latest admitted version when they hold an older recorded
/// version (an admission whose files were not yet written, e.g. after a crash). Files that match
/// no recorded version are a person's edit and are left alone. Returns true when it wrote.
pub fn sync_disk(journal: &Journal, workspace: &Path, agent: &str) -> Result<bool> {
    let versions = list(journal, agent)?;
    let Some(latest) = latest_admitted(&versions) else {
        return Ok(false);
    };
    let on_disk = Harness::load(workspace, agent)?;
    let latest_h = harness_of(agent, latest);
    if on_disk.version == latest_h.version {
        return Ok(false);
    }
    let known = versions
        .iter()
        .any(|v| harness_of(agent, v).version == on_disk.version);
    if known {
        write(workspace, &latest_h)?;
        return Ok(true);
    }
    Ok(false)
}

/// The version number of `h` when the journal knows its files (admitted or not), else the event
/// that records it as a new version: version 1 when the agent has none, otherwise a hand edit
/// derived from the latest admitted version.
pub fn in_use(journal: &Journal, h: &Harness) -> Result<std::result::Result<u32, Event>> {
    let agent = &h.spec.agent;
    let versions = list(journal, agent)?;
    if let Some(v) = versions
        .iter()
        .rev()
        .filter(|v| v.admitted)
        .find(|v| harness_of(agent, v).version == h.version)
    {
        return Ok(Ok(v.version));
    }
    let number = next_number(&versions);
    let parent = latest_admitted(&versions);
    let diff = parent
        .map(|p| {
            let old = harness_of(agent, p);
            FILES
                .iter()
                .filter(|n| old.file(n) != h.file(n))
                .map(|n| crate::diff::make(n, old.file(n), h.file(n)))
                .collect::<String>()
        })
        .unwrap_or_default();
    Ok(Err(Event::HarnessVersionCreated {
        version: number,
        parent_version: parent.map(|p| p.version),
        admitted: true,
        diagnosis: if parent.is_some() {
            format!(
                "harness {} edited in .recloop/harness outside evolve",
                h.version
            )
        } else {
            format!("initial harness {} from .recloop/harness", h.version)
        },
        spec: h.spec.clone(),
        diff,
        evidence: serde_json::json!({"source": if parent.is_some() { "hand edit" } else { "initial" }}),
    }))
}
