//! The built-in backend: bubblewrap's layout, made with unprivileged namespaces by this crate.
//!
//! What isolates what:
//!
//! - **user namespace**, the caller's uid and gid mapped to themselves (`setgroups` denied): the
//!   mount, network, IPC, PID and UTS namespaces below can be created without privilege; after
//!   setup every capability is dropped (bounding, ambient, effective, permitted, inheritable;
//!   `SECBIT_NOROOT` locked; `no_new_privs`), so even when recloop runs as root the command cannot
//!   remount, unmount or mount anything, and set-uid binaries do not raise privileges;
//! - **mount namespace**, built like `bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp`:
//!   the host root is bound recursively at a new root and made read-only, no-suid and no-dev with
//!   one recursive `mount_setattr` (every sub-mount included; Linux 5.12+); `/tmp` is a fresh
//!   private tmpfs (TMPDIR points at it; it vanishes with the command); `/dev` is a tmpfs holding
//!   only `null zero full random urandom tty`, a private `shm` tmpfs and a new `pts` instance;
//!   `/proc` is a new proc of the new PID namespace with `sys`, `sysrq-trigger`, `irq` and `bus`
//!   read-only; then the `extra_ro` paths are bound read-only, the worktree and the `extra_rw`
//!   paths read-write, and the old root is detached (`pivot_root`), so nothing else is reachable;
//! - **Landlock** (when the kernel has ABI 2 or newer; ABI 1 would forbid renames across
//!   directories): a second, independent layer: writing, creating, removing, renaming and
//!   truncating files are denied except beneath the worktree, `extra_rw`, `/tmp` and `/dev/shm`
//!   (and writing to the device nodes of `/dev`); on ABI 6+ signals and abstract Unix sockets
//!   are also scoped to the sandbox;
//! - **network namespace**: only a private loopback (brought up, as bubblewrap does); no route
//!   to the host or anywhere else, abstract Unix sockets of the host unreachable;
//! - **PID namespace**: the command sees only its own processes and cannot signal or trace
//!   others; its init is ours, so when the command exits or is killed, every process it left is
//!   killed by the kernel — nothing escapes a time-out, not even `setsid` daemons;
//! - **IPC and UTS namespaces**: private System V IPC and POSIX message queues, own hostname;
//! - the supervisor and the init die with the process that spawned them (`PR_SET_PDEATHSIG`).
//!
//! See `child.rs` for the three processes and what each one does.
//!
//! `/tmp` is a tmpfs in the mount namespace rather than a per-command host directory that only
//! Landlock lets the command write: it works without Landlock, leaves nothing on the host to
//! clean up (even after a crash), hides the host's `/tmp` (Landlock cannot hide what it lets
//! read) and is exactly what bubblewrap's `--tmpfs /tmp` does, so both backends behave alike.
//!
//! Known limits, compared with bubblewrap:
//!
//! - needs Linux 5.12+ (`mount_setattr` makes the whole tree read-only in one call; bubblewrap
//!   remounts mount by mount and works on older kernels); Landlock needs 5.19+ (ABI 2);
//! - the supervisor and the init are forks of the calling process that never exec: memory is
//!   shared copy-on-write, so pages the caller modifies while a command runs are duplicated once;
//!   the init's command line (`/proc/1/cmdline`, the caller's argv) is readable by the command —
//!   its environment and memory are not (it is not dumpable);
//! - the rest is shared with bubblewrap's `--ro-bind / /` layout: every host file the user can
//!   read stays readable (e.g. `~/.ssh`); Unix sockets on the file system (D-Bus, a root-owned
//!   `docker.sock` when running as root) can still be connected to — Landlock ABI 6+ scopes only
//!   abstract ones; without Landlock, FIFOs on the host can be written; run as root, the command
//!   can leave set-uid-root files in the worktree; `/tmp` and `/dev/shm` are bounded by RAM only;
//!   no seccomp filter, no cgroup limits (CPU, number of processes).

mod child;

use crate::backend::Confinement;
use crate::error::{Result, SandboxError};
use child::{LandlockPlan, OPS_BASE, Op, Plan, Stage};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The device nodes bound into the private `/dev` (bubblewrap's list).
const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The parts of `/proc` that bubblewrap re-binds read-only.
const PROC_COVERED: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];

/// Set to `off` to leave out the Landlock layer (to test the mount layer alone).
const LANDLOCK_SWITCH: &str = "RECLOOP_SANDBOX_LANDLOCK";

