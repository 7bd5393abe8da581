//! What the built-in backend does between `fork` and `exec`.
//!
//! Everything here runs in a child of a possibly multi-threaded process, so it only makes
//! async-signal-safe system calls on data prepared before the fork ([`Plan`]): no allocation, no
//! locks, no panics. Three processes take part:
//!
//! 1. the *supervisor* (the child `std::process::Command` forks; its pid is the one the parent
//!    sees): new session, dies with the parent, unshares the namespaces, maps its own uid/gid,
//!    forks 2. and then only waits for it and exits the way the command did;
//! 2. the *init* (pid 1 of the new PID namespace): builds the file-system view, brings the
//!    loopback up, applies Landlock, drops every capability, forks 3. and then reaps orphans until
//!    the command exits — its own exit makes the kernel kill whatever is left in the namespace;
//! 3. the *command*: sets the address-space limit and returns to `Command`, which execs
//!    `/bin/sh -c COMMAND`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use libc::{c_int, c_ulong, pid_t};

/// Error-report codes at or above this value name `Plan::ops[code - OPS_BASE]`.
pub(super) const OPS_BASE: u32 = 64;

/// The namespaces the supervisor unshares.
const NAMESPACES: c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS;

/// The fixed steps, as reported through the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Stage {
    Setsid = 0,
    DieWithParent,
    Unshare,
    Setgroups,
    UidMap,
    GidMap,
    NotDumpable,
    StatusPipe,
    ForkInit,
    Loopback,
    Chdir,
    NoNewPrivs,
    LandlockRuleset,
    LandlockRule,
    LandlockRestrict,
    DropCaps,
    ForkCommand,
    MemoryLimit,
}

impl Stage {
    const ALL: [Stage; 18] = [
        Stage::Setsid,
        Stage::DieWithParent,
        Stage::Unshare,
        Stage::Setgroups,
        Stage::UidMap,
        Stage::GidMap,
        Stage::NotDumpable,
        Stage::StatusPipe,
        Stage::ForkInit,
        Stage::Loopback,
        Stage::Chdir,
        Stage::NoNewPrivs,
        Stage::LandlockRuleset,
        Stage::LandlockRule,
        Stage::LandlockRestrict,
        Stage::DropCaps,
        Stage::ForkCommand,
        Stage::MemoryLimit,
    ];

    /// The stage with this report code.
    pub(super) fn from_code(code: u32) -> Option<Stage> {
        Stage::ALL.get(code as usize).copied()
    }

    /// What the stage does, for error messages.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Stage::Setsid => "setsid",
            Stage::DieWithParent => "prctl(PR_SET_PDEATHSIG)",
            Stage::Unshare => {
                "unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID \
                 | CLONE_NEWUTS)"
            }
            Stage::Setgroups => "writing /proc/self/setgroups",
            Stage::UidMap => "writing /proc/self/uid_map",
            Stage::GidMap => "writing /proc/self/gid_map",
            Stage::NotDumpable => "prctl(PR_SET_DUMPABLE, 0)",
            Stage::StatusPipe => "pipe2",
            Stage::ForkInit => "fork (the namespace's init)",
            Stage::Loopback => "bringing the loopback interface up",
            Stage::Chdir => "chdir into the worktree",
            Stage::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Stage::LandlockRuleset => "landlock_create_ruleset",
            Stage::LandlockRule => "landlock_add_rule",
            Stage::LandlockRestrict => "landlock_restrict_self",
            Stage::DropCaps => "dropping capabilities",
            Stage::ForkCommand => "fork (the command)",
            Stage::MemoryLimit => "setrlimit(RLIMIT_AS)",
        }
    }
}

/// One file-system step of the init process.
#[derive(Debug)]
pub(super) enum Op {
    /// `mkdir`, errors ignored (a missing directory makes the next mount fail, which is reported).
    Mkdir(CString),
    /// Create an empty file as a mount point, errors ignored.
    Touch(CString),
    /// `symlink(target, link)`, errors ignored.
    Symlink { target: CString, link: CString },
    /// `mount(2)`.
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        optional: bool,
    },
    /// `mount_setattr(2)`: set these `MOUNT_ATTR_*` flags on the mount at `path` (and below it).
    SetAttr {
        path: CString,
        set: u64,
        recursive: bool,
    },
    /// `chdir`.
    Chdir(CString),
    /// `pivot_root(new_root, put_old)`.
    PivotRoot { new_root: CString, put_old: CString },
    /// `umount2(path, MNT_DETACH)`.
    Detach(CString),
}

