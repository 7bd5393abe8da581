//! Crash test: a writer process appends events and acknowledges each id on stdout; the test kills
//! it with SIGKILL at random points, 20 times, then checks that every acknowledged event is
//! present, the log has no gaps or bad checksums, every step exists exactly once (the resumed
//! writer retried its in-flight step with the same idempotency key), and the views equal a
//! rebuild.
//!
//! The writer is this test executable re-invoked with `RECLOOP_CRASH_CHILD=1`.

use crate::common::TestDb;
use rand::{Rng, SeedableRng};
use recloop_journal::{Journal, NewEvent};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const CHILD_ENV: &str = "RECLOOP_CRASH_CHILD";
pub const URL_ENV: &str = "RECLOOP_CRASH_URL";
const RUN: &str = "crash-run";
const STREAM_SEED: u64 = 99;

fn step_event(stream: &[NewEvent], step: u64, parent: Option<uuid::Uuid>) -> NewEvent {
    stream[(step - 1) as usize % stream.len()]
        .clone()
        .key(format!("step-{step}"))
        .parent(parent)
}

fn step_of(key: &str) -> u64 {
    key.strip_prefix("step-").unwrap().parse().unwrap()
}

/// The writer: resume from the journal, redo the in-flight step, then append forever.
pub fn child_main() {
    let url = std::env::var(URL_ENV).unwrap();
    let j = Journal::open(&url).unwrap();
    let stream = recloop_journal::fixtures::loop_stream(RUN, STREAM_SEED, 5000);
    let mut out = std::io::stdout();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let (mut step, mut parent) = match j.last_completed_step(RUN).unwrap() {
        None => (1, None),
        Some(last) => {
            // Retry the last step as if its acknowledgement had been lost: same key, same id.
            let n = step_of(last.idempotency_key.as_deref().unwrap());
            let prev = if n > 1 {
                Some(
                    j.find_by_key(&format!("step-{}", n - 1))
                        .unwrap()
                        .unwrap()
                        .id,
                )
            } else {
                None
            };
            let again = j.append(step_event(&stream, n, prev)).unwrap();
            assert_eq!(
                again,
                last.event_id(),
                "retried step must return the existing id"
            );
            writeln!(out, "ACK {} {} step-{n}", again.seq, again.id).unwrap();
            (n + 1, Some(last.id))
        }
    };
    loop {
        if step % 7 == 0 {
            // A batch of 5 steps in one transaction, chained by parent within the batch.
            let mut batch = Vec::new();
            let mut p = parent;
            for s in step..step + 5 {
                let mut e = step_event(&stream, s, p);
                let id = uuid::Uuid::now_v7();
                e = e.with_id(id);
                p = Some(id);
                batch.push(e);
            }
            let ids = j.append_batch(batch).unwrap();
            for (k, id) in ids.iter().enumerate() {
                writeln!(out, "ACK {} {} step-{}", id.seq, id.id, step + k as u64).unwrap();
            }
            out.flush().unwrap();
            parent = Some(ids[4].id);
            step += 5;
        } else {
            let id = j.append(step_event(&stream, step, parent)).unwrap();
            writeln!(out, "ACK {} {} step-{step}", id.seq, id.id).unwrap();
            out.flush().unwrap();
            parent = Some(id.id);
            step += 1;
        }
    }
}

/// Run the writer, kill it, 20 times; check everything acknowledged survived.
pub fn kill_and_recover(db: &TestDb) {
    // Create the journal first so early kills in round 0 exercise open-after-crash too.
    drop(db.open());
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(20_26);
    let mut acked: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut kills_before_ready = 0;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(URL_ENV, &db.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // Only complete lines count: a line cut by the kill was never acknowledged.
                    Ok(_) if line.ends_with('\n') => {
                        let _ = tx.send(line.trim_end().to_string());
                    }
                    Ok(_) => break,
                }
            }
        });
        let early = round % 7 == 3;
        let start = Instant::now();
        // The wait below consumes the READY line, so remember it was seen.
        let mut ready = false;
        if early {
            // Kill during start-up (opening, schema check, resumption).
            std::thread::sleep(Duration::from_millis(rng.random_range(5..80)));
        } else {
            // Wait until the writer is appending, then kill it at a random moment.
            let deadline = start + Duration::from_secs(60);
            loop {
                let now = Instant::now();
                assert!(now < deadline, "writer did not start within 60 s");
                match rx.recv_timeout(deadline - now) {
                    Ok(l) if l.ends_with("READY") => {
                        ready = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("writer produced no READY line: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(10..300)));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        reader.join().unwrap();
        for line in rx.try_iter() {
            if line.ends_with("READY") {
                ready = true;
            }
            if let Some(rest) = line.strip_prefix("ACK ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                let seq: u64 = parts[0].parse().unwrap();
                let prev = acked.insert(seq, (parts[1].to_string(), parts[2].to_string()));
                if let Some(prev) = prev {
                    assert_eq!(
                        prev,
                        (parts[1].to_string(), parts[2].to_string()),
                        "seq {seq} acknowledged twice with different content"
                    );
                }
            }
        }
        if !ready {
            kills_before_ready += 1;
        }
    }
    assert!(
        acked.len() > 50,
        "too few acknowledged events ({}) to mean anything",
        acked.len()
    );
    eprintln!(
        "crash test: {} acknowledged events over 20 kills ({} before the writer was ready)",
        acked.len(),
        kills_before_ready
    );

    let j = db.open();
    let report = j.verify().unwrap();
    assert_eq!(report.events, report.last_seq);
    for (seq, (id, key)) in &acked {
        let rec = j
            .event(*seq)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged event #{seq} is missing"));
        assert_eq!(&rec.id.to_string(), id, "event #{seq} changed");
        assert_eq!(rec.idempotency_key.as_deref(), Some(key.as_str()));
    }
    // Every step exactly once, without holes: steps 1..=max.
    let steps: Vec<u64> = j
        .events(&Default::default())
        .unwrap()
        .iter()
        .map(|r| step_of(r.idempotency_key.as_deref().unwrap()))
        .collect();
    let expected: Vec<u64> = (1..=steps.len() as u64).collect();
    assert_eq!(steps, expected, "steps are duplicated or missing");
    // Views are consistent with a rebuild from the log.
    let before = j.dump_views().unwrap();
    j.rebuild_views().unwrap();
    assert_eq!(
        before,
        j.dump_views().unwrap(),
        "views differ from a rebuild"
    );
}
