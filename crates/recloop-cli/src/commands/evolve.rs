//! `recloop evolve`: improve one agent's harness by SGPO rounds (logic in `recloop_agents::evolve`).

use recloop_agents::evolve::{Evidence, EvolveOptions, evolve_workspace};
use std::path::PathBuf;

/// Arguments of `recloop evolve`.
#[derive(clap::Args)]
pub struct Args {
    /// Workspace directory (holds `recloop.toml`).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Agent whose harness evolves.
    #[arg(long, default_value = "develop", value_parser = ["develop", "brainstorm"])]
    pub agent: String,
    /// Rounds to run after those already in the journal.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Replays per task and harness (at least 3).
    #[arg(long, default_value_t = 3)]
    pub replays: u32,
    /// Minimum mean gain (0–5 rubric scale) for an admission.
    #[arg(long, default_value_t = 0.05)]
    pub epsilon: f64,
    /// Replay tasks sampled from the journal.
    #[arg(long, default_value_t = 12)]
    pub tasks: usize,
    /// Base seed of the replays.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens one round may spend; candidates beyond it are archived unreplayed.
    #[arg(long)]
    pub max_tokens_per_round: Option<u64>,
    /// Replay tasks from the agent's trajectories (SGPO-I) or, for develop, from merged
    /// changes: the journal's KEEPs and the filtered git history (SGPO-II).
    #[arg(long = "from", default_value = "trajectories", value_parser = ["trajectories", "history"])]
    pub evidence: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the rounds and print what happened.
pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = EvolveOptions {
        agent: args.agent,
        rounds: args.rounds,
        replays: args.replays,
        epsilon: args.epsilon,
        max_tasks: args.tasks,
        seed: args.seed,
        max_tokens_per_round: args.max_tokens_per_round,
        trigger: None,
        evidence: if args.evidence == "history" {
            Evidence::History
        } else {
            Evidence::Trajectories
        },
    };
    let summary = evolve_workspace(&args.workspace, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if summary.rounds_before > 0 {
        println!(
            "{} round(s) of {} already in the journal; continuing",
            summary.rounds_before, opts.agent
        );
    }
    for r in &summary.rounds {
        println!("{r}");
    }
    Ok(())
}