/// The Landlock write policy: `handled` access rights are denied except beneath `rules`.
#[derive(Debug)]
pub(super) struct LandlockPlan {
    pub handled: u64,
    pub scoped: u64,
    pub rules: Vec<(CString, u64)>,
}

/// Everything the child needs, prepared before the fork.
#[derive(Debug)]
pub(super) struct Plan {
    /// The pid of the process that spawns (to notice it died before PR_SET_PDEATHSIG took hold).
    pub parent_pid: pid_t,
    /// `"UID UID 1\n"`: the caller's effective uid keeps its value inside.
    pub uid_map: Vec<u8>,
    /// `"GID GID 1\n"`.
    pub gid_map: Vec<u8>,
    /// The file-system steps of the init process, in order.
    pub ops: Vec<Op>,
    /// The working directory (same path inside and out).
    pub worktree: CString,
    /// Landlock policy, when the kernel supports it.
    pub landlock: Option<LandlockPlan>,
    /// RLIMIT_AS for the command.
    pub memory_bytes: Option<u64>,
    /// Write end of the error-report pipe (close-on-exec).
    pub report: OwnedFd,
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `struct landlock_ruleset_attr` (ABI 6 layout; older kernels accept the zero tail).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;

/// The current `errno`.
fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// `Err(errno)` when a system call returned a negative value.
fn check<T: Into<i64>>(r: T) -> Result<(), i32> {
    if r.into() < 0 { Err(errno()) } else { Ok(()) }
}

/// Send (code, errno) to the parent and turn the errno into the error `Command` reports.
fn bail(report: c_int, code: u32, err: i32) -> io::Error {
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&code.to_ne_bytes());
    rec[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: writes 8 bytes from a stack buffer to a descriptor we own.
    unsafe {
        libc::write(report, rec.as_ptr().cast(), rec.len());
    }
    io::Error::from_raw_os_error(err)
}

/// `fork` as a bare system call: unlike glibc's `fork()` it runs no `pthread_atfork` handlers
/// (which may take locks copied in a locked state from the multi-threaded parent). The children
/// make only raw system calls afterwards, so glibc's per-thread bookkeeping is not needed.
unsafe fn raw_fork() -> pid_t {
    // SAFETY: clone with only SIGCHLD and no new stack behaves like fork.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        ) as pid_t
    }
}

/// Write `data` to the file at `path` (which must exist).
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated; `data` outlives the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = errno();
        libc::close(fd);
        if n < 0 {
            Err(err)
        } else if n as usize != data.len() {
            Err(libc::EIO)
        } else {
            Ok(())
        }
    }
}

/// Close every descriptor except `keep`.
unsafe fn close_all_but(keep: c_int) {
    // SAFETY: close_range only closes descriptors.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// Exit the way a process with wait status `status` did: same exit code, or same signal.
unsafe fn mirror(status: c_int) -> ! {
    // SAFETY: async-signal-safe calls on stack values; every path ends in _exit or death.
    unsafe {
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(1)
    }
}

/// The supervisor after the fork: wait for the init, then exit as the command did.
unsafe fn supervise(init: pid_t, status_r: c_int) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        // Keep no copy of the parent's pipes (stdout, stderr, exec-error): their end of file
        // must depend on the command alone.
        close_all_but(status_r);
        let mut st: c_int = 0;
        loop {
            let r = libc::waitpid(init, &mut st, 0);
            if r == init {
                break;
            }
            if r < 0 && errno() != libc::EINTR {
                libc::_exit(1);
            }
        }
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < buf.len() {
            let n = libc::read(status_r, buf[got..].as_mut_ptr().cast(), buf.len() - got);
            if n > 0 {
                got += n as usize;
            } else if n == 0 || errno() != libc::EINTR {
                break;
            }
        }
        // The command's own status when the init reported it, else the init's (killed).
        mirror(if got == buf.len() {
            c_int::from_ne_bytes(buf)
        } else {
            st
        })
    }
}

