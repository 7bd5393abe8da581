//! The sandbox's security tests, run against every confining backend that works on this machine
//! (bubblewrap when installed, the built-in namespaces). When none works each test says what it
//! skipped and how to enable it, and passes — unless `CI` is set, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_sandbox::{Backend, CommandOutcome, Confinement, Sandbox, SandboxError, which};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set by `without_landlock_the_mounts_alone_confine` for the copy of this binary it runs.
const LANDLOCK_SWITCH: &str = "RECLOOP_SANDBOX_LANDLOCK";

/// The confining backends that work here, and why the others are not exercised.
fn available() -> &'static (Vec<Backend>, Vec<String>) {
    static FOUND: OnceLock<(Vec<Backend>, Vec<String>)> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        match which("bwrap") {
            Some(p) => {
                let b = Backend::Bubblewrap(p);
                match b.probe() {
                    Ok(()) => found.push(b),
                    Err(e) => missing.push(format!("bubblewrap is installed but fails: {e}")),
                }
            }
            None => missing.push(
                "bubblewrap is not installed (`apt-get install bubblewrap` to test it too)".into(),
            ),
        }
        match Backend::Namespaces.probe() {
            Ok(()) => found.push(Backend::Namespaces),
            Err(e) => missing.push(format!("the built-in backend cannot be set up: {e}")),
        }
        for m in &missing {
            notice(&format!("security tests: not exercised: {m}"));
        }
        (found, missing)
    })
}

/// Print straight to stderr, past the test harness's capture, so that skips show in a plain
/// `cargo test`.
fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The backends `test` runs against; fails under `CI` when there is none.
fn backends(test: &str) -> Vec<Backend> {
    let (found, _) = available();
    if found.is_empty() {
        let msg = format!(
            "{test}: SKIPPED: no confining backend works on this machine. Install bubblewrap \
             (apt-get install bubblewrap) or enable unprivileged user namespaces \
             (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, \
             kernel.apparmor_restrict_unprivileged_userns=0) to run the security tests"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "{msg} (CI is set, so the security tests must run)"
        );
        notice(&msg);
    }
    found.clone()
}

/// What a command run with `b` must report.
fn expected_confinement(b: &Backend) -> Confinement {
    match b {
        Backend::Namespaces if std::env::var(LANDLOCK_SWITCH).is_ok_and(|v| v == "off") => {
            Confinement::Namespaces
        }
        _ => b.confinement(),
    }
}

fn sandbox(b: &Backend) -> Sandbox {
    Sandbox::new(b.clone(), Duration::from_secs(20), 1024)
}

/// A fresh directory outside `/tmp` (so that a failed write there proves read-only-ness rather
/// than `/tmp` being private).
fn dir_outside_tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A fresh directory under `/tmp`.
fn dir_under_tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("recloop-sandbox-test")
        .tempdir_in("/tmp")
        .unwrap()
}

fn run(sb: &Sandbox, dir: &Path, cmd: &str) -> CommandOutcome {
    let out = sb
        .run(dir, cmd)
        .unwrap_or_else(|e| panic!("{}: {e}", sb.backend));
    assert_eq!(out.confinement, expected_confinement(&sb.backend), "{cmd}");
    out
}

fn assert_ok(b: &Backend, out: &CommandOutcome) {
    assert!(
        out.success(),
        "{b}: {} (stdout: {})",
        out.failure_reason(),
        out.stdout
    );
}

/// A token unique to this test run, to find leftover processes by their command line.
fn token(tag: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}.{:09}{tag}", 40 + tag, nanos)
}

/// Processes on the host whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn network_is_unreachable_even_the_host_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = dir_outside_tmp();
    let connect = |host: &str, port: u16| {
        format!("bash -c 'exec 3<>/dev/tcp/{host}/{port}' && echo connected")
    };

    // The test itself works: unconfined, the connection is made.
    let plain = Sandbox::new(Backend::Unconfined, Duration::from_secs(20), 1024);
    let out = run(&plain, dir.path(), &connect("127.0.0.1", port));
    assert_ok(&plain.backend, &out);
    assert!(out.stdout.contains("connected"));
    assert!(
        listener.accept().is_ok(),
        "the unconfined connection arrived"
    );

    for b in backends("network_is_unreachable_even_the_host_loopback") {
        let sb = sandbox(&b);
        let out = run(&sb, dir.path(), &connect("127.0.0.1", port));
        assert!(!out.success(), "{b}: connected to the host: {}", out.stdout);
        assert!(!out.stdout.contains("connected"));
        assert!(
            listener.accept().is_err(),
            "{b}: a connection reached the host's listener"
        );
        let out = run(&sb, dir.path(), &connect("1.1.1.1", 80));
        assert!(!out.success(), "{b}: reached 1.1.1.1: {}", out.stdout);
        assert!(
            out.stderr.contains("unreachable"),
            "{b}: {}",
            out.failure_reason()
        );
    }
}

