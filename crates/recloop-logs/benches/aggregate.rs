//! Aggregation throughput on generated logs: event rows per second for one mean metric,
//! (a) over in-memory record batches (the aggregation kernel) and (b) end to end from Parquet
//! and (c) from CSV files. Prints the median of several runs.
//!
//! `cargo bench -p recloop-logs` (env `RECLOOP_BENCH_EVENTS`, default 10,000,000 events).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use recloop_logs::synthetic::SyntheticLogs;
use recloop_logs::{
    AggregateOptions, Aggregator, LogFormat, LogReader, LogWriter, MetricDef, aggregate,
};

/// CPU seconds (user + system) of this process, from /proc (Linux); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Time `f`, returning (wall seconds, CPU seconds).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let c0 = cpu_seconds().unwrap_or(0.0);
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds().unwrap_or(0.0) - c0;
    (out, wall, if cpu > 0.0 { cpu } else { wall })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn options() -> AggregateOptions {
    AggregateOptions {
        metrics: vec![MetricDef::mean("click")],
        ..Default::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::var("RECLOOP_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let units: u64 = std::env::var("RECLOOP_BENCH_UNITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut spec = SyntheticLogs::new(units, events, 42);
    spec.metrics = vec!["click".into()];
    println!("generating {units} units, {events} events (one metric) ...");
    let exposures = spec.exposure_batches()?;
    let event_batches = spec.event_batches()?;

    // (a) in-memory kernel.
    let (mut wall_rates, mut cpu_rates) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let (out, wall, cpu) = timed(|| -> Result<_, recloop_logs::LogsError> {
            let mut agg = Aggregator::new(options())?;
            for b in &exposures {
                agg.add_exposures(b, "mem")?;
            }
            for b in &event_batches {
                agg.add_events(b, "mem")?;
            }
            Ok(agg.finish())
        });
        assert_eq!(out?.events_read, events);
        wall_rates.push(events as f64 / wall);
        cpu_rates.push(events as f64 / cpu);
    }
    println!(
        "in-memory batches  : median {:>6.1} M event rows/s per CPU-second, {:>6.1} M/s wall (7 runs)",
        median(cpu_rates) / 1e6,
        median(wall_rates) / 1e6,
    );
    drop(event_batches);

    for (format, runs) in [(LogFormat::Parquet, 5), (LogFormat::Csv, 3)] {
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        let mut w = LogWriter::create(dir.path(), format)?;
        spec.write(&mut w)?;
        w.finish()?;
        let write_secs = t.elapsed().as_secs_f64();
        let size =
            std::fs::metadata(dir.path().join(format!("events.{}", format.extension())))?.len();
        let (mut wall_rates, mut cpu_rates) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (out, wall, cpu) = timed(|| -> Result<_, recloop_logs::LogsError> {
                aggregate(&LogReader::open(dir.path())?, options())
            });
            assert_eq!(out?.events_read, events);
            wall_rates.push(events as f64 / wall);
            cpu_rates.push(events as f64 / cpu);
        }
        println!(
            "{:<19}: median {:>6.1} M event rows/s per CPU-second, {:>6.1} M/s wall ({runs} runs; events file {:.0} MB; written at {:.1} M rows/s)",
            format!("{format:?} end to end"),
            median(cpu_rates) / 1e6,
            median(wall_rates) / 1e6,
            size as f64 / 1e6,
            (events + units) as f64 / write_secs / 1e6
        );
    }
    Ok(())
}
