//! `cargo run --release -p recloop-logs --example scan_dir -- DIR [METRIC] [THREADS]`: aggregate
//! one mean metric of a log directory and print the per-arm statistics and the time taken
//! (a quick way to profile the scan without building the whole CLI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_logs::{AggregateOptions, LogReader, MetricDef, aggregate, with_threads};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("DIR");
    let metric = args.get(2).map_or("click", String::as_str);
    let threads = args.get(3).and_then(|t| t.parse().ok());
    let t = std::time::Instant::now();
    let agg = with_threads(threads, || {
        aggregate(
            &LogReader::open(dir).unwrap(),
            AggregateOptions {
                metrics: vec![MetricDef::mean(metric)],
                ..Default::default()
            },
        )
        .unwrap()
    })
    .unwrap();
    for m in &agg.metrics {
        let s = &m.summary;
        println!(
            "{} {} n={} sum={:?} sumsq={:?}",
            m.arm, m.metric, s.n, s.sum, s.sum_squares
        );
    }
    println!(
        "{} events in {:.3} s",
        agg.events_read,
        t.elapsed().as_secs_f64()
    );
}
