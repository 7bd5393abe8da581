//! `recloop rec ...`: evaluate a workspace's pipeline, benchmark the built-in models.

use crate::choices::{ProtocolArg, RatingsDatasetArg, SplitArg};
use anyhow::Context;
use clap::Subcommand;
use recloop_rec::pipeline::evaluate_workspace;
use std::path::PathBuf;

/// Subcommands of `recloop rec`.
#[derive(Subcommand)]
pub enum Command {
    /// Train what `pipeline.toml` says on the train split and evaluate it with full ranking.
    Eval {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Which split to score.
        #[arg(long, value_enum, default_value_t = SplitArg::Validation)]
        split: SplitArg,
        /// Print one JSON object of metrics (the default output is `name value` lines).
        #[arg(long)]
        json: bool,
    },
    /// Dry run: train and score `pipeline.toml` (and its script) end to end on a small generated
    /// sample; prints one JSON object (the `check` gate of the MovieLens example).
    Check {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Fit and evaluate every built-in model with the anchors' hyper-parameters on one dataset
    /// and protocol; report median fit and evaluation seconds and the metrics per model.
    Bench {
        /// Dataset (fetched if absent).
        #[arg(long, value_enum, default_value_t = RatingsDatasetArg::Ml1m)]
        dataset: RatingsDatasetArg,
        /// Splitting protocol.
        #[arg(long, value_enum, default_value_t = ProtocolArg::A)]
        protocol: ProtocolArg,
        /// Repetitions per model (medians are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seed of the split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only these models (comma-separated: mostpop,itemknn,ease,ials,bpr).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Print one JSON object keyed by model name (the default output is a table).
        #[arg(long)]
        json: bool,
    },
}

/// Execute a `recloop rec` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Eval {
            workspace,
            split,
            json,
        } => {
            let metrics = evaluate_workspace(&workspace, split.into())
                .with_context(|| format!("evaluating workspace {}", workspace.display()))?;
            if json {
                println!("{}", serde_json::to_string(&metrics)?);
            } else {
                for (k, v) in &metrics {
                    println!("{k:<20} {v:.6}");
                }
            }
            Ok(())
        }
        Command::Check { workspace } => {
            let metrics = recloop_rec::pipeline::dry_run_workspace(&workspace)
                .with_context(|| format!("dry run of workspace {}", workspace.display()))?;
            let (users, items) = recloop_rec::pipeline::DRY_RUN_SIZE;
            let mut out = serde_json::Map::new();
            out.insert("dry_run_users".into(), users.into());
            out.insert("dry_run_items".into(), items.into());
            for (k, v) in metrics {
                out.insert(format!("dry_run_{k}"), serde_json::json!(v));
            }
            println!("{}", serde_json::Value::Object(out));
            Ok(())
        }
        Command::Bench {
            dataset,
            protocol,
            runs,
            seed,
            models,
            json,
        } => {
            let opts = recloop_rec::bench::BenchOptions {
                dataset: dataset.into(),
                protocol: protocol.into(),
                runs,
                seed,
                models,
            };
            let report = recloop_rec::bench::run(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_bench_table(&report);
            }
            Ok(())
        }
    }
}

/// One line per model: median fit and evaluation seconds and the headline metrics.
fn print_bench_table(report: &serde_json::Value) {
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "model", "fit_s", "eval_s", "ndcg@10", "recall@20", "hr@10"
    );
    if let Some(models) = report.as_object() {
        for (name, m) in models {
            let get = |k: &str| m.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            println!(
                "{:<10} {:>9.3} {:>9.3} {:>9.4} {:>10.4} {:>9.4}",
                name,
                get("fit_s"),
                get("eval_s"),
                get("ndcg@10"),
                get("recall@20"),
                get("hr@10")
            );
        }
    }
}
