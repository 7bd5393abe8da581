//! Runs one shell command confined: no network, writes only inside the worktree (plus chosen
//! directories and a private `/tmp`), everything else read-only, a cleared environment, an
//! address-space limit and a time limit that kills every process the command started.
//!
//! Three backends ([`Backend`]):
//!
//! - **bubblewrap** (`bwrap` on the PATH): `bwrap --unshare-net --unshare-ipc --unshare-pid
//!   --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --bind WORKTREE WORKTREE ...`;
//! - **namespaces**, built in: the same layout made by this crate itself with unprivileged user,
//!   mount, network, IPC, PID and UTS namespaces, every capability dropped, plus a Landlock write
//!   policy when the kernel has Landlock ABI 2+ (Linux 5.12 or newer is needed; what isolates
//!   what, and the known limits, are in `src/namespaces/mod.rs`; `RECLOOP_SANDBOX_LANDLOCK=off`
//!   leaves the Landlock layer out, which the tests use to check the mounts alone);
//! - **unconfined**, only when the caller asks for it: a plain `sh -c` in its own session.
//!
//! [`Backend::detect`] picks bubblewrap when it works, else the built-in backend when it can be
//! established on this kernel, else says why neither works and how to fix it.
//!
//! In a command, the word `recloop` resolves to the current executable (or `RECLOOP_EXE`) once
//! [`Sandbox::link_recloop`] has put a link first on the PATH.

mod backend;
mod error;
#[cfg(target_os = "linux")]
mod namespaces;
mod sandbox;

pub use backend::{Backend, Confinement};
pub use error::{Result, SandboxError};
pub use sandbox::{CommandOutcome, Sandbox};

use std::path::PathBuf;

/// Find an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The executable that `recloop` in a workspace command stands for.
pub fn recloop_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RECLOOP_EXE") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_stem()?.to_string_lossy().to_string();
    (name == "recloop").then_some(exe)
}
