//! `recloop stats ...`: A/B statistics and off-policy evaluation, JSON in and JSON out.
//!
//! `recloop stats run` reads one request (or an array) and prints the results in the same order
//! (see `recloop_stats::request` for the kinds). `recloop stats aggregate DIR` turns an
//! exposure/event log directory into per-arm sufficient statistics.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use recloop_logs::{AggregateOptions, LogReader, MetricDef, aggregate};

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
        /// Directory with exposures.{parquet,csv} and events.{parquet,csv}.
        dir: PathBuf,
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
    },
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
            let reader = LogReader::open(&dir)?;
            let agg = aggregate(
                &reader,
                AggregateOptions {
                    metrics,
                    experiment,
                    max_day,
                    cuped,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&agg)?);
            Ok(())
        }
    }
}