#[test]
fn writes_succeed_inside_the_worktree_and_fail_everywhere_else() {
    for b in backends("writes_succeed_inside_the_worktree_and_fail_everywhere_else") {
        let sb = sandbox(&b);
        for wt in [dir_outside_tmp(), dir_under_tmp()] {
            let out = run(
                &sb,
                wt.path(),
                "echo hi > inside.txt && cat inside.txt && pwd",
            );
            assert_ok(&b, &out);
            let canon = wt.path().canonicalize().unwrap();
            assert_eq!(out.stdout, format!("hi\n{}\n", canon.display()), "{b}");
            assert_eq!(
                std::fs::read_to_string(wt.path().join("inside.txt")).unwrap(),
                "hi\n"
            );
        }

        let wt = dir_outside_tmp();
        let outside = dir_outside_tmp();
        let o = outside.path().display();
        std::fs::write(outside.path().join("existing"), "keep").unwrap();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let home_probe = Path::new(&home).join(format!(".recloop-sandbox-probe-{}", token(0)));
        for cmd in [
            format!("echo x > {o}/new"),
            format!("mkdir {o}/d"),
            // not `rm -f`: where `outside` is hidden (a checkout under /tmp) it would "succeed"
            format!("rm {o}/existing"),
            format!("echo x >> {o}/existing"),
            format!("truncate -s 0 {o}/existing"),
            format!("ln -s /etc/passwd {o}/link"),
            format!("echo a > mine && mv mine {o}/moved"),
            format!("mv {o}/existing {o}/renamed"),
            format!("touch {}", home_probe.display()),
            "touch /etc/recloop-sandbox-probe".to_string(),
            "touch /usr/recloop-sandbox-probe".to_string(),
        ] {
            let out = run(&sb, wt.path(), &cmd);
            assert!(!out.success(), "{b}: `{cmd}` succeeded");
        }
        let names: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["existing".to_string()], "{b}");
        assert_eq!(
            std::fs::read_to_string(outside.path().join("existing")).unwrap(),
            "keep"
        );
        assert!(!home_probe.exists(), "{b}: wrote in HOME");
        assert!(!Path::new("/etc/recloop-sandbox-probe").exists());
    }
}

#[test]
fn tmp_is_private_to_each_command() {
    let host = dir_under_tmp();
    std::fs::write(host.path().join("secret"), "host").unwrap();
    let marker = format!("/tmp/recloop-sandbox-marker-{}", token(1));
    for b in backends("tmp_is_private_to_each_command") {
        let sb = sandbox(&b);
        let wt = dir_outside_tmp();
        let cmd = format!(
            "test ! -e {secret} && echo \"$TMPDIR\" && echo private > {marker} && cat {marker} \
             && mktemp",
            secret = host.path().join("secret").display()
        );
        let out = run(&sb, wt.path(), &cmd);
        assert_ok(&b, &out);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"/tmp"), "{b}");
        assert_eq!(lines.get(1), Some(&"private"), "{b}");
        let mktemp = lines.get(2).copied().unwrap_or_default();
        assert!(mktemp.starts_with("/tmp/tmp."), "{b}: {mktemp}");
        assert!(!Path::new(&marker).exists(), "{b}: /tmp is the host's");
        assert!(!Path::new(mktemp).exists(), "{b}: /tmp is the host's");
        // Nothing is left for the next command either.
        let out = run(&sb, wt.path(), &format!("test ! -e {marker}"));
        assert_ok(&b, &out);
    }
}