// Landlock access rights (linux/landlock.h).
const LL_WRITE_FILE: u64 = 1 << 1;
const LL_REMOVE_DIR: u64 = 1 << 4;
const LL_REMOVE_FILE: u64 = 1 << 5;
const LL_MAKE_CHAR: u64 = 1 << 6;
const LL_MAKE_DIR: u64 = 1 << 7;
const LL_MAKE_REG: u64 = 1 << 8;
const LL_MAKE_SOCK: u64 = 1 << 9;
const LL_MAKE_FIFO: u64 = 1 << 10;
const LL_MAKE_BLOCK: u64 = 1 << 11;
const LL_MAKE_SYM: u64 = 1 << 12;
const LL_REFER: u64 = 1 << 13;
const LL_TRUNCATE: u64 = 1 << 14;
const LL_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const LL_SCOPE_SIGNAL: u64 = 1 << 1;
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;

/// The paths and limits of one command.
pub(crate) struct Layout<'a> {
    /// The worktree (canonical): read-write, and the working directory.
    pub worktree: &'a Path,
    /// Read-only paths (canonical), visible even under `/tmp`.
    pub extra_ro: &'a [PathBuf],
    /// Read-write paths (canonical).
    pub extra_rw: &'a [PathBuf],
    /// RLIMIT_AS, bytes.
    pub memory_bytes: Option<u64>,
}

/// What the parent keeps after installing the child side on a `Command`.
pub(crate) struct Prepared {
    /// How the command will be confined.
    pub confinement: Confinement,
    report: File,
    steps: Vec<String>,
}

/// The Landlock ABI version of this kernel when it is 2 or newer (cached).
pub(crate) fn landlock_abi() -> Option<u32> {
    static ABI: OnceLock<Option<u32>> = OnceLock::new();
    *ABI.get_or_init(|| {
        // SAFETY: with a null attribute and the VERSION flag the call only returns a number.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        (v >= 2).then_some(v as u32)
    })
}

/// Whether this run uses Landlock: the kernel has it and the switch does not say `off`.
fn landlock_wanted() -> Option<u32> {
    let off = std::env::var(LANDLOCK_SWITCH).is_ok_and(|v| v == "off" || v == "0");
    if off { None } else { landlock_abi() }
}

/// Install the built-in confinement on `cmd` (which must run `/bin/sh -c ...` and have no
/// working directory set: the child changes into the worktree itself).
pub(crate) fn prepare(cmd: &mut Command, layout: &Layout<'_>) -> Result<Prepared> {
    let mut b = Builder::default();
    b.layout(layout)?;
    let abi = landlock_wanted();
    let landlock = match abi {
        Some(abi) => Some(landlock_plan(abi, layout)?),
        None => None,
    };
    let (report_r, report_w) = report_pipe()?;
    let worktree = cstring(layout.worktree)?;
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let plan = Plan {
        parent_pid: std::process::id() as libc::pid_t,
        uid_map: format!("{uid} {uid} 1\n").into_bytes(),
        gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        ops: b.ops,
        worktree,
        landlock,
        memory_bytes: layout.memory_bytes,
        report: report_w,
    };
    // SAFETY: `enter` only makes async-signal-safe system calls on the plan, which was fully
    // built before the fork and is not modified afterwards.
    unsafe {
        cmd.pre_exec(move || child::enter(&plan));
    }
    Ok(Prepared {
        confinement: if abi.is_some() {
            Confinement::NamespacesLandlock
        } else {
            Confinement::Namespaces
        },
        report: report_r,
        steps: b.steps,
    })
}

impl Prepared {
    /// The error for a failed spawn: the step the child reported, or the spawn error itself.
    /// Call only after the `Command` (and so the parent's write end of the pipe) is dropped.
    pub(crate) fn into_error(mut self, command: &str, source: std::io::Error) -> SandboxError {
        let mut rec = Vec::new();
        let _ = self.report.read_to_end(&mut rec);
        let Some((code, errno)) = decode_report(&rec) else {
            return SandboxError::Start {
                command: command.to_string(),
                source,
            };
        };
        let stage = Stage::from_code(code);
        let step = match stage {
            Some(s) => s.describe().to_string(),
            None => code
                .checked_sub(OPS_BASE)
                .and_then(|i| self.steps.get(i as usize))
                .cloned()
                .unwrap_or_else(|| format!("step {code}")),
        };
        SandboxError::Setup {
            command: command.to_string(),
            step,
            source: std::io::Error::from_raw_os_error(errno),
            hint: hint(stage, errno),
        }
    }
}

