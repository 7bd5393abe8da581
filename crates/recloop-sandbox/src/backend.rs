//! Which mechanism confines commands, how to pick it, and how a finished command was confined.

use crate::error::{Result, SandboxError};
use crate::sandbox::Sandbox;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The mechanism that confines commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// bubblewrap, at this path.
    Bubblewrap(PathBuf),
    /// The built-in sandbox: user, mount, network, IPC, PID and UTS namespaces (+ Landlock).
    Namespaces,
    /// No confinement at all: only when the caller explicitly asks for it.
    Unconfined,
}

/// How a command was confined, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confinement {
    /// Inside bubblewrap.
    Bubblewrap,
    /// Inside the built-in namespaces; read-only mounts only (this kernel has no Landlock).
    Namespaces,
    /// Inside the built-in namespaces, with a Landlock write policy on top of the mounts.
    NamespacesLandlock,
    /// Not confined (explicitly allowed).
    Unconfined,
}

impl Confinement {
    /// True unless the command ran unconfined.
    pub fn is_confined(self) -> bool {
        self != Confinement::Unconfined
    }
}

impl fmt::Display for Confinement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Confinement::Bubblewrap => "bubblewrap",
            Confinement::Namespaces => "namespaces",
            Confinement::NamespacesLandlock => "namespaces+landlock",
            Confinement::Unconfined => "unconfined",
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Bubblewrap(p) => write!(f, "bubblewrap ({})", p.display()),
            Backend::Namespaces => f.write_str("built-in namespaces"),
            Backend::Unconfined => f.write_str("unconfined"),
        }
    }
}

/// The answer of [`Backend::detect`], computed once per process.
static DETECTED: OnceLock<std::result::Result<Backend, String>> = OnceLock::new();

impl Backend {
    /// The confining backend for this machine: bubblewrap when it is on the PATH and works, else
    /// the built-in one when it can be established on this kernel (probed once by running `true`
    /// confined; the answer is cached), else [`SandboxError::Unavailable`] saying why each was
    /// rejected. Never returns [`Backend::Unconfined`].
    pub fn detect() -> Result<Backend> {
        DETECTED
            .get_or_init(|| {
                let mut reasons = Vec::new();
                match crate::which("bwrap") {
                    Some(path) => {
                        let b = Backend::Bubblewrap(path);
                        match b.probe() {
                            Ok(()) => return Ok(b),
                            Err(e) => reasons.push(format!("{b} does not work here: {e}")),
                        }
                    }
                    None => reasons.push("bubblewrap (`bwrap`) is not on the PATH".to_string()),
                }
                match Backend::Namespaces.probe() {
                    Ok(()) => Ok(Backend::Namespaces),
                    Err(e) => {
                        reasons.push(format!("the built-in sandbox cannot be set up: {e}"));
                        Err(reasons.join("; "))
                    }
                }
            })
            .clone()
            .map_err(|reason| SandboxError::Unavailable { reason })
    }

    /// Check that this backend can run a command here, by running `true` with it.
    pub fn probe(&self) -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| SandboxError::io(std::env::temp_dir(), e))?;
        let sb = Sandbox::new(self.clone(), Duration::from_secs(30), 1024);
        let out = sb.run(dir.path(), "true")?;
        if out.success() {
            Ok(())
        } else {
            Err(SandboxError::Unavailable {
                reason: format!("{self}: {}", out.failure_reason()),
            })
        }
    }

    /// How commands run with this backend are confined.
    pub fn confinement(&self) -> Confinement {
        match self {
            Backend::Bubblewrap(_) => Confinement::Bubblewrap,
            Backend::Namespaces => {
                #[cfg(target_os = "linux")]
                if crate::namespaces::landlock_abi().is_some() {
                    return Confinement::NamespacesLandlock;
                }
                Confinement::Namespaces
            }
            Backend::Unconfined => Confinement::Unconfined,
        }
    }
}
