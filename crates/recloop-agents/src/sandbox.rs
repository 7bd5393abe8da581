//! The sandboxed command runner: clean environment, time and memory limits, no network, no writes
//! outside the worktree.
//!
//! With bubblewrap (`bwrap`) on the PATH every command runs as
//! `bwrap --unshare-net --ro-bind / / --bind WORKTREE WORKTREE --tmpfs /tmp --dev /dev --proc /proc
//! --die-with-parent` inside `sh -c 'ulimit -v …; …'`. Without bubblewrap commands are refused unless
//! the manifest says `[sandbox] allow_unsandboxed = true`. The word `recloop` resolves to the
//! current executable (or `RECLOOP_EXE`).

use crate::error::{AgentError, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How commands are confined.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Use bubblewrap (false only when allowed and bwrap is absent).
    pub bwrap: Option<PathBuf>,
    /// Time limit per command.
    pub timeout: Duration,
    /// Address-space limit, MiB.
    pub memory_mib: u64,
    /// Directory holding the `recloop` link (put first on PATH).
    pub bin_dir: Option<PathBuf>,
    /// Extra read-write directories besides the worktree (rarely needed).
    pub extra_rw: Vec<PathBuf>,
    /// Paths bound read-only again after `/tmp` is replaced by an empty tmpfs, so that the
    /// `recloop` link and the executable it points to stay visible for workspaces under `/tmp`.
    pub extra_ro: Vec<PathBuf>,
    /// Extra environment variables (name, value) passed through.
    pub env: Vec<(String, String)>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutcome {
    /// The command line.
    pub command: String,
    /// Exit code (None when killed).
    pub code: Option<i32>,
    /// Captured stdout (truncated to 1 MiB).
    pub stdout: String,
    /// Captured stderr (truncated to 1 MiB).
    pub stderr: String,
    /// Killed after the time limit.
    pub timed_out: bool,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// Whether it ran inside bubblewrap.
    pub sandboxed: bool,
}

impl CommandOutcome {
    /// Exit code 0 and not timed out.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// A one-paragraph reason for a failure (exit status and the last lines of stderr).
    pub fn failure_reason(&self) -> String {
        if self.timed_out {
            return format!(
                "`{}` exceeded its time limit after {} ms",
                self.command, self.duration_ms
            );
        }
        let tail: Vec<&str> = self.stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "`{}` exited with {}: {}",
            self.command,
            self.code
                .map_or("a signal".to_string(), |c| format!("status {c}")),
            tail.join(" | ")
        )
    }
}

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

impl Sandbox {
    /// Build the sandbox for a workspace: bubblewrap when present; refuse otherwise unless
    /// `allow_unsandboxed`. `state_dir` (the workspace's `.recloop/`) receives the `recloop` link.
    pub fn new(manifest: &recloop_core::Manifest, state_dir: &Path) -> Result<Sandbox> {
        let bwrap = which("bwrap");
        if bwrap.is_none() && !manifest.sandbox.allow_unsandboxed {
            return Err(AgentError::Sandbox(
                "bubblewrap (`bwrap`) is not installed and recloop.toml does not set \
                 [sandbox] allow_unsandboxed = true; install it (apt-get install -y bubblewrap)"
                    .into(),
            ));
        }
        let mut sb = Sandbox {
            bwrap,
            timeout: Duration::from_secs(manifest.commands.timeout_s.max(1)),
            memory_mib: manifest.sandbox.memory_mib,
            bin_dir: None,
            extra_rw: Vec::new(),
            extra_ro: Vec::new(),
            env: Vec::new(),
        };
        if let Some(exe) = recloop_exe() {
            sb.link_recloop(state_dir, &exe)?;
        }
        if let Some(data) = std::env::var_os("RECLOOP_DATA") {
            sb.env
                .push(("RECLOOP_DATA".into(), data.to_string_lossy().into()));
        }
        Ok(sb)
    }