/// (code, errno) from the 8-byte record the child wrote.
fn decode_report(rec: &[u8]) -> Option<(u32, i32)> {
    let code: [u8; 4] = rec.get(..4)?.try_into().ok()?;
    let errno: [u8; 4] = rec.get(4..8)?.try_into().ok()?;
    Some((u32::from_ne_bytes(code), i32::from_ne_bytes(errno)))
}

/// What an errno at a stage usually means here, and how to fix it (empty when nothing is known).
fn hint(stage: Option<Stage>, errno: i32) -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if stage == Some(Stage::Unshare) {
        if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
            return "; user namespaces are disabled: /proc/sys/kernel/unprivileged_userns_clone \
                    = 0 (`sysctl -w kernel.unprivileged_userns_clone=1` enables them)"
                .into();
        }
        if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
            return "; user namespaces are disabled: /proc/sys/user/max_user_namespaces = 0 \
                    (`sysctl -w user.max_user_namespaces=15000` enables them)"
                .into();
        }
        match errno {
            libc::EPERM => {
                return "; creating user namespaces is forbidden here (typically a container's \
                        seccomp filter or a security module)"
                    .into();
            }
            libc::EINVAL => {
                return "; this kernel has no user-namespace support (CONFIG_USER_NS)".into();
            }
            libc::ENOSPC | libc::EUSERS => {
                return "; the limit of user namespaces is reached \
                        (/proc/sys/user/max_user_namespaces)"
                    .into();
            }
            _ => {}
        }
    }
    if matches!(errno, libc::EPERM | libc::EACCES)
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        return "; AppArmor restricts unprivileged user namespaces \
                (/proc/sys/kernel/apparmor_restrict_unprivileged_userns = 1): bubblewrap's \
                AppArmor profile allows them, or `sysctl -w \
                kernel.apparmor_restrict_unprivileged_userns=0`"
            .into();
    }
    if errno == libc::ENOSYS {
        return "; this kernel is too old for the built-in sandbox (it needs Linux 5.12 or newer \
                for mount_setattr)"
            .into();
    }
    String::new()
}

