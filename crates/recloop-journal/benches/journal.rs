//! `cargo bench -p recloop-journal`: medians of
//! 1. appending 100,000 events to a fresh SQLite journal through `append_batch` (batches of 1,000
//!    events, one transaction each, with `synchronous=FULL`; every event is validated, numbered,
//!    checksummed and projected into the views and the FTS index in the same transaction);
//! 2. a filtered full-text search over those 100,000 events (`search("diversity coverage",
//!    kinds=[hypothesis], stage=rerank, limit=20)` and a failure-asset query filtered by lever and
//!    segment);
//! 3. for reference, single-event appends (one transaction and one fsync each).
//!
//! Set `RECLOOP_BENCH_RUNS` to change the number of append repetitions (default 3).

use recloop_journal::fixtures::loop_stream;
use recloop_journal::{Journal, SearchFilter};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("RECLOOP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let n = 100_000;
    let events = loop_stream("bench", 42, n);
    let mut append_times = Vec::new();
    let mut keep = None;
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = Journal::open(&dir.path().join("journal.db").display().to_string())
            .expect("open journal");
        let batches: Vec<Vec<_>> = events.chunks(1000).map(|c| c.to_vec()).collect();
        let t = Instant::now();
        for b in batches {
            j.append_batch(b).expect("append");
        }
        let dt = t.elapsed();
        println!(
            "run {run}: appended {n} events in {:.3} s",
            dt.as_secs_f64()
        );
        append_times.push(dt);
        if run + 1 == runs {
            keep = Some((dir, j));
        }
    }
    let Some((_dir, j)) = keep else { return };
    println!(
        "MEDIAN append {n} events (batches of 1000, SQLite WAL, synchronous=FULL): {:.3} s ({:.0} events/s)",
        median(append_times.clone()).as_secs_f64(),
        n as f64 / median(append_times).as_secs_f64()
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
        for _ in 0..50 {
            let t = Instant::now();
            let h = j.search(text, filter).expect("search");
            times.push(t.elapsed());
            assert_eq!(h.len(), hits.len());
        }
        println!(
            "MEDIAN filtered search {text:?} over {n} events: {:.2} ms ({} hits)",
            median(times).as_secs_f64() * 1e3,
            hits.len()
        );
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