    /// Make `recloop` in commands resolve to `exe` (a link in `state_dir/bin`).
    pub fn link_recloop(&mut self, state_dir: &Path, exe: &Path) -> Result<()> {
        let bin = state_dir.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| AgentError::io(&bin, e))?;
        let link = bin.join("recloop");
        let _ = std::fs::remove_file(&link);
        let script = format!("#!/bin/sh\nexec '{}' \"$@\"\n", exe.display());
        std::fs::write(&link, script).map_err(|e| AgentError::io(&link, e))?;
        let mut perm = std::fs::metadata(&link)
            .map_err(|e| AgentError::io(&link, e))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&link, perm).map_err(|e| AgentError::io(&link, e))?;
        self.extra_ro.push(bin.clone());
        self.extra_ro.push(exe.to_path_buf());
        self.bin_dir = Some(bin);
        Ok(())
    }

    /// Run `command` (a shell command line) with `worktree` as working directory.
    pub fn run(&self, worktree: &Path, command: &str) -> Result<CommandOutcome> {
        let worktree = worktree
            .canonicalize()
            .map_err(|e| AgentError::io(worktree, e))?;
        let kib = self.memory_mib.saturating_mul(1024);
        let wrapped = format!("ulimit -v {kib} 2>/dev/null; {command}");
        let mut cmd = match &self.bwrap {
            Some(bwrap) => {
                let mut c = Command::new(bwrap);
                let wt = worktree.display().to_string();
                c.args([
                    "--unshare-net",
                    "--unshare-ipc",
                    "--die-with-parent",
                    "--new-session",
                ]);
                c.args(["--ro-bind", "/", "/"]);
                c.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
                for ro in &self.extra_ro {
                    let p = ro.display().to_string();
                    c.args(["--ro-bind", &p, &p]);
                }
                c.args(["--bind", &wt, &wt]);
                for rw in &self.extra_rw {
                    let p = rw.display().to_string();
                    c.args(["--bind", &p, &p]);
                }
                c.args(["--chdir", &wt, "--", "/bin/sh", "-c", &wrapped]);
                c
            }
            None => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", &wrapped]).current_dir(&worktree);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        };
        cmd.env_clear();
        let mut path = String::new();
        if let Some(bin) = &self.bin_dir {
            path.push_str(&bin.display().to_string());
            path.push(':');
        }
        path.push_str(
            &std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        cmd.env("PATH", path)
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("TMPDIR", "/tmp");
        for key in ["PYENV_ROOT", "PYENV_VERSION", "RECLOOP_DATA"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| AgentError::Sandbox(format!("cannot start `{command}`: {e}")))?;
        let out_reader = child.stdout.take().map(read_all);
        let err_reader = child.stderr.take().map(read_all);
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {
                    if start.elapsed() > self.timeout {
                        timed_out = true;
                        if self.bwrap.is_none() {
                            let _ = Command::new("kill")
                                .args(["-KILL", &format!("-{}", child.id())])
                                .status();
                        }
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(AgentError::Sandbox(format!("waiting for `{command}`: {e}"))),
            }
        };
        let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(CommandOutcome {
            command: command.to_string(),
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
            timed_out,
            duration_ms: start.elapsed().as_millis() as u64,
            sandboxed: self.bwrap.is_some(),
        })
    }
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf.truncate(1 << 20);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox {
            bwrap: which("bwrap"),
            timeout: Duration::from_secs(10),
            memory_mib: 1024,
            bin_dir: None,
            extra_rw: vec![],
            extra_ro: vec![],
            env: vec![],
        }
    }

    #[test]
    fn network_is_refused_and_the_reason_is_recorded() {
        let sb = sandbox();
        if sb.bwrap.is_none() {
            eprintln!("bwrap not installed: skipping the network check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = sb
            .run(
                dir.path(),
                "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)\"",
            )
            .unwrap();
        assert!(!out.success());
        let reason = out.failure_reason();
        assert!(reason.contains("Network is unreachable"), "{reason}");
    }

    #[test]
    fn writes_outside_the_worktree_fail_and_inside_succeed() {
        let sb = sandbox();
        if sb.bwrap.is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let out = sb
            .run(dir.path(), "echo hi > inside.txt && cat inside.txt")
            .unwrap();
        assert!(out.success(), "{}", out.failure_reason());
        assert_eq!(out.stdout.trim(), "hi");
        let cmd = format!("echo x > {}/f", outside.path().display());
        let out = sb.run(dir.path(), &cmd).unwrap();
        assert!(!out.success());
        assert!(!outside.path().join("f").exists());
    }

    #[test]
    fn time_limit_kills_and_environment_is_clean() {
        let mut sb = sandbox();
        sb.timeout = Duration::from_millis(500);
        let dir = tempfile::tempdir().unwrap();
        let out = sb.run(dir.path(), "sleep 5").unwrap();
        assert!(out.timed_out);
        assert!(out.failure_reason().contains("time limit"));
        sb.timeout = Duration::from_secs(10);
        // SAFETY-free check: a variable of the parent does not leak.
        let out = sb.run(dir.path(), "env").unwrap();
        assert!(!out.stdout.contains("CARGO_PKG_NAME"), "{}", out.stdout);
    }

    #[test]
    fn refuses_without_bwrap_unless_allowed() {
        let text = "[project]\nname='x'\neditable=['a']\n[metrics]\nprimary={name='m',direction='increase'}\n";
        let m = recloop_core::Manifest::parse(text, Path::new("recloop.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        match Sandbox::new(&m, dir.path()) {
            Ok(sb) => assert!(sb.bwrap.is_some()),
            Err(e) => assert!(e.to_string().contains("allow_unsandboxed")),
        }
    }
}
