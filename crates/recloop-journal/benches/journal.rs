//! `cargo bench -p recloop-journal`: medians of
//! 1. appending 100,000 events to a fresh SQLite journal through `append_batch` (batches of 1,000
//!    events, one transaction each, with `synchronous=FULL`; every event is validated, numbered,
//!    checksummed and projected into the views and the FTS index in the same transaction, each
//!    view row a batch touches being written once);
//! 2. a filtered full-text search over those 100,000 events (`search("diversity coverage",
//!    kinds=[hypothesis], stage=rerank, limit=20)` and a failure-asset query filtered by lever and
//!    segment);
//! 3. for reference, single-event appends (one transaction and one fsync each).
//!
//! Set `RECLOOP_BENCH_RUNS` to change the number of append repetitions (default 3) and
//! `RECLOOP_BENCH_KEEP=DIR` to keep the last 100,000-event journal in `DIR/journal.db`;
//! `RECLOOP_BENCH_DB=PATH` only times lookups and an unfiltered search on an existing journal.
//!
//! Every line gives wall-clock time and, in brackets, the CPU time the process used (all threads,
//! from `/proc/self/stat`, 10 ms resolution): on a shared machine the wall time includes waiting for
//! a core, the CPU time does not. The load average (`/proc/loadavg`) is printed before and after,
//! so numbers from a busy machine can be recognised as such. Targets (issue 4): append ≤ 5 s wall,
//! filtered search ≤ 20 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_journal::fixtures::loop_stream;
use recloop_journal::{Journal, SearchFilter};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time (user + system, all threads) of this process so far; zero where unavailable.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // Clock ticks are 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}

/// The 1-minute load average and the number of cores, for the record.
fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("load average {avg} on {cores} cores")
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (c, t) = (cpu_time(), Instant::now());
    let out = f();
    (out, t.elapsed(), cpu_time().saturating_sub(c))
}

fn main() {
    let runs: usize = std::env::var("RECLOOP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let n = 100_000;
    // Diagnostic mode: time lookups and an unfiltered search on an existing journal.
    if let Ok(db) = std::env::var("RECLOOP_BENCH_DB") {
        let j = Journal::open(&db).expect("open");
        for _ in 0..3 {
            let ((), w, c) = timed(|| {
                for _ in 0..20 {
                    j.event(5).expect("event");
                }
            });
            println!("20x event(5): wall {w:?} cpu {c:?}");
            let ((), w, c) = timed(|| {
                for _ in 0..20 {
                    j.search("diversity coverage", &SearchFilter::default())
                        .expect("search");
                }
            });
            println!("20x search: wall {w:?} cpu {c:?}");
        }
        return;
    }
    let events = loop_stream("bench", 42, n);
    let mut append_times = Vec::new();
    let mut append_cpu = Vec::new();
    let mut keep = None;
    println!("append: {runs} runs of {n} events; before: {}", load());
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = Journal::open(&dir.path().join("journal.db").display().to_string())
            .expect("open journal");
        let batches: Vec<Vec<_>> = events.chunks(1000).map(|c| c.to_vec()).collect();
        let ((), dt, cpu) = timed(|| {
            for b in batches {
                j.append_batch(b).expect("append");
            }
        });
        println!(
            "run {run}: appended {n} events in {:.3} s ({:.0} events/s) [cpu {:.3} s]",
            dt.as_secs_f64(),
            n as f64 / dt.as_secs_f64(),
            cpu.as_secs_f64()
        );
        let wal = std::fs::metadata(dir.path().join("journal.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        let main = std::fs::metadata(dir.path().join("journal.db"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("  database {main} bytes, WAL {wal} bytes");
        append_times.push(dt);
        append_cpu.push(cpu);
        if run + 1 == runs {
            keep = Some((dir, j));
        }
    }
    let Some((dir, j)) = keep else { return };
    let wall = median(append_times);
    let cpu = median(append_cpu);
    println!("append: after: {}", load());
    println!(
        "MEDIAN append {n} events (batches of 1000, SQLite WAL, synchronous=FULL): \
         wall {:.3} s = {:.0} events/s (target <= 5 s: {}); cpu {:.3} s = {:.0} events/s per \
         CPU-second",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        if wall.as_secs_f64() <= 5.0 {
            "met"
        } else {
            "NOT met"
        },
        cpu.as_secs_f64(),
        n as f64 / cpu.as_secs_f64().max(1e-9)
    );

    let queries: Vec<(&str, SearchFilter)> = vec![
        (
            "diversity coverage",
            SearchFilter {
                kinds: vec!["hypothesis".into()],
                stage: Some("rerank".into()),
                limit: Some(20),
                ..SearchFilter::default()
            },
        ),
        (
            "root cause heavy users",
            SearchFilter {
                kinds: vec!["failure".into()],
                lever: Some("blend.weights".into()),
                segment: Some("sparse".into()),
                limit: Some(20),
                ..SearchFilter::default()
            },
        ),
    ];
    for (text, filter) in &queries {
        let hits = j.search(text, filter).expect("search");
        let mut times = Vec::new();
        let reps = 50;
        let ((), _, cpu) = timed(|| {
            for _ in 0..reps {
                let t = Instant::now();
                let h = j.search(text, filter).expect("search");
                times.push(t.elapsed());
                assert_eq!(h.len(), hits.len());
            }
        });
        println!(
            "MEDIAN filtered search {text:?} over {n} events: {:.2} ms ({} hits, target <= 20 ms) \
             [cpu {:.2} ms/query]",
            median(times).as_secs_f64() * 1e3,
            hits.len(),
            cpu.as_secs_f64() * 1e3 / reps as f64
        );
    }
    if let Ok(keep_dir) = std::env::var("RECLOOP_BENCH_KEEP") {
        drop(j);
        let to = std::path::Path::new(&keep_dir);
        std::fs::create_dir_all(to).expect("create RECLOOP_BENCH_KEEP");
        std::fs::copy(dir.path().join("journal.db"), to.join("journal.db")).expect("keep db");
        println!("kept the journal in {}", to.join("journal.db").display());
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let single = Journal::open(&dir.path().join("journal.db").display().to_string()).expect("open");
    let mut times = Vec::new();
    for e in events.iter().take(300) {
        let t = Instant::now();
        single.append(e.clone()).expect("append");
        times.push(t.elapsed());
    }
    println!(
        "MEDIAN single append (own transaction + fsync): {:.2} ms",
        median(times).as_secs_f64() * 1e3
    );
}
