//! `recloop stats ...`: A/B statistics and off-policy evaluation, JSON in and JSON out.
//!
//! `recloop stats run` reads one request (or an array) and prints the results in the same order
//! (see `recloop_stats::request` for the kinds). `recloop stats aggregate DIR` turns an
//! exposure/event log directory into per-arm sufficient statistics.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use recloop_logs::synthetic::SyntheticLogs;
use recloop_logs::{AggregateOptions, LogReader, MetricDef, aggregate, with_threads};

/// Subcommands of `recloop stats`.
#[derive(Subcommand)]
pub enum Command {
    /// Read a JSON request (or an array of them) and print the results in order.
    Run {
        /// Read the requests from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Pretty-print the output.
        #[arg(long)]
        pretty: bool,
    },
    /// Aggregate exposure/event logs (Parquet or CSV) into per-arm sufficient statistics.
    Aggregate {
        /// Directory with exposures.{parquet,csv} and events.{parquet,csv}, or directories
        /// exposures/ and events/ of such files (hive-style partitions such as day=3/ allowed).
        #[arg(required_unless_present = "synthetic_events")]
        dir: Option<PathBuf>,
        /// Mean metric over the named event (repeatable).
        #[arg(long = "mean")]
        means: Vec<String>,
        /// Proportion metric over the named event (repeatable).
        #[arg(long = "proportion")]
        proportions: Vec<String>,
        /// Ratio metric as NAME=NUMERATOR/DENOMINATOR (repeatable).
        #[arg(long = "ratio")]
        ratios: Vec<String>,
        /// Only this experiment.
        #[arg(long)]
        experiment: Option<String>,
        /// Only rows with day ≤ this value (a cumulative look).
        #[arg(long)]
        max_day: Option<u32>,
        /// Also collect the pre-exposure covariate for CUPED.
        #[arg(long)]
        cuped: bool,
        /// Threads for the scan (default: all cores); results are identical for any count.
        #[arg(long)]
        threads: Option<usize>,
        /// Instead of DIR, aggregate a generated log of this many events (e.g. 1e9), streamed
        /// from the generator without writing or holding it (experiment `exp`, arms
        /// control/treatment, events click and revenue).
        #[arg(long, value_parser = parse_count, conflicts_with = "dir")]
        synthetic_events: Option<u64>,
        /// Units of the generated log.
        #[arg(long, value_parser = parse_count, default_value = "100000")]
        synthetic_units: u64,
        /// Seed of the generated log.
        #[arg(long, default_value_t = 42)]
        synthetic_seed: u64,
    },
}

/// A count written as an integer or in scientific notation (`1e9`).
fn parse_count(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 => Ok(x as u64),
        _ => Err(format!("{s:?} is not a non-negative whole number")),
    }
}

/// Execute a `recloop stats` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run { input, pretty } => {
            let text = match &input {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading stdin")?;
                    s
                }
            };
            let source = input
                .as_ref()
                .map_or("stdin".to_string(), |p| p.display().to_string());
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    let err = serde_json::json!({"error": {"field": "", "message": format!("{source}: invalid JSON at line {} column {}: {e}", e.line(), e.column())}});
                    println!("{err}");
                    anyhow::bail!("{source}: invalid JSON: {e}");
                }
            };
            let out = recloop_stats::run_json(&value, Some(&recloop_online::ObdLoader));
            if pretty {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{out}");
            }
            let failed = match &out {
                serde_json::Value::Array(items) => {
                    items.iter().filter(|v| v.get("error").is_some()).count()
                }
                v => usize::from(v.get("error").is_some()),
            };
            if failed > 0 {
                anyhow::bail!(
                    "{failed} request(s) were invalid; see the error objects in the output"
                );
            }
            Ok(())
        }
        Command::Aggregate {
            dir,
            means,
            proportions,
            ratios,
            experiment,
            max_day,
            cuped,
            threads,
            synthetic_events,
            synthetic_units,
            synthetic_seed,
        } => {
            let mut metrics: Vec<MetricDef> = means.iter().map(|e| MetricDef::mean(e)).collect();
            metrics.extend(proportions.iter().map(|e| MetricDef::proportion(e)));
            for r in &ratios {
                let (name, rest) = r.split_once('=').with_context(|| {
                    format!("--ratio {r:?}: expected NAME=NUMERATOR/DENOMINATOR")
                })?;
                let (num, den) = rest.split_once('/').with_context(|| {
                    format!("--ratio {r:?}: expected NAME=NUMERATOR/DENOMINATOR")
                })?;
                metrics.push(MetricDef::ratio(name, num, den));
            }
            let options = AggregateOptions {
                metrics,
                experiment,
                max_day,
                cuped,
            };
            let agg = match (synthetic_events, &dir) {
                (Some(events), _) => {
                    let spec = SyntheticLogs::new(synthetic_units, events, synthetic_seed);
                    with_threads(threads, || spec.aggregate(options))??
                }
                (None, Some(dir)) => {
                    let reader = LogReader::open(dir)?;
                    with_threads(threads, || aggregate(&reader, options))??
                }
                (None, None) => anyhow::bail!("name a log directory or --synthetic-events"),
            };
            println!("{}", serde_json::to_string_pretty(&agg)?);
            Ok(())
        }
    }
}