#[test]
fn extra_paths_under_tmp_are_visible_read_only_or_read_write() {
    for b in backends("extra_paths_under_tmp_are_visible_read_only_or_read_write") {
        let ro = dir_under_tmp();
        let rw = dir_under_tmp();
        let state = dir_under_tmp();
        std::fs::write(ro.path().join("data"), "cached").unwrap();
        let lone = dir_under_tmp();
        std::fs::write(lone.path().join("file"), "lone").unwrap();
        std::fs::write(lone.path().join("hidden"), "hidden").unwrap();
        let mut sb = sandbox(&b);
        sb.extra_ro.push(ro.path().to_path_buf());
        sb.extra_ro.push(lone.path().join("file"));
        sb.extra_rw.push(rw.path().to_path_buf());
        sb.link_recloop(state.path(), Path::new("/bin/echo"))
            .unwrap();
        let wt = dir_under_tmp();
        let r = ro.path().display();
        let out = run(&sb, wt.path(), &format!("cat {r}/data && recloop linked"));
        assert_ok(&b, &out);
        assert_eq!(out.stdout, "cachedlinked\n", "{b}");
        let l = lone.path().display();
        let out = run(
            &sb,
            wt.path(),
            &format!("cat {l}/file && test ! -e {l}/hidden"),
        );
        assert_ok(&b, &out);
        assert_eq!(out.stdout, "lone", "{b}");
        let out = run(&sb, wt.path(), &format!("echo x > {l}/file"));
        assert!(!out.success(), "{b}: wrote into an extra_ro file");
        let out = run(&sb, wt.path(), &format!("echo x > {r}/data"));
        assert!(!out.success(), "{b}: wrote into an extra_ro path");
        let out = run(&sb, wt.path(), &format!("touch {r}/new"));
        assert!(!out.success(), "{b}: created a file in an extra_ro path");
        assert_eq!(
            std::fs::read_to_string(ro.path().join("data")).unwrap(),
            "cached"
        );
        assert!(!ro.path().join("new").exists());
        let out = run(
            &sb,
            wt.path(),
            &format!("echo shared > {}/out", rw.path().display()),
        );
        assert_ok(&b, &out);
        assert_eq!(
            std::fs::read_to_string(rw.path().join("out")).unwrap(),
            "shared\n"
        );
    }
}

#[test]
fn the_time_limit_kills_the_command_and_every_descendant() {
    for (i, b) in backends("the_time_limit_kills_the_command_and_every_descendant")
        .into_iter()
        .enumerate()
    {
        let wt = dir_outside_tmp();
        let mut sb = sandbox(&b);
        sb.timeout = Duration::from_millis(1500);
        let tok = token(10 + i as u32);
        // A background grandchild, one in a new session (escapes a process-group kill), one in a
        // subshell; each would write its marker after the limit.
        let cmd = format!(
            "(sleep 3; echo late > late1) & \
             setsid sh -c 'sleep 3; echo late > late2' & \
             sh -c 'sleep {tok}; echo late > late3' & \
             sleep 30"
        );
        let start = Instant::now();
        let out = run(&sb, wt.path(), &cmd);
        assert!(out.timed_out, "{b}: {out:?}");
        assert!(out.failure_reason().contains("time limit"));
        assert!(start.elapsed() < Duration::from_secs(6), "{b}: {out:?}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            processes_with(&tok).is_empty(),
            "{b}: {:?}",
            processes_with(&tok)
        );
        std::thread::sleep(Duration::from_secs(3));
        for m in ["late1", "late2", "late3"] {
            assert!(!wt.path().join(m).exists(), "{b}: {m} was written");
        }
    }
}

#[test]
fn background_processes_die_when_the_command_exits() {
    for (i, b) in backends("background_processes_die_when_the_command_exits")
        .into_iter()
        .enumerate()
    {
        let wt = dir_outside_tmp();
        let sb = sandbox(&b);
        let tok = token(20 + i as u32);
        let start = Instant::now();
        let out = run(
            &sb,
            wt.path(),
            &format!("setsid sleep {tok} & echo started"),
        );
        assert_ok(&b, &out);
        assert_eq!(out.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{b}: waited for the daemon"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            processes_with(&tok).is_empty(),
            "{b}: {:?}",
            processes_with(&tok)
        );
    }
}

#[test]
fn the_environment_is_cleared_except_the_listed_variables() {
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "TMPDIR",
        "PYTHONDONTWRITEBYTECODE",
        "PYENV_ROOT",
        "PYENV_VERSION",
        "RECLOOP_DATA",
        // set by the shell itself
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    let leaked: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if leaked.is_empty() {
        notice("the_environment_is_cleared...: this process has no other variable to leak");
    }
    let mut list = vec![Backend::Unconfined];
    list.extend(backends(
        "the_environment_is_cleared_except_the_listed_variables",
    ));
    for b in list {
        let wt = dir_outside_tmp();
        let mut sb = sandbox(&b);
        sb.env.push(("RECLOOP_TEST_PASSED".into(), "yes".into()));
        let out = run(&sb, wt.path(), "env");
        assert_ok(&b, &out);
        let names: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        for k in &leaked {
            assert!(
                !names.contains(&k.as_str()),
                "{b}: {k} leaked: {}",
                out.stdout
            );
        }
        for k in ["PATH", "HOME", "LANG", "TMPDIR", "RECLOOP_TEST_PASSED"] {
            assert!(names.contains(&k), "{b}: {k} missing: {}", out.stdout);
        }
        assert!(out.stdout.contains("TMPDIR=/tmp\n"));
        // Nor through another process of the sandbox: the built-in backend's init is a fork of
        // this process, so it must not be dumpable (bubblewrap's is a fresh exec of bwrap).
        let out = run(
            &sb,
            wt.path(),
            "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done; \
             head -1 /proc/1/maps 2>/dev/null | wc -l",
        );
        assert_ok(&b, &out);
        let names: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        if b.confinement().is_confined() {
            for k in &leaked {
                assert!(
                    !names.contains(&k.as_str()),
                    "{b}: {k} readable: {}",
                    out.stdout
                );
            }
        }
        if b == Backend::Namespaces {
            assert!(out.stdout.ends_with("\n0\n"), "{b}: {}", out.stdout);
        }
    }
}

