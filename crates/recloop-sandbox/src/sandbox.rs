//! The runner shared by all backends: environment, spawning, time limit, output capture.

use crate::backend::{Backend, Confinement};
use crate::error::{Result, SandboxError};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Captured output is cut to this many bytes per stream.
const OUTPUT_LIMIT: usize = 1 << 20;

/// How long to wait, after the command has exited, for processes that escaped its process group
/// (only possible unconfined) to close its output before giving up on reading the rest.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How commands are confined.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The confining mechanism.
    pub backend: Backend,
    /// Time limit per command; at the limit every process of the command is killed.
    pub timeout: Duration,
    /// Address-space limit (RLIMIT_AS), MiB; 0 means no limit.
    pub memory_mib: u64,
    /// Directory holding the `recloop` link (put first on PATH).
    pub bin_dir: Option<PathBuf>,
    /// Extra read-write directories besides the worktree (rarely needed).
    pub extra_rw: Vec<PathBuf>,
    /// Paths that must stay readable inside even though `/tmp` is replaced by a private tmpfs
    /// (the `recloop` link, the executable it points to, the data cache).
    pub extra_ro: Vec<PathBuf>,
    /// Extra environment variables (name, value) passed through.
    pub env: Vec<(String, String)>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutcome {
    /// The command line.
    pub command: String,
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Captured stdout (truncated to 1 MiB).
    pub stdout: String,
    /// Captured stderr (truncated to 1 MiB).
    pub stderr: String,
    /// Killed after the time limit.
    pub timed_out: bool,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// How it was confined.
    pub confinement: Confinement,
}

