//! `recloop rec ...`: evaluate a workspace's pipeline, benchmark the built-in models.

use anyhow::Context;
use clap::Subcommand;
use recloop_rec::pipeline::{EvalSplit, evaluate_workspace};
use std::path::PathBuf;

/// Subcommands of `recloop rec`.
#[derive(Subcommand)]
pub enum Command {
    /// Train what `pipeline.toml` says on the train split and evaluate it with full ranking.
    Eval {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// `validation` or `holdout`.
        #[arg(long, default_value = "validation")]
        split: String,
        /// Print one JSON object of metrics (the default output is `name value` lines).
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
            let split: EvalSplit = split.parse()?;
            let metrics = evaluate_workspace(&workspace, split)
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
    }
}