#[test]
fn the_memory_limit_stops_a_large_allocation() {
    // The shell holds a command substitution in memory: 200 MB cannot fit in 64 MiB.
    let alloc = |n: u64| format!("x=$(head -c {n} /dev/zero | tr '\\0' a); echo ${{#x}}");
    let mut list = vec![Backend::Unconfined];
    list.extend(backends("the_memory_limit_stops_a_large_allocation"));
    for b in list {
        let wt = dir_outside_tmp();
        let mut sb = sandbox(&b);
        sb.memory_mib = 64;
        let out = run(&sb, wt.path(), &alloc(10_000_000));
        assert_ok(&b, &out);
        assert_eq!(out.stdout, "10000000\n");
        let out = run(&sb, wt.path(), &alloc(200_000_000));
        assert!(!out.success(), "{b}: allocated 200 MB under a 64 MiB limit");
        assert!(!out.stdout.contains("200000000"));
        sb.memory_mib = 0;
        let out = run(&sb, wt.path(), &alloc(200_000_000));
        assert_ok(&b, &out);
    }
}

#[test]
fn devices_processes_and_privileges_are_confined() {
    let test_pid = std::process::id();
    for b in backends("devices_processes_and_privileges_are_confined") {
        let wt = dir_outside_tmp();
        let outside = dir_outside_tmp();
        let sb = sandbox(&b);
        let out = run(&sb, wt.path(), "ls -A /dev");
        assert_ok(&b, &out);
        let allowed = [
            "null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout", "stderr",
            "ptmx", "shm", "pts", "console", "core",
        ];
        for name in out.stdout.lines() {
            assert!(allowed.contains(&name), "{b}: /dev/{name} is visible");
        }
        let out = run(
            &sb,
            wt.path(),
            "echo x > /dev/null && echo out > /dev/stdout && echo shm > /dev/shm/f \
             && cat /dev/shm/f && head -c 4 /dev/urandom | wc -c",
        );
        assert_ok(&b, &out);
        assert_eq!(out.stdout, "out\nshm\n4\n", "{b}");

        // Only the command's own processes are visible.
        let out = run(
            &sb,
            wt.path(),
            &format!("test ! -e /proc/{test_pid} && ls /proc | grep -c '^[0-9]'"),
        );
        assert_ok(&b, &out);
        let n: u32 = out.stdout.trim().parse().unwrap();
        assert!(n < 10, "{b}: {n} processes visible");

        // No capability survives, even as root, and a nested user namespace does not help.
        let o = outside.path().display();
        for cmd in [
            "mount -o remount,rw /".to_string(),
            "mount -t tmpfs none /mnt".to_string(),
            format!("mount -o remount,rw,bind {o}"),
            format!(
                "unshare -Urm sh -c 'mount -o remount,rw,bind {o} 2>/dev/null; \
                 mount -o remount,rw,bind / 2>/dev/null; umount -l /tmp 2>/dev/null; \
                 touch {o}/escaped'"
            ),
            "echo 1 > /proc/sys/kernel/sysrq".to_string(),
        ] {
            let out = run(&sb, wt.path(), &cmd);
            assert!(!out.success(), "{b}: `{cmd}` succeeded");
        }
        assert!(!outside.path().join("escaped").exists(), "{b}: escaped");
    }
}

#[test]
fn detect_picks_a_confining_backend() {
    if backends("detect_picks_a_confining_backend").is_empty() {
        return;
    }
    let b = Backend::detect().unwrap();
    assert_ne!(b, Backend::Unconfined);
    match which("bwrap") {
        Some(p) => assert_eq!(b, Backend::Bubblewrap(p)),
        None => assert_eq!(b, Backend::Namespaces),
    }
}