impl CommandOutcome {
    /// Exit code 0 and not timed out.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Whether the command ran confined (any backend but unconfined).
    pub fn sandboxed(&self) -> bool {
        self.confinement.is_confined()
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

impl Sandbox {
    /// A sandbox with this backend and limits, no extra paths and no extra variables.
    pub fn new(backend: Backend, timeout: Duration, memory_mib: u64) -> Sandbox {
        Sandbox {
            backend,
            timeout,
            memory_mib,
            bin_dir: None,
            extra_rw: Vec::new(),
            extra_ro: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Make `recloop` in commands resolve to `exe` (a link in `state_dir/bin`).
    pub fn link_recloop(&mut self, state_dir: &Path, exe: &Path) -> Result<()> {
        let bin = state_dir.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| SandboxError::io(&bin, e))?;
        let link = bin.join("recloop");
        let _ = std::fs::remove_file(&link);
        let quoted = exe.display().to_string().replace('\'', r"'\''");
        let script = format!("#!/bin/sh\nexec '{quoted}' \"$@\"\n");
        std::fs::write(&link, script).map_err(|e| SandboxError::io(&link, e))?;
        let mut perm = std::fs::metadata(&link)
            .map_err(|e| SandboxError::io(&link, e))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&link, perm).map_err(|e| SandboxError::io(&link, e))?;
        self.extra_ro.push(bin.clone());
        self.extra_ro.push(exe.to_path_buf());
        self.bin_dir = Some(bin);
        Ok(())
    }

    /// Run `command` (a shell command line) with `worktree` as working directory.
    pub fn run(&self, worktree: &Path, command: &str) -> Result<CommandOutcome> {
        self.run_cancellable(worktree, command, &AtomicBool::new(false))
    }

    /// [`Sandbox::run`], killing every process of the command as soon as `cancel` is set (the
    /// outcome then has no exit code and is not timed out).
    pub fn run_cancellable(
        &self,
        worktree: &Path,
        command: &str,
        cancel: &AtomicBool,
    ) -> Result<CommandOutcome> {
        let worktree = canonical(worktree)?;
        let mut extra_ro = self
            .extra_ro
            .iter()
            .map(|p| canonical(p))
            .collect::<Result<Vec<_>>>()?;
        // The command's PATH is this process's: its directories under /tmp would be hidden by
        // the private /tmp, so they are bound read-only too.
        for dir in path_dirs_under_tmp() {
            if !extra_ro.contains(&dir) {
                extra_ro.push(dir);
            }
        }
        let extra_rw = self
            .extra_rw
            .iter()
            .map(|p| canonical(p))
            .collect::<Result<Vec<_>>>()?;
        let memory_bytes = (self.memory_mib > 0).then(|| self.memory_mib.saturating_mul(1 << 20));

        #[cfg(target_os = "linux")]
        let mut report = None;
        let (mut cmd, confinement) = match &self.backend {
            Backend::Bubblewrap(bwrap) => {
                let mut c = bwrap_command(bwrap, &worktree, &extra_ro, &extra_rw, command);
                simple_pre_exec(&mut c, memory_bytes);
                (c, Confinement::Bubblewrap)
            }
            Backend::Unconfined => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", command]).current_dir(&worktree);
                simple_pre_exec(&mut c, memory_bytes);
                (c, Confinement::Unconfined)
            }
            #[cfg(target_os = "linux")]
            Backend::Namespaces => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", command]);
                let layout = crate::namespaces::Layout {
                    worktree: &worktree,
                    extra_ro: &extra_ro,
                    extra_rw: &extra_rw,
                    memory_bytes,
                };
                let prepared = crate::namespaces::prepare(&mut c, &layout)?;
                let confinement = prepared.confinement;
                report = Some(prepared);
                (c, confinement)
            }
            #[cfg(not(target_os = "linux"))]
            Backend::Namespaces => {
                return Err(SandboxError::Unavailable {
                    reason: "the built-in sandbox needs Linux".into(),
                });
            }
        };
        cmd.env_clear().envs(self.environment());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let start = Instant::now();
        let spawned = cmd.spawn();
        // Dropping the command closes the parent's copy of the built-in backend's report pipe.
        drop(cmd);
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                #[cfg(target_os = "linux")]
                if let Some(report) = report {
                    return Err(report.into_error(command, source));
                }
                return Err(SandboxError::Start {
                    command: command.to_string(),
                    source,
                });
            }
        };
        let out = child.stdout.take().map(Capture::start);
        let err = child.stderr.take().map(Capture::start);

        let pid = child.id() as libc::pid_t;
        let mut timed_out = false;
        loop {
            match exited(pid) {
                Ok(true) => break,
                Ok(false) => {}
                Err(source) => {
                    kill_group(pid);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SandboxError::Wait {
                        command: command.to_string(),
                        source,
                    });
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= self.timeout {
                timed_out = true;
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let nap = (elapsed / 8).clamp(Duration::from_millis(1), Duration::from_millis(20));
            std::thread::sleep(nap.min(self.timeout - elapsed));
        }
        // The child is not reaped yet, so its process-group id cannot have been reused: kill the
        // whole group (on a time-out; and after a normal exit, whatever the command left running
        // in it — with bubblewrap and the built-in backend the PID namespace is gone already).
        kill_group(pid);
        let _ = child.kill();
        let status = child.wait().map_err(|source| SandboxError::Wait {
            command: command.to_string(),
            source,
        })?;
        let deadline = Instant::now() + DRAIN_GRACE;
        let stdout = out.map(|c| c.finish(deadline)).unwrap_or_default();
        let stderr = err.map(|c| c.finish(deadline)).unwrap_or_default();
        Ok(CommandOutcome {
            command: command.to_string(),
            code: if timed_out { None } else { status.code() },
            stdout,
            stderr,
            timed_out,
            duration_ms: start.elapsed().as_millis() as u64,
            confinement,
        })
    }

    /// The complete environment of a command: PATH (with `bin_dir` first), HOME, LANG, TMPDIR,
    /// the pyenv variables of this process, and `env` (the caller names the rest, e.g. `RECLOOP_DATA`).
    fn environment(&self) -> Vec<(String, String)> {
        let mut path = String::new();
        if let Some(bin) = &self.bin_dir {
            path.push_str(&bin.display().to_string());
            path.push(':');
        }
        path.push_str(
            &std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        let mut env = vec![
            ("PATH".to_string(), path),
            (
                "HOME".to_string(),
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            ),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
            ("TMPDIR".to_string(), "/tmp".to_string()),
        ];
        for key in ["PYENV_ROOT", "PYENV_VERSION"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.to_string(), v));
            }
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

/// The absolute path without symbolic links, or an error naming the path.
/// The directories of this process's PATH that lie under `/tmp` and exist, canonical.
fn path_dirs_under_tmp() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(&path) {
        if let Ok(c) = dir.canonicalize()
            && c.starts_with("/tmp")
            && c.is_dir()
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    out
}

fn canonical(p: &Path) -> Result<PathBuf> {
    p.canonicalize().map_err(|e| SandboxError::io(p, e))
}

/// `bwrap ... -- /bin/sh -c command`, with the same layout as the built-in backend.
fn bwrap_command(
    bwrap: &Path,
    worktree: &Path,
    extra_ro: &[PathBuf],
    extra_rw: &[PathBuf],
    command: &str,
) -> Command {
    let mut c = Command::new(bwrap);
    c.args([
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
    ]);
    // As root, bubblewrap would otherwise keep every capability (enough to remount `/` rw).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.args(["--cap-drop", "ALL"]);
    }
    c.args(["--ro-bind", "/", "/"]);
    c.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
    let pair = |flag: &str, p: &Path| -> [OsString; 3] {
        [flag.into(), p.as_os_str().into(), p.as_os_str().into()]
    };
    for ro in extra_ro {
        c.args(pair("--ro-bind", ro));
    }
    c.args(pair("--bind", worktree));
    for rw in extra_rw {
        c.args(pair("--bind", rw));
    }
    c.arg("--chdir").arg(worktree);
    c.args(["--", "/bin/sh", "-c", command]);
    c
}

