//! Which sandbox a workspace's commands run in (the runner itself is `recloop-sandbox`).
//!
//! Commands run confined whenever a sandbox can be established here: bubblewrap when it is
//! installed, else recloop's built-in Linux sandbox (user, mount, network, IPC and PID
//! namespaces, plus Landlock where the kernel has it). Where neither works:
//!
//! - a brain that writes code (the LLM brain) is refused, naming why no sandbox could be built,
//!   unless the manifest says `[sandbox] allow_unsandboxed = true`;
//! - a brain that only makes typed edits of declared parameters (the built-in brain) runs the
//!   workspace's own code, unconfined but with a cleared environment and the same time and memory
//!   limits; every command's outcome records how it ran.
//!
//! The data cache (`$RECLOOP_DATA`, or the default cache directory) is bound read-only into the
//! sandbox; datasets are fetched before any command runs, since commands have no network.

use crate::error::{AgentError, Result};
use recloop_core::Manifest;
use std::path::Path;
use std::time::Duration;

pub use recloop_sandbox::{
    Backend, CommandOutcome, Confinement, Sandbox, SandboxError, recloop_exe, which,
};

/// The sandbox for `manifest`'s commands; `state_dir` (the workspace's `.recloop/`) receives the
/// `recloop` link. `writes_code`: the brain writes arbitrary changes (see the module docs).
pub fn for_workspace(manifest: &Manifest, state_dir: &Path, writes_code: bool) -> Result<Sandbox> {
    let backend = match Backend::detect() {
        Ok(b) => b,
        Err(e) if !writes_code || manifest.sandbox.allow_unsandboxed => {
            tracing::warn!(
                "commands run unconfined ({}): {e}",
                if writes_code {
                    "[sandbox] allow_unsandboxed = true"
                } else {
                    "the built-in brain runs only the workspace's own code"
                }
            );
            Backend::Unconfined
        }
        Err(e) => {
            return Err(AgentError::Sandbox(format!(
                "{e}. Commands here run code a language model wrote, so recloop refuses to run \
                 them unconfined; install bubblewrap, enable unprivileged user namespaces, or \
                 set [sandbox] allow_unsandboxed = true in recloop.toml to accept the risk"
            )));
        }
    };
    let mut sb = Sandbox::new(
        backend,
        Duration::from_secs(manifest.commands.timeout_s.max(1)),
        manifest.sandbox.memory_mib,
    );
    if let Some(exe) = recloop_exe() {
        sb.link_recloop(state_dir, &exe)
            .map_err(|e| AgentError::Sandbox(e.to_string()))?;
    }
    // The command's PATH is this process's: directories of it under /tmp would be hidden by the
    // sandbox's private /tmp, so they are bound read-only like the data cache.
    if let Some(path) = std::env::var_os("PATH") {
        sb.extra_ro
            .extend(std::env::split_paths(&path).filter(|d| d.starts_with("/tmp") && d.is_dir()));
    }
    if let Ok(data) = recloop_fetch::cache_root() {
        std::fs::create_dir_all(&data).map_err(|e| AgentError::io(&data, e))?;
        sb.env
            .push(("RECLOOP_DATA".into(), data.display().to_string()));
        sb.extra_ro.push(data);
    }
    Ok(sb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "[project]\nname='x'\neditable=['a']\n[metrics]\nprimary={{name='m',direction='increase'}}\n{extra}"
        );
        Manifest::parse(&text, Path::new("recloop.toml")).unwrap()
    }

    #[test]
    fn confined_when_possible_and_never_silently_unconfined_for_code_an_llm_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let detected = Backend::detect();
        let llm = for_workspace(&manifest(""), dir.path(), true);
        let builtin = for_workspace(&manifest(""), dir.path(), false).unwrap();
        match detected {
            Ok(b) => {
                assert_eq!(llm.unwrap().backend, b);
                assert_eq!(builtin.backend, b);
            }
            Err(_) => {
                let e = llm.unwrap_err().to_string();
                assert!(e.contains("allow_unsandboxed"), "{e}");
                assert_eq!(builtin.backend, Backend::Unconfined);
                let allowed = for_workspace(
                    &manifest("[sandbox]\nallow_unsandboxed = true\n"),
                    dir.path(),
                    true,
                )
                .unwrap();
                assert_eq!(allowed.backend, Backend::Unconfined);
            }
        }
        // the data cache is readable inside, and named by RECLOOP_DATA
        assert!(builtin.env.iter().any(|(k, _)| k == "RECLOOP_DATA"));
        assert!(!builtin.extra_ro.is_empty());
    }
}
