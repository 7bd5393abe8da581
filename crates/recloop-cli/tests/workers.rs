//! Several `recloop run` workers on one PostgreSQL journal (`RECLOOP_TEST_POSTGRES_URL`; skipped
//! with a message when unset, failed instead under `CI`): two worker processes, each in its own
//! clone of the workspace with a local bare repository as the shared remote, finish a
//! 6-iteration run; one is killed with SIGKILL in the middle of a candidate and the other takes
//! the candidate over once its lease expires. And a SQLite journal refuses a second process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg_url;
use recloop_journal::{Event, EventFilter, EventRecord, Journal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_recloop");

fn git(dir: &Path, args: &[&str]) -> String {
    recloop_agents::git::git(dir, args).unwrap()
}

/// A synthetic workspace on the simulator, its offline and holdout evaluations slowed by
/// `sleep` (the window in which a worker is killed: every candidate is evaluated offline, only
/// those that pass validation reach the holdout), with `[workers]` naming `remote`; returns the
/// seed repository.
fn seed(root: &Path, remote: &Path, extra: &str) -> PathBuf {
    let ws = root.join("seed");
    recloop_agents::example::synthetic_example(&ws, 300, 200).unwrap();
    let path = ws.join("recloop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "platform = \"none\"",
        "holdout_eval = \"recloop rec eval",
        "offline_eval = \"recloop rec eval",
    ] {
        assert!(text.contains(needle), "{text}");
    }
    let text = text
        .replace("platform = \"none\"", "platform = \"simulator\"")
        .replace(
            "holdout_eval = \"recloop rec eval",
            "holdout_eval = \"sleep 2; recloop rec eval",
        )
        .replace(
            "offline_eval = \"recloop rec eval",
            "offline_eval = \"sleep 1; recloop rec eval",
        );
    let text = format!(
        "{text}\n[workers]\nremote = \"{}\"\nlease_ttl_s = 3\npoll_s = 0.2\n{extra}",
        remote.display()
    );
    std::fs::write(&path, text).unwrap();
    git(&ws, &["commit", "-qam", "two workers"]);
    ws
}

fn worker(ws: &Path, data: &Path, journal: &str, iterations: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "run",
        "--workspace",
        ws.to_str().unwrap(),
        "--journal",
        journal,
        "--iterations",
        iterations,
        "--unattended",
        "reject",
        "--json",
    ])
    .env("RECLOOP_DATA", data)
    .env_remove("RECLOOP_JOURNAL_URL")
    .stdin(Stdio::null());
    c
}

fn events(j: &Journal) -> Vec<EventRecord> {
    j.events(&EventFilter::default()).unwrap()
}

/// The proposal of a candidate lease `worker` holds whose candidate is not yet decided: it is
/// being developed or evaluated (a candidate discarded at validation is decided moments after
/// it is ready, so waiting for `candidate_ready` alone could miss every window).
fn mid_candidate(evs: &[EventRecord], worker: &str) -> Option<String> {
    evs.iter().find_map(|e| match &e.event {
        Event::LeaseAcquired {
            worker: w,
            proposal_id: Some(p),
            ..
        } if w == worker => {
            let decided = evs.iter().any(|x| {
                x.idempotency_key
                    .as_deref()
                    .is_some_and(|k| k.ends_with(&format!("/candidate/{p}/done")))
            });
            (!decided).then(|| p.clone())
        }
        _ => None,
    })
}

