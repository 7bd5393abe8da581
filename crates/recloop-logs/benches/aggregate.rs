//! Aggregation throughput on generated logs: event rows per second for one mean metric,
//! (a) over in-memory record batches (the aggregation kernel), (b) end to end from the same log
//! written in each file shape other tools produce (`recloop_logs::shapes`) at 1 thread and at
//! all cores, and (c) streamed from the generator without files. Prints medians of several
//! runs and the peak resident memory of each measurement.
//!
//! `cargo bench -p recloop-logs` (env `RECLOOP_BENCH_EVENTS`, default 10,000,000 events;
//! `RECLOOP_BENCH_UNITS`, default 100,000; `RECLOOP_BENCH_STREAM`, events of the streamed run,
//! default = events, e.g. `1e9`; `RECLOOP_BENCH_SHAPES`, comma-separated shape names).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use recloop_logs::shapes::{Shape, write_shape};
use recloop_logs::synthetic::SyntheticLogs;
use recloop_logs::{AggregateOptions, Aggregator, LogReader, MetricDef, aggregate, with_threads};

/// CPU seconds (user + system) of this process, from /proc (Linux); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Reset the kernel's peak-RSS mark of this process (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MB (Linux).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Time `f`, returning (value, wall seconds, CPU seconds).
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

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(default, |x| x as u64)
}

/// Runs `f` `runs` times; prints median M rows/s (wall and per CPU-second) and peak memory.
fn report(label: &str, rows: u64, runs: usize, f: impl Fn() -> u64) {
    let (mut wall_rates, mut cpu_rates, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        reset_peak();
        let (read, wall, cpu) = timed(&f);
        assert_eq!(read, rows, "{label}");
        wall_rates.push(rows as f64 / wall);
        cpu_rates.push(rows as f64 / cpu);
        peaks.push(peak_mb());
    }
    println!(
        "{label:<34} {:>7.1} M rows/s wall {:>7.1} M rows/s/CPU-s   peak {:>6.0} MB  ({runs} runs)",
        median(wall_rates) / 1e6,
        median(cpu_rates) / 1e6,
        median(peaks),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = env_count("RECLOOP_BENCH_EVENTS", 10_000_000);
    let units = env_count("RECLOOP_BENCH_UNITS", 100_000);
    let stream = env_count("RECLOOP_BENCH_STREAM", events);
    let only: Option<Vec<String>> = std::env::var("RECLOOP_BENCH_SHAPES")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let cores = rayon::current_num_threads();
    let mut spec = SyntheticLogs::new(units, events, 42);
    spec.metrics = vec!["click".into()];
    println!("{units} units, {events} events (one metric), {cores} cores");

    // (a) in-memory kernel, one thread.
    {
        let exposures = spec.exposure_batches()?;
        let batches = spec.event_batches()?;
        report("in-memory batches, 1 thread", events, 7, || {
            let mut agg = Aggregator::new(options()).unwrap();
            for b in &exposures {
                agg.add_exposures(b, "mem").unwrap();
            }
            for b in &batches {
                agg.add_events(b, "mem").unwrap();
            }
            agg.finish().events_read
        });
    }

    // (b) files in each shape.
    for shape in Shape::ALL {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == shape.name()))
        {
            continue;
        }
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        write_shape(&spec, dir.path(), shape)?;
        let write = t.elapsed().as_secs_f64();
        let bytes: u64 = LogReader::open(dir.path())?
            .event_files()
            .iter()
            .map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len()))
            .sum();
        println!(
            "{} (events {:.0} MB, written in {write:.1} s)",
            shape.name(),
            bytes as f64 / 1e6
        );
        let runs = if shape == Shape::Csv { 3 } else { 5 };
        for threads in [1, cores] {
            let path = dir.path().to_path_buf();
            report(&format!("  {threads} thread(s)"), events, runs, || {
                with_threads(Some(threads), || {
                    aggregate(&LogReader::open(&path).unwrap(), options()).unwrap()
                })
                .unwrap()
                .events_read
            });
            if cores == 1 {
                break;
            }
        }
    }

    // (c) streamed from the generator, all cores: memory proportional to units.
    let mut big = SyntheticLogs::new(units, stream, 42);
    big.metrics = vec!["click".into()];
    report(
        &format!("streamed generator, {stream:.0e} events"),
        stream,
        if stream > 100_000_000 { 1 } else { 3 },
        || big.aggregate(options()).unwrap().events_read,
    );
    Ok(())
}