/// A close-on-exec pipe: (read end, write end).
fn report_pipe() -> Result<(File, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r < 0 {
        return Err(SandboxError::Start {
            command: "pipe2".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { Ok((File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// A path as a C string (paths with NUL bytes are refused).
fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        SandboxError::io(
            p,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL byte in path"),
        )
    })
}

/// `prefix` followed by the absolute path `p` (`/newroot` + `/a/b`).
fn under(prefix: &str, p: &Path) -> Result<CString> {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(p.as_os_str().as_bytes());
    CString::new(bytes).map_err(|_| {
        SandboxError::io(
            p,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL byte in path"),
        )
    })
}

/// A C string from a literal without NUL bytes.
fn lit(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// The Landlock write policy for this layout.
fn landlock_plan(abi: u32, layout: &Layout<'_>) -> Result<LandlockPlan> {
    let mut handled = LL_WRITE_FILE
        | LL_REMOVE_DIR
        | LL_REMOVE_FILE
        | LL_MAKE_CHAR
        | LL_MAKE_DIR
        | LL_MAKE_REG
        | LL_MAKE_SOCK
        | LL_MAKE_FIFO
        | LL_MAKE_BLOCK
        | LL_MAKE_SYM
        | LL_REFER;
    let mut dev = LL_WRITE_FILE;
    if abi >= 3 {
        handled |= LL_TRUNCATE;
        dev |= LL_TRUNCATE;
    }
    let scoped = if abi >= 6 {
        LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL
    } else {
        0
    };
    let mut rules = vec![(cstring(layout.worktree)?, handled)];
    for p in layout.extra_rw {
        rules.push((cstring(p)?, handled));
    }
    rules.push((lit("/tmp"), handled));
    rules.push((lit("/dev/shm"), handled));
    rules.push((lit("/dev"), dev));
    Ok(LandlockPlan {
        handled,
        scoped,
        rules,
    })
}

/// The file-system steps of the init process, with a description of each for error messages.
#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    steps: Vec<String>,
}

const MS_TMPFS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;
const ATTR_RO: u64 = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;

impl Builder {
    fn push(&mut self, op: Op, step: String) {
        self.ops.push(op);
        self.steps.push(step);
    }

    fn mkdir(&mut self, p: CString) {
        let step = format!("mkdir {}", p.to_string_lossy());
        self.push(Op::Mkdir(p), step);
    }

    fn tmpfs(&mut self, target: &str, flags: libc::c_ulong, data: &str) {
        self.push(
            Op::Mount {
                source: Some(lit("tmpfs")),
                target: lit(target),
                fstype: Some(lit("tmpfs")),
                flags,
                data: Some(lit(data)),
                optional: false,
            },
            format!("mounting a tmpfs on {target}"),
        );
    }

    /// Bind `/oldroot/p` on `/newroot/p` (creating the mount point in a tmpfs when needed),
    /// then set `attr` on it and below it.
    fn bind(&mut self, p: &Path, attr: u64, what: &str) -> Result<()> {
        let is_dir = p.is_dir();
        let ancestors: Vec<&Path> = p.ancestors().filter(|a| a.parent().is_some()).collect();
        for (i, a) in ancestors.iter().rev().enumerate() {
            let target = under("/newroot", a)?;
            if i + 1 == ancestors.len() && !is_dir {
                let step = format!("creating the mount point {}", target.to_string_lossy());
                self.push(Op::Touch(target), step);
            } else {
                self.mkdir(target);
            }
        }
        let target = under("/newroot", p)?;
        self.push(
            Op::Mount {
                source: Some(under("/oldroot", p)?),
                target: target.clone(),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
                optional: false,
            },
            format!("binding {what} {}", p.display()),
        );
        self.push(
            Op::SetAttr {
                path: target,
                set: attr,
                recursive: true,
            },
            format!("mount_setattr on {what} {}", p.display()),
        );
        Ok(())
    }

    /// Every step, in order (see the module documentation).
    fn layout(&mut self, layout: &Layout<'_>) -> Result<()> {
        self.push(
            Op::Mount {
                source: None,
                target: lit("/"),
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
                optional: false,
            },
            "making every mount private".into(),
        );
        // A staging tmpfs holds the old root and the new one (bubblewrap's dance).
        self.tmpfs("/tmp", MS_TMPFS, "mode=0755");
        self.mkdir(lit("/tmp/oldroot"));
        self.mkdir(lit("/tmp/newroot"));
        self.push(Op::Chdir(lit("/tmp")), "chdir /tmp".into());
        self.push(
            Op::PivotRoot {
                new_root: lit("."),
                put_old: lit("oldroot"),
            },
            "pivot_root into the staging tmpfs".into(),
        );
        self.push(Op::Chdir(lit("/")), "chdir /".into());
        self.push(
            Op::Mount {
                source: Some(lit("/oldroot")),
                target: lit("/newroot"),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
                optional: false,
            },
            "binding the root on /newroot".into(),
        );
        self.push(
            Op::SetAttr {
                path: lit("/newroot"),
                set: ATTR_RO,
                recursive: true,
            },
            "making the whole root read-only (mount_setattr)".into(),
        );
        self.tmpfs("/newroot/tmp", MS_TMPFS, "mode=1777");
        self.dev();
        for p in layout.extra_ro {
            self.bind(p, ATTR_RO, "the read-only path")?;
        }
        let rw = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
        self.bind(layout.worktree, rw, "the worktree")?;
        for p in layout.extra_rw {
            self.bind(p, rw, "the read-write path")?;
        }
        self.push(
            Op::Mount {
                source: Some(lit("proc")),
                target: lit("/newroot/proc"),
                fstype: Some(lit("proc")),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
                optional: false,
            },
            "mounting a proc of the new PID namespace".into(),
        );
        for entry in PROC_COVERED {
            if !Path::new("/proc").join(entry).exists() {
                continue;
            }
            let p = lit(&format!("/newroot/proc/{entry}"));
            self.push(
                Op::Mount {
                    source: Some(p.clone()),
                    target: p.clone(),
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: None,
                    optional: false,
                },
                format!("binding /proc/{entry} on itself"),
            );
            self.push(
                Op::SetAttr {
                    path: p,
                    set: ATTR_RO | libc::MOUNT_ATTR_NOEXEC,
                    recursive: true,
                },
                format!("making /proc/{entry} read-only"),
            );
        }
        self.push(
            Op::SetAttr {
                path: lit("/newroot/dev"),
                set: libc::MOUNT_ATTR_RDONLY,
                recursive: false,
            },
            "making /dev read-only".into(),
        );
        self.push(Op::Detach(lit("/oldroot")), "detaching the old root".into());
        self.push(Op::Chdir(lit("/newroot")), "chdir /newroot".into());
        self.push(
            Op::PivotRoot {
                new_root: lit("."),
                put_old: lit("."),
            },
            "pivot_root into the new root".into(),
        );
        self.push(Op::Detach(lit(".")), "detaching the staging tmpfs".into());
        self.push(Op::Chdir(lit("/")), "chdir /".into());
        Ok(())
    }

    /// A private `/dev` like `bwrap --dev /dev`.
    fn dev(&mut self) {
        self.tmpfs(
            "/newroot/dev",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "mode=0755",
        );
        for node in DEV_NODES {
            if !Path::new("/dev").join(node).exists() {
                continue;
            }
            let target = lit(&format!("/newroot/dev/{node}"));
            self.push(Op::Touch(target.clone()), format!("creating /dev/{node}"));
            self.push(
                Op::Mount {
                    source: Some(lit(&format!("/oldroot/dev/{node}"))),
                    target,
                    fstype: None,
                    flags: libc::MS_BIND,
                    data: None,
                    optional: false,
                },
                format!("binding /dev/{node}"),
            );
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            self.push(
                Op::Symlink {
                    target: lit(target),
                    link: lit(&format!("/newroot/dev/{link}")),
                },
                format!("linking /dev/{link}"),
            );
        }
        self.mkdir(lit("/newroot/dev/shm"));
        self.tmpfs("/newroot/dev/shm", MS_TMPFS, "mode=1777");
        self.mkdir(lit("/newroot/dev/pts"));
        self.push(
            Op::Mount {
                source: Some(lit("devpts")),
                target: lit("/newroot/dev/pts"),
                fstype: Some(lit("devpts")),
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                data: Some(lit("newinstance,ptmxmode=0666,mode=620")),
                optional: true,
            },
            "mounting a devpts instance".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_decode_and_unknown_ones_are_ignored() {
        let mut rec = 70u32.to_ne_bytes().to_vec();
        rec.extend_from_slice(&libc::EPERM.to_ne_bytes());
        assert_eq!(decode_report(&rec), Some((70, libc::EPERM)));
        assert_eq!(decode_report(&rec[..5]), None);
        assert_eq!(decode_report(&[]), None);
        assert_eq!(
            Stage::from_code(Stage::Unshare as u32),
            Some(Stage::Unshare)
        );
        assert_eq!(Stage::from_code(OPS_BASE), None);
    }

    #[test]
    fn a_worktree_under_tmp_gets_its_mount_point_in_the_private_tmp() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let wt = dir.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        let mut b = Builder::default();
        b.layout(&Layout {
            worktree: &wt,
            extra_ro: &[],
            extra_rw: &[],
            memory_bytes: None,
        })
        .unwrap();
        assert_eq!(b.ops.len(), b.steps.len());
        let at = |s: String| {
            b.steps
                .iter()
                .position(|x| *x == s)
                .unwrap_or_else(|| panic!("no step {s}"))
        };
        let tmp = at("mounting a tmpfs on /newroot/tmp".into());
        let parent = at(format!("mkdir /newroot{}", dir.path().display()));
        let mkdir = at(format!("mkdir /newroot{}", wt.display()));
        let bind = at(format!("binding the worktree {}", wt.display()));
        let proc = at("mounting a proc of the new PID namespace".into());
        let detach = at("detaching the old root".into());
        assert!(at("making the whole root read-only (mount_setattr)".into()) < tmp);
        assert!(tmp < parent && parent < mkdir);
        assert!(mkdir < bind && bind < proc && proc < detach);
        assert_eq!(b.steps.last().map(String::as_str), Some("chdir /"));
    }

    #[test]
    fn landlock_allows_writes_only_beneath_the_writable_places() {
        let wt = PathBuf::from("/w");
        let rw = [PathBuf::from("/rw")];
        let layout = Layout {
            worktree: &wt,
            extra_ro: &[],
            extra_rw: &rw,
            memory_bytes: None,
        };
        let p = landlock_plan(2, &layout).unwrap();
        assert_eq!(p.scoped, 0);
        assert_eq!(p.handled & LL_TRUNCATE, 0);
        let paths: Vec<_> = p.rules.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(paths, ["/w", "/rw", "/tmp", "/dev/shm", "/dev"]);
        assert_eq!(p.rules[4].1, LL_WRITE_FILE);
        let p = landlock_plan(6, &layout).unwrap();
        assert_ne!(p.handled & LL_TRUNCATE, 0);
        assert_eq!(p.scoped, LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL);
    }
}