/// The init after forking the command: reap every child; when the command exits, report its
/// status and exit, which kills whatever is left in the PID namespace.
unsafe fn reap(command: pid_t, status_w: c_int) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        close_all_but(status_w);
        loop {
            let mut st: c_int = 0;
            let r = libc::waitpid(-1, &mut st, libc::__WALL);
            if r == command {
                let b = st.to_ne_bytes();
                libc::write(status_w, b.as_ptr().cast(), b.len());
                libc::_exit(0);
            }
            if r < 0 && errno() != libc::EINTR {
                libc::_exit(1);
            }
        }
    }
}

/// Whether the reader of `status_w` (the supervisor) is gone.
unsafe fn supervisor_gone(status_w: c_int) -> bool {
    let mut p = libc::pollfd {
        fd: status_w,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: polls one descriptor we own, without waiting.
    unsafe { libc::poll(&mut p, 1, 0) >= 0 && p.revents & libc::POLLERR != 0 }
}

impl Op {
    /// Perform the step.
    unsafe fn run(&self) -> Result<(), i32> {
        let opt = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is a NUL-terminated string owned by the plan, or null.
        unsafe {
            match self {
                Op::Mkdir(p) => {
                    libc::mkdir(p.as_ptr(), 0o755);
                    Ok(())
                }
                Op::Touch(p) => {
                    let fd = libc::open(
                        p.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    Ok(())
                }
                Op::Symlink { target, link } => {
                    libc::symlink(target.as_ptr(), link.as_ptr());
                    Ok(())
                }
                Op::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                    optional,
                } => {
                    let r = libc::mount(
                        opt(source),
                        target.as_ptr(),
                        opt(fstype),
                        *flags,
                        opt(data).cast(),
                    );
                    if r < 0 && !optional {
                        Err(errno())
                    } else {
                        Ok(())
                    }
                }
                Op::SetAttr {
                    path,
                    set,
                    recursive,
                } => {
                    let attr = MountAttr {
                        attr_set: *set,
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    let flags = if *recursive { libc::AT_RECURSIVE } else { 0 };
                    check(libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        flags as libc::c_uint,
                        &attr as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    ))
                }
                Op::Chdir(p) => check(libc::chdir(p.as_ptr())),
                Op::PivotRoot { new_root, put_old } => check(libc::syscall(
                    libc::SYS_pivot_root,
                    new_root.as_ptr(),
                    put_old.as_ptr(),
                )),
                Op::Detach(p) => check(libc::umount2(p.as_ptr(), libc::MNT_DETACH)),
            }
        }
    }
}

/// Bring `lo` up in the new network namespace (as bubblewrap does): the command can talk to
/// itself over 127.0.0.1, and to nothing else.
unsafe fn loopback_up() -> Result<(), i32> {
    // SAFETY: a socket and two ioctls on a zeroed ifreq we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr);
        if r >= 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr);
        }
        let err = errno();
        libc::close(fd);
        if r < 0 { Err(err) } else { Ok(()) }
    }
}

impl LandlockPlan {
    /// Restrict this process and its future children to the policy.
    unsafe fn apply(&self) -> Result<(), (Stage, i32)> {
        let attr = RulesetAttr {
            handled_access_fs: self.handled,
            handled_access_net: 0,
            scoped: self.scoped,
        };
        // SAFETY: the Landlock system calls read structures we own; descriptors are closed.
        unsafe {
            let rs = libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            );
            if rs < 0 {
                return Err((Stage::LandlockRuleset, errno()));
            }
            let rs = rs as c_int;
            for (path, access) in &self.rules {
                let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    let e = errno();
                    libc::close(rs);
                    return Err((Stage::LandlockRule, e));
                }
                let rule = PathBeneathAttr {
                    allowed_access: *access,
                    parent_fd: fd,
                };
                let r = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    rs,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                );
                let e = errno();
                libc::close(fd);
                if r < 0 {
                    libc::close(rs);
                    return Err((Stage::LandlockRule, e));
                }
            }
            let r = libc::syscall(libc::SYS_landlock_restrict_self, rs, 0u32);
            let e = errno();
            libc::close(rs);
            if r < 0 {
                return Err((Stage::LandlockRestrict, e));
            }
            Ok(())
        }
    }
}