/// In the child, before exec: a new session (so the whole group can be killed), the
/// address-space limit, and close-on-exec on every inherited descriptor above stderr.
fn simple_pre_exec(cmd: &mut Command, memory_bytes: Option<u64>) {
    let hook = move || {
        // SAFETY: only async-signal-safe system calls on values prepared before the fork.
        unsafe {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(bytes) = memory_bytes {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            #[cfg(target_os = "linux")]
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls and allocates nothing.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Whether process `pid` (a child of ours) has exited, without reaping it.
fn exited(pid: libc::pid_t) -> std::io::Result<bool> {
    // SAFETY: waitid writes into a zeroed siginfo_t we own; WNOWAIT leaves the child unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(info.si_pid() != 0)
    }
}

/// SIGKILL the process group led by `pid` (the child made itself a session leader).
fn kill_group(pid: libc::pid_t) {
    // SAFETY: plain system call; the group id is our unreaped child's pid, so it is not reused.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}

/// One output stream read on its own thread, keeping the first [`OUTPUT_LIMIT`] bytes.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(mut r: R) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut b = shared.lock().unwrap_or_else(|e| e.into_inner());
                        let room = OUTPUT_LIMIT.saturating_sub(b.len()).min(n);
                        b.extend_from_slice(&chunk[..room]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        Capture { buf, done }
    }

    /// The text read so far, once the stream has ended or `deadline` has passed.
    fn finish(self, deadline: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&b).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(code: Option<i32>, timed_out: bool) -> CommandOutcome {
        CommandOutcome {
            command: "make test".into(),
            code,
            stdout: String::new(),
            stderr: (1..=8).map(|i| format!("line {i}\n")).collect(),
            timed_out,
            duration_ms: 1200,
            confinement: Confinement::NamespacesLandlock,
        }
    }

    #[test]
    fn failure_reasons_name_the_status_and_the_last_stderr_lines() {
        let r = outcome(Some(2), false).failure_reason();
        assert_eq!(
            r,
            "`make test` exited with status 2: line 3 | line 4 | line 5 | line 6 | line 7 | line 8"
        );
        assert!(outcome(None, false).failure_reason().contains("a signal"));
        assert!(
            outcome(None, true)
                .failure_reason()
                .contains("exceeded its time limit after 1200 ms")
        );
        assert!(outcome(Some(0), false).success());
        assert!(!outcome(Some(0), true).success());
    }

    #[test]
    fn the_journal_records_how_a_command_was_confined() {
        let o = outcome(Some(0), false);
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["confinement"], "namespaces_landlock");
        let back: CommandOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);
        assert!(o.sandboxed());
        assert_eq!(
            Confinement::NamespacesLandlock.to_string(),
            "namespaces+landlock"
        );
        assert!(!Confinement::Unconfined.is_confined());
    }

    #[test]
    fn the_environment_starts_with_path_and_ends_with_the_listed_variables() {
        let mut sb = Sandbox::new(Backend::Unconfined, Duration::from_secs(1), 0);
        sb.bin_dir = Some(PathBuf::from("/state/bin"));
        sb.env.push(("A".into(), "b".into()));
        let env = sb.environment();
        assert_eq!(env[0].0, "PATH");
        assert!(env[0].1.starts_with("/state/bin:"));
        assert_eq!(env.last(), Some(&("A".to_string(), "b".to_string())));
        assert!(env.contains(&("TMPDIR".to_string(), "/tmp".to_string())));
    }

    #[test]
    fn bubblewrap_gets_the_same_layout() {
        let c = bwrap_command(
            Path::new("/usr/bin/bwrap"),
            Path::new("/w"),
            &[PathBuf::from("/ro")],
            &[PathBuf::from("/rw")],
            "true",
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for part in [
            "--unshare-net",
            "--unshare-pid",
            "--die-with-parent",
            "--ro-bind / /",
            "--tmpfs /tmp",
            "--ro-bind /ro /ro --bind /w /w --bind /rw /rw",
            "--chdir /w -- /bin/sh -c true",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
    }
}
