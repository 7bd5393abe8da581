//! `recloop run`, `recloop brainstorm`, `recloop develop ID`, `recloop evaluate ID`.

use recloop_agents::orchestrator::{RunOptions, RunSummary};
use recloop_agents::stages;
use std::path::PathBuf;

/// Arguments of `recloop run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Workspace directory (holds `recloop.toml`).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Iterations to run.
    #[arg(long)]
    pub iterations: Option<u32>,
    /// Candidates in flight at once.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Spending limit in US dollars for language-model calls.
    #[arg(long)]
    pub budget_usd: Option<f64>,
    /// Wait for a person's approval when a guardrail crosses its attention threshold.
    #[arg(long)]
    pub approve: bool,
    /// Seed (default: `[run] seed` of the manifest).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Brain: `auto` (LLM when `[llm]` is configured, else built-in), `builtin` or `random`.
    #[arg(long, default_value = "auto")]
    pub brain: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of a single stage.
#[derive(clap::Args)]
pub struct StageArgs {
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Proposal id (develop, evaluate; not used by brainstorm).
    pub id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Build the run options from the arguments.
pub fn options(args: &RunArgs, progress: bool) -> anyhow::Result<RunOptions> {
    let brain = stages::brain_for(&args.workspace, &args.brain)?;
    let online = stages::online_for(&args.workspace)?;
    Ok(RunOptions {
        iterations: args.iterations,
        workers: args.workers,
        budget_usd: args.budget_usd,
        approve: args.approve,
        seed: args.seed,
        progress,
        brain: Some(brain),
        online,
        evaluator: None,
        stop_after_steps: None,
    })
}

/// Print a summary.
pub fn print_summary(s: &RunSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        println!("{s}");
    }
    Ok(())
}

/// Run the loop.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let opts = options(&args, !args.json)?;
    let summary = recloop_agents::orchestrator::run(&args.workspace, &opts)?;
    print_summary(&summary, args.json)
}

/// Run Brainstorm only.
pub fn brainstorm(args: StageArgs) -> anyhow::Result<()> {
    let proposals = stages::brainstorm(&args.workspace)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&proposals)?);
    } else {
        for p in proposals {
            println!("{}  S={:.3}  [{:?}]  {}", p.id, p.score, p.kind, p.title);
        }
    }
    Ok(())
}

/// Run Develop only.
pub fn develop(args: StageArgs) -> anyhow::Result<()> {
    let id = args
        .id
        .ok_or_else(|| anyhow::anyhow!("give the proposal id: recloop develop ID"))?;
    let r = stages::develop(&args.workspace, &id)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// Run Evaluate only.
pub fn evaluate(args: StageArgs) -> anyhow::Result<()> {
    let id = args
        .id
        .ok_or_else(|| anyhow::anyhow!("give the proposal id: recloop evaluate ID"))?;
    let v = stages::evaluate(&args.workspace, &id)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