#[test]
fn missing_paths_are_reported_before_anything_runs() {
    let wt = dir_outside_tmp();
    let mut sb = Sandbox::new(Backend::Unconfined, Duration::from_secs(5), 0);
    sb.extra_ro
        .push(PathBuf::from("/nonexistent/recloop-sandbox"));
    match sb.run(wt.path(), "true") {
        Err(SandboxError::Io { path, .. }) => {
            assert_eq!(path, Path::new("/nonexistent/recloop-sandbox"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unconfined_kills_its_process_group_at_the_time_limit() {
    let wt = dir_outside_tmp();
    let mut sb = Sandbox::new(Backend::Unconfined, Duration::from_millis(800), 0);
    sb.timeout = Duration::from_millis(800);
    let out = run(&sb, wt.path(), "(sleep 2; echo late > late) & sleep 30");
    assert!(out.timed_out);
    assert!(!out.sandboxed());
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!wt.path().join("late").exists());
}

#[test]
fn cancelling_kills_the_command_and_its_descendants_at_once() {
    let wt = dir_outside_tmp();
    let mut kinds = backends("cancelling_kills_the_command_and_its_descendants_at_once");
    kinds.push(Backend::Unconfined);
    for backend in kinds {
        let sb = Sandbox::new(backend.clone(), Duration::from_secs(30), 0);
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let start = std::time::Instant::now();
        let out = std::thread::scope(|s| {
            let h = s.spawn(|| {
                sb.run_cancellable(wt.path(), "(sleep 2; echo late > late) & sleep 30", &cancel)
            });
            std::thread::sleep(Duration::from_millis(500));
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            h.join().unwrap().unwrap()
        });
        assert!(start.elapsed() < Duration::from_secs(5), "{backend:?}");
        assert!(!out.timed_out && out.code.is_none(), "{backend:?}: {out:?}");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!wt.path().join("late").exists(), "{backend:?}");
    }
}

#[test]
fn without_landlock_the_mounts_alone_confine() {
    if std::env::var_os(LANDLOCK_SWITCH).is_some() {
        return; // this is the copy run below
    }
    if !backends("without_landlock_the_mounts_alone_confine").contains(&Backend::Namespaces) {
        return;
    }
    if Backend::Namespaces.confinement() != Confinement::NamespacesLandlock {
        notice("no Landlock on this kernel: every test above already ran without it");
        return;
    }
    // Run every test of this binary again with the Landlock layer switched off.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--test-threads", "2", "--skip", "without_landlock"])
        .env(LANDLOCK_SWITCH, "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Set (to "BACKEND TOKEN WORKTREE") for the copy of this binary that `nothing_outlives_a_killed_caller`
/// runs and kills.
const CALLER_SWITCH: &str = "RECLOOP_SANDBOX_TEST_CALLER";

/// In the copy run by `nothing_outlives_a_killed_caller`: start a command that would run for a
/// minute, with background processes, and wait for it (until killed).
#[test]
fn caller_killed_by_the_test_below() {
    let Ok(spec) = std::env::var(CALLER_SWITCH) else {
        return;
    };
    let mut parts = spec.splitn(3, ' ');
    let (backend, tok, wt) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let b = match backend {
        "namespaces" => Backend::Namespaces,
        bwrap => Backend::Bubblewrap(PathBuf::from(bwrap)),
    };
    let mut sb = sandbox(&b);
    sb.timeout = Duration::from_secs(60);
    let _ = sb.run(
        Path::new(wt),
        &format!("sleep {tok} & setsid sleep {tok} & sleep {tok}"),
    );
}

#[test]
fn nothing_outlives_a_killed_caller() {
    for (i, b) in backends("nothing_outlives_a_killed_caller")
        .into_iter()
        .enumerate()
    {
        let tok = token(30 + i as u32);
        let name = match &b {
            Backend::Bubblewrap(p) => p.display().to_string(),
            _ => "namespaces".to_string(),
        };
        let wt = dir_outside_tmp();
        let mut caller = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "caller_killed_by_the_test_below", "--nocapture"])
            .env(
                CALLER_SWITCH,
                format!("{name} {tok} {}", wt.path().display()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let sleeps = || {
            processes_with(&tok)
                .iter()
                .filter(|p| p.contains(": sleep "))
                .count()
        };
        while sleeps() < 3 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(sleeps(), 3, "{b}: the command did not start");
        caller.kill().unwrap(); // SIGKILL: no chance to clean up
        caller.wait().unwrap();
        let start = Instant::now();
        while !processes_with(&tok).is_empty() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            processes_with(&tok).is_empty(),
            "{b}: {:?}",
            processes_with(&tok)
        );
    }
}