/// Drop every capability for good: ambient, bounding set, "root is special" and the current
/// sets. After this even uid 0 inside (when the caller is root) cannot remount anything.
unsafe fn drop_caps() -> Result<(), i32> {
    // SAFETY: prctl and capset on values we own.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ) < 0
            && errno() != libc::EINVAL
        {
            return Err(errno());
        }
        for cap in 0..64 as c_ulong {
            if libc::prctl(
                libc::PR_CAPBSET_DROP,
                cap,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            ) < 0
                && errno() != libc::EINVAL
            {
                return Err(errno());
            }
        }
        let bits = libc::SECBIT_NOROOT
            | libc::SECBIT_NOROOT_LOCKED
            | libc::SECBIT_NO_SETUID_FIXUP
            | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
            | libc::SECBIT_KEEP_CAPS_LOCKED
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        check(libc::prctl(
            libc::PR_SET_SECUREBITS,
            bits as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ))?;
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        check(libc::syscall(
            libc::SYS_capset,
            &header as *const CapHeader,
            data.as_ptr(),
        ))
    }
}

/// The whole child side: runs in the supervisor, continues in the init, returns `Ok` only in the
/// command process (which `Command` then execs).
///
/// # Safety
/// Call only between fork and exec (from `CommandExt::pre_exec`).
pub(super) unsafe fn enter(plan: &Plan) -> io::Result<()> {
    let report = plan.report.as_raw_fd();
    let fail = |stage: Stage, err: i32| bail(report, stage as u32, err);
    // SAFETY: async-signal-safe system calls on data prepared before the fork.
    unsafe {
        // The supervisor.
        check(libc::setsid()).map_err(|e| fail(Stage::Setsid, e))?;
        check(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ))
        .map_err(|e| fail(Stage::DieWithParent, e))?;
        if libc::getppid() != plan.parent_pid {
            libc::_exit(1);
        }
        check(libc::unshare(NAMESPACES)).map_err(|e| fail(Stage::Unshare, e))?;
        match write_file(c"/proc/self/setgroups", b"deny") {
            Err(e) if e != libc::ENOENT => return Err(fail(Stage::Setgroups, e)),
            _ => {}
        }
        write_file(c"/proc/self/uid_map", &plan.uid_map).map_err(|e| fail(Stage::UidMap, e))?;
        write_file(c"/proc/self/gid_map", &plan.gid_map).map_err(|e| fail(Stage::GidMap, e))?;
        // The init below is a fork of the caller that never execs: its memory and environment
        // are the caller's (API keys...). Not dumpable, the command can neither read its
        // /proc/1/{environ,mem,maps} nor ptrace it. (Exec makes the command dumpable again.)
        check(libc::prctl(
            libc::PR_SET_DUMPABLE,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ))
        .map_err(|e| fail(Stage::NotDumpable, e))?;
        let mut fds: [c_int; 2] = [-1, -1];
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))
            .map_err(|e| fail(Stage::StatusPipe, e))?;
        let [status_r, status_w] = fds;
        let init = raw_fork();
        if init < 0 {
            return Err(fail(Stage::ForkInit, errno()));
        }
        if init > 0 {
            supervise(init, status_r);
        }

        // The init: pid 1 of the new PID namespace.
        libc::close(status_r);
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        );
        if supervisor_gone(status_w) {
            libc::_exit(1);
        }
        for (i, op) in plan.ops.iter().enumerate() {
            op.run().map_err(|e| bail(report, OPS_BASE + i as u32, e))?;
        }
        loopback_up().map_err(|e| fail(Stage::Loopback, e))?;
        check(libc::chdir(plan.worktree.as_ptr())).map_err(|e| fail(Stage::Chdir, e))?;
        check(libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ))
        .map_err(|e| fail(Stage::NoNewPrivs, e))?;
        if let Some(landlock) = &plan.landlock {
            landlock.apply().map_err(|(stage, e)| fail(stage, e))?;
        }
        drop_caps().map_err(|e| fail(Stage::DropCaps, e))?;
        let command = raw_fork();
        if command < 0 {
            return Err(fail(Stage::ForkCommand, errno()));
        }
        if command > 0 {
            reap(command, status_w);
        }

        // The command.
        libc::close(status_w);
        if let Some(bytes) = plan.memory_bytes {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            check(libc::setrlimit(libc::RLIMIT_AS, &lim))
                .map_err(|e| fail(Stage::MemoryLimit, e))?;
        }
        // Descriptors the parent leaked without close-on-exec do not reach the command.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        Ok(())
    }
}
