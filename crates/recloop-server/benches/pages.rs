//! `cargo bench -p recloop-server`: median time of every dashboard page (and a few API calls)
//! on a journal of 10,000 experiments (synthetic loop events from the journal's fixtures, two
//! runs, plus a pending approval and harness versions), rendered through the whole router
//! in-process (token check, journal reads, templates, redaction).
//!
//! `RECLOOP_BENCH_EXPERIMENTS` changes the size (default 10,000), `RECLOOP_BENCH_RUNS` the
//! repetitions per page (default 7), `RECLOOP_BENCH_DB=PATH` reuses (or keeps) the journal at
//! PATH. Target (issue): every page under 200 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use recloop_journal::fixtures::loop_stream;
use recloop_journal::{Event, ExperimentQuery, Journal, NewEvent};
use recloop_server::{ServeConfig, Source};
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn build(j: &Journal, experiments: u64) {
    // loop_stream proposes about one experiment per 17 events
    let per_run = experiments / 2;
    for (r, run) in ["bench-a", "bench-b"].iter().enumerate() {
        let mut n = (per_run * 18) as usize;
        loop {
            let events = loop_stream(run, 11 + r as u64, n);
            let made = events
                .iter()
                .filter(|e| matches!(e.event, Event::ProposalMade { .. }))
                .count() as u64;
            if made >= per_run {
                // cut after the per_run-th proposal's events
                let mut k = 0;
                let mut cut = events.len();
                for (i, e) in events.iter().enumerate() {
                    if matches!(e.event, Event::ProposalMade { .. }) {
                        k += 1;
                        if k > per_run {
                            cut = i;
                            break;
                        }
                    }
                }
                let events: Vec<NewEvent> = events.into_iter().take(cut).collect();
                for chunk in events.chunks(2000) {
                    j.append_batch(chunk.to_vec()).unwrap();
                }
                break;
            }
            n += n / 10;
        }
    }
    let mut extra = Vec::new();
    extra.push(NewEvent::new(
        "bench-b",
        9999,
        Event::ApprovalRequested {
            approval_id: "bench-approval".into(),
            proposal_id: Some("bench-b-p7".into()),
            kind: recloop_core::ApprovalKind::OfflineOnly,
            question: "KEEP bench-b-p7 decided offline only: merge it?".into(),
            evidence: serde_json::json!({"ndcg@10": {"candidate": 0.35, "production": 0.33}}),
        },
    ));
    for v in 1..=3u32 {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "instructions.md".to_string(),
            (0..40 + v)
                .map(|i| format!("rule {i}\n"))
                .collect::<String>(),
        );
        extra.push(NewEvent::new(
            "bench-a",
            0,
            Event::HarnessVersionCreated {
                version: v,
                parent_version: (v > 1).then(|| v - 1),
                admitted: v != 3,
                diagnosis: format!("diagnosis {v}"),
                spec: recloop_core::HarnessSpec {
                    agent: "brainstorm".into(),
                    files,
                },
                diff: String::new(),
                evidence: serde_json::Value::Null,
            },
        ));
    }
    j.append_batch(extra).unwrap();
}

fn main() {
    let experiments: u64 = std::env::var("RECLOOP_BENCH_EXPERIMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let reps: usize = std::env::var("RECLOOP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let tmp = tempfile::tempdir().unwrap();
    let path = std::env::var("RECLOOP_BENCH_DB")
        .unwrap_or_else(|_| tmp.path().join("journal.db").display().to_string());
    let fresh = !std::path::Path::new(&path).exists();
    let j = Journal::open(&path).unwrap();
    if fresh {
        let t = Instant::now();
        build(&j, experiments);
        println!(
            "built a journal of {} events in {:.1} s at {path}",
            j.event_count().unwrap(),
            t.elapsed().as_secs_f64()
        );
    }
    let total = j
        .experiments_page(&ExperimentQuery {
            limit: Some(1),
            ..ExperimentQuery::default()
        })
        .unwrap()
        .total;
    let kept = j
        .experiments_page(&ExperimentQuery {
            decision: Some(recloop_core::Decision::Keep),
            limit: Some(1),
            newest_first: true,
            ..ExperimentQuery::default()
        })
        .unwrap()
        .items
        .pop()
        .map(|e| e.proposal_id)
        .unwrap_or_else(|| "bench-a-p3".into());
    println!(
        "journal: {} events, {total} experiments; load average {}",
        j.event_count().unwrap(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    let source = Source {
        journal: j,
        manifest: None,
    };
    let config = ServeConfig::new(
        source,
        "127.0.0.1:0".parse().unwrap(),
        Some("bench-token-0123456789".into()),
    )
    .unwrap();
    let app = recloop_server::router(config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pages = [
        "/".to_string(),
        "/runs/bench-a".into(),
        "/experiments".into(),
        "/experiments?offset=5000".into(),
        format!("/experiments/{kept}"),
        "/knowledge".into(),
        "/knowledge?q=diversity&stage=rerank".into(),
        "/harness".into(),
        "/approvals".into(),
        "/api/v1/runs".into(),
        "/api/v1/experiments?limit=100".into(),
        format!("/api/v1/experiments/{kept}"),
    ];
    println!("median of {reps} (min, max) per page:");
    let mut worst = Duration::ZERO;
    for page in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..reps {
            let app = app.clone();
            let t = Instant::now();
            let resp = rt.block_on(async {
                let resp = app
                    .oneshot(Request::get(page.as_str()).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, body.len())
            });
            times.push(t.elapsed());
            assert!(resp.0.is_success(), "{page}: {}", resp.0);
            bytes = resp.1;
        }
        let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        let m = median(times);
        worst = worst.max(m);
        println!(
            "  {page:45} {:8.1} ms  ({:.1}, {:.1})  {} KB",
            m.as_secs_f64() * 1e3,
            lo.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3,
            bytes / 1024
        );
    }
    println!(
        "slowest median {:.1} ms (target: under 200 ms)",
        worst.as_secs_f64() * 1e3
    );
}
