//! `recloop demo`: the main job on the embedded defaults — create the MovieLens example workspace
//! if absent (fetching the data as needed), simulate two weeks of production logs for the
//! reward persona if there are none, run the loop for 12 iterations with the built-in brain,
//! and print the summary.

/// Arguments of `recloop demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to create the example workspace.
    #[arg(long, default_value = "recloop-demo")]
    pub dir: std::path::PathBuf,
    /// Iterations of the loop.
    #[arg(long, default_value_t = 12)]
    pub iterations: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask the person at this terminal when a decision needs one (by default the demo runs
    /// unattended: such decisions are declined by policy, recorded as "no person was asked").
    #[arg(long)]
    pub ask: bool,
    /// When nobody answers an approval: `reject` declines it (the demo's default), `wait` stops
    /// the run at it (`recloop approve ID`, then `recloop run` continues).
    #[arg(long, value_enum, default_value_t = super::approvals::UnattendedArg::Reject)]
    pub unattended: super::approvals::UnattendedArg,
}

/// Run the main job.
pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let started = std::time::Instant::now();
    let created = recloop_agents::stages::ensure_example(&args.dir)?;
    if created {
        eprintln!(
            "created the MovieLens example workspace in {}",
            args.dir.display()
        );
    }
    // the reward persona reads production logs: two simulated weeks of them, once
    let manifest = recloop_core::Manifest::load(&args.dir)?;
    if manifest.online.platform == "simulator"
        && let Some(logs) = manifest.online.logs.as_deref()
        && !logs.starts_with("postgres")
        && !args.dir.join(logs).exists()
    {
        let w = super::sim::write_production_logs(&args.dir, None, 2000, 14, 1)?;
        eprintln!(
            "simulated two weeks of production traffic (2,000 users): {} exposures and {} events in {} (for run_sql_query)",
            w.exposures, w.events, w.place
        );
    }
    let opts = recloop_agents::orchestrator::RunOptions {
        iterations: Some(args.iterations),
        progress: !args.json,
        brain: Some(recloop_agents::stages::brain_for(&args.dir, "builtin")?),
        approvals: recloop_agents::approvals::Approvals {
            prompter: if args.ask {
                super::approvals::TerminalPrompter::if_interactive()
            } else {
                None
            },
            unattended: args.unattended.into(),
        },
        ..Default::default()
    };
    let summary = recloop_agents::orchestrator::run(&args.dir, &opts)?;
    let status = super::run::print_summary(&summary, args.json, &args.dir)?;
    if !args.json {
        println!(
            "wall time {:.0} s; every experiment and its lineage: recloop journal list --workspace {}",
            started.elapsed().as_secs_f64(),
            args.dir.display()
        );
    }
    Ok(status)
}
