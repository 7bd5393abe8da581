//! `recloop evolve`: improve one agent's harness by SGPO rounds (logic in `recloop_agents::evolve`).

use recloop_agents::evolve::{Evidence, EvolveOptions, evolve_workspace};
use std::path::PathBuf;

/// Arguments of `recloop evolve`.
#[derive(clap::Args)]
pub struct Args {
    /// Workspace directory (holds `recloop.toml`).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Agent whose harness evolves (`builtin`: the built-in brain's numeric policy).
    #[arg(long, default_value = "develop", value_parser = ["develop", "brainstorm", "builtin"])]
    pub agent: String,
    /// Rounds to run after those already in the journal.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Replays per task and harness (at least 3; default 3). Not for `builtin`.
    #[arg(long)]
    pub replays: Option<u32>,
    /// Minimum mean gain for an admission (0–5 rubric scale; default 0.05), or for `builtin` in
    /// the primary metric's units (default: its `min_effect`).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// `builtin` only: trials per offline search episode (default 10).
    #[arg(long)]
    pub trials: Option<usize>,
    /// `builtin` only: search episodes (seeds) per policy, at least 3 (default 3).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Replay tasks sampled from the journal (default 12). Not for `builtin`.
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Base seed of the replays.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens one round may spend; candidates beyond it are archived unreplayed.
    #[arg(long)]
    pub max_tokens_per_round: Option<u64>,
    /// Replay tasks from the agent's trajectories (SGPO-I, the default) or, for develop, from
    /// merged changes: the journal's KEEPs and the filtered git history (SGPO-II). Not for
    /// `builtin`.
    #[arg(long = "from", value_parser = ["trajectories", "history"])]
    pub evidence: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the rounds and print what happened.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.agent == "builtin" {
        // a flag that would do nothing is refused, not ignored
        for (set, flag) in [
            (args.replays.is_some(), "--replays"),
            (args.tasks.is_some(), "--tasks"),
            (
                args.max_tokens_per_round.is_some(),
                "--max-tokens-per-round",
            ),
            (args.evidence.is_some(), "--from"),
        ] {
            anyhow::ensure!(
                !set,
                "{flag} is for the language-model agents; the built-in brain's policy evolves by replaying offline search episodes (--trials, --episodes)"
            );
        }
        let defaults = recloop_agents::evolve::policy::PolicyOptions::default();
        let opts = recloop_agents::evolve::policy::PolicyOptions {
            rounds: args.rounds,
            trials: args.trials.unwrap_or(defaults.trials),
            episodes: args.episodes.unwrap_or(defaults.episodes),
            epsilon: args.epsilon,
            seed: args.seed,
        };
        let rounds =
            recloop_agents::evolve::policy::evolve_policy_workspace(&args.workspace, &opts)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rounds)?);
        } else {
            for r in &rounds {
                println!("{r}");
            }
        }
        return Ok(());
    }
    anyhow::ensure!(
        args.trials.is_none() && args.episodes.is_none(),
        "--trials and --episodes are for --agent builtin (offline search episodes); {} replays tasks (--replays, --tasks)",
        args.agent
    );
    let opts = EvolveOptions {
        agent: args.agent,
        rounds: args.rounds,
        replays: args.replays.unwrap_or(3),
        epsilon: args.epsilon.unwrap_or(0.05),
        max_tasks: args.tasks.unwrap_or(12),
        seed: args.seed,
        max_tokens_per_round: args.max_tokens_per_round,
        trigger: None,
        evidence: if args.evidence.as_deref() == Some("history") {
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