fn wait_ok(child: Child, name: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_workers_share_a_postgres_journal_and_one_takes_over_a_killed_workers_candidate() {
    let Some(url) = pg_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    let seed = seed(tmp.path(), &remote, "[run]\nbatch_size = 2\n");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            remote.to_str().unwrap(),
        ],
    );
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for ws in [&a, &b] {
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                remote.to_str().unwrap(),
                ws.to_str().unwrap(),
            ],
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let sep = if url.contains('?') { '&' } else { '?' };
    let journal = format!("{url}{sep}schema=workers_{}_{nanos}", std::process::id());
    let data = tmp.path().join("data");
    let mut first = worker(&a, &data, &journal, "6")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = worker(&b, &data, &journal, "6")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // worker ids are host:pid:nonce
    let first_pid = first.id().to_string();
    let j = Journal::open(&journal).unwrap();
    let killed_worker = |evs: &[EventRecord]| {
        evs.iter().find_map(|e| match &e.event {
            Event::Note { topic, data, .. } if topic == "worker.joined" => data["worker"]
                .as_str()
                .filter(|w| w.split(':').nth(1) == Some(first_pid.as_str()))
                .map(str::to_string),
            _ => None,
        })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let (a_id, victim) = loop {
        assert!(
            Instant::now() < deadline,
            "worker A never got into the middle of a candidate"
        );
        if let Some(status) = first.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = first.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("worker A ended ({status}) before it was killed:\n{err}");
        }
        let evs = events(&j);
        if let Some(id) = killed_worker(&evs)
            && let Some(p) = mid_candidate(&evs, &id)
        {
            break (id, p);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed_at = Instant::now();
    let stdout = wait_ok(second, "worker B");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["iterations"], 6, "{stdout}");
    let evs = events(&j);
    let b_id = evs
        .iter()
        .find_map(|e| match &e.event {
            Event::Note { topic, data, .. } if topic == "worker.joined" => data["worker"]
                .as_str()
                .filter(|w| *w != a_id)
                .map(str::to_string),
            _ => None,
        })
        .expect("worker B joined");

    // the killed worker's candidate: its lease expired, B took it over and decided it
    let expired = evs
        .iter()
        .find(|e| {
            matches!(&e.event, Event::LeaseExpired { worker, proposal_id: Some(p), .. }
                if *worker == a_id && *p == victim)
        })
        .expect("the killed worker's lease expiry is journaled");
    let taken = evs
        .iter()
        .find(|e| {
            matches!(&e.event, Event::LeaseTakenOver { worker, from_worker, proposal_id: Some(p), .. }
                if *worker == b_id && *from_worker == a_id && *p == victim)
        })
        .expect("B's takeover is journaled");
    assert!(expired.seq < taken.seq);
    let verdict = evs
        .iter()
        .find(|e| matches!(&e.event, Event::Verdict { proposal_id, .. } if *proposal_id == victim))
        .expect("the taken-over candidate has a verdict");
    // the kill races A's own progress: A may journal the verdict between the poll that saw the
    // candidate undecided and the SIGKILL; then B's takeover must find it (exactly once, checked
    // below) instead of deciding again. Otherwise B decides after taking over.
    if verdict.seq < taken.seq {
        println!("worker A decided {victim} before it died; B's takeover found the verdict");
    } else {
        println!("worker B decided {victim} after taking it over");
    }
    assert!(
        killed_at.elapsed() < Duration::from_secs(240),
        "the takeover took too long"
    );

    // both workers worked on candidates, and every candidate was evaluated exactly once
    let mut lease_holders = BTreeMap::<String, usize>::new();
    let mut ready = BTreeMap::<String, usize>::new();
    let mut verdicts = BTreeMap::<String, usize>::new();
    let mut holdouts = BTreeMap::<String, usize>::new();
    let mut decided = BTreeMap::<String, usize>::new();
    for e in &evs {
        match &e.event {
            Event::LeaseAcquired {
                worker,
                proposal_id: Some(_),
                ..
            } => *lease_holders.entry(worker.clone()).or_default() += 1,
            Event::CandidateReady { candidate } => {
                *ready.entry(candidate.proposal.clone()).or_default() += 1
            }
            Event::Verdict { proposal_id, .. } => {
                *verdicts.entry(proposal_id.clone()).or_default() += 1
            }
            Event::HoldoutResult { proposal_id, .. } => {
                *holdouts.entry(proposal_id.clone()).or_default() += 1
            }
            Event::Note { topic, text, .. }
                if topic == "step" && text.starts_with("candidate/") =>
            {
                *decided.entry(text.clone()).or_default() += 1
            }
            _ => {}
        }
    }
    assert!(
        lease_holders.contains_key(&a_id) && lease_holders.contains_key(&b_id),
        "{lease_holders:?}"
    );
    assert!(decided.len() >= 6, "{decided:?}");
    for (what, counts) in [
        ("candidate_ready", &ready),
        ("verdict", &verdicts),
        ("holdout_result", &holdouts),
        ("candidate outcome", &decided),
    ] {
        assert!(
            counts.values().all(|n| *n == 1),
            "{what} more than once: {counts:?}"
        );
    }
    for p in ready.keys() {
        assert!(
            decided.contains_key(&format!("candidate/{p}")),
            "{p} ready but never decided"
        );
    }
    let finished = evs
        .iter()
        .filter(|e| matches!(e.event, Event::RunFinished { .. }))
        .count();
    assert_eq!(finished, 1);
    // production is one branch: the shared remote holds the last merged commit
    let last_merge = evs.iter().rev().find_map(|e| match &e.event {
        Event::MergedIntoProduction { commit, .. } => Some(commit.clone()),
        _ => None,
    });
    if let Some(c) = last_merge {
        assert_eq!(git(&remote, &["rev-parse", "main"]), c);
    }
    let listed = Command::new(BIN)
        .args(["journal", "list", "--events", "--url", &journal])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("lease_expired") && listed.contains(&format!("took over from {a_id}")),
        "{listed}"
    );
    println!(
        "{} candidates over 6 iterations; {victim} taken over from {a_id} by {b_id}",
        decided.len()
    );
}

#[test]
fn a_sqlite_journal_refuses_a_second_process() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    let seed = seed(tmp.path(), &remote, "");
    let other = tmp.path().join("other");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            seed.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    let db = tmp.path().join("shared").join("journal.db");
    let data = tmp.path().join("data");
    let mut first = worker(&seed, &data, db.to_str().unwrap(), "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = db.with_extension("db.run-lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = worker(&other, &data, db.to_str().unwrap(), "1")
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("another recloop process (pid {})", first.id()))
            && stderr.contains("this SQLite journal serves one `recloop run` at a time")
            && stderr.contains("--journal postgres://"),
        "{stderr}"
    );
}
