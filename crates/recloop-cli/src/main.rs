//! `recloop`: hand the recommender research loop to agents.
//!
//! This binary parses arguments and prints results; every behaviour lives in a library crate.
//! Each command group has its own module under `commands/`.

mod choices;
mod commands;

use clap::{Parser, Subcommand};

/// recloop: an agent-driven research loop for recommender systems.
#[derive(Parser)]
#[command(name = "recloop", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: run the loop on the MovieLens example with the built-in brain.
    Demo(commands::demo::Args),
    /// Create a workspace from a built-in example.
    Init(commands::init::Args),
    /// Obtain and locate datasets.
    #[command(subcommand)]
    Data(commands::data::Command),
    /// The built-in recommender: evaluate a pipeline, benchmark models.
    #[command(subcommand)]
    Rec(commands::rec::Command),
    /// A/B statistics and off-policy evaluation (JSON in, JSON out).
    #[command(subcommand)]
    Stats(commands::stats::Command),
    /// Inspect, search, export and import the experiment journal.
    #[command(subcommand)]
    Journal(commands::journal::Command),
    /// The simulated online world: A/B and A/A tests.
    #[command(subcommand)]
    Sim(commands::sim::Command),
    /// Language models: fetch a local model, ping a provider, chat.
    #[command(subcommand)]
    Llm(commands::llm::Command),
    /// Run the research loop.
    Run(commands::run::RunArgs),
    /// Benchmarks of the loop's machinery (`workers`: several workers on one PostgreSQL journal).
    #[command(subcommand)]
    Bench(commands::bench::Command),
    /// Run only the Brainstorm stage.
    Brainstorm(commands::run::BrainstormArgs),
    /// Implement one proposal (Develop stage).
    Develop(commands::run::StageArgs),
    /// Evaluate one candidate (Evaluate stage).
    Evaluate(commands::run::StageArgs),
    /// Improve one agent's harness (SGPO): replay its trajectories, diagnose, edit, and admit
    /// an edit only by paired replay.
    Evolve(commands::evolve::Args),
    /// Decisions waiting for a person (pending approvals; `--all` for answered ones too).
    Approvals(commands::approvals::ListArgs),
    /// Approve a pending decision; `recloop run` then continues.
    Approve(commands::approvals::AnswerArgs),
    /// Reject a pending decision (`--why TEXT` required); `recloop run` then continues.
    Reject(commands::approvals::AnswerArgs),
    /// The dashboard and JSON API over the journal (loopback by default; reads only, except
    /// answering approvals, which needs the token).
    Serve(commands::serve::Args),
}

/// Keep freed memory in the process (glibc): the log scans allocate and free megabyte-sized
/// column buffers at a high rate, and glibc's defaults hand each back to the kernel, so every
/// buffer costs fresh zeroed pages (this halved the CPU time of `stats aggregate`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> std::process::ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECLOOP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let unit = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Bench(cmd) => unit(commands::bench::run(cmd)),
        Command::Approvals(args) => unit(commands::approvals::list(args)),
        Command::Approve(args) => unit(commands::approvals::approve(args)),
        Command::Reject(args) => unit(commands::approvals::reject(args)),
        Command::Serve(args) => unit(commands::serve::run(args)),
        Command::Init(args) => unit(commands::init::run(args)),
        Command::Data(cmd) => unit(commands::data::run(cmd)),
        Command::Rec(cmd) => unit(commands::rec::run(cmd)),
        Command::Stats(cmd) => unit(commands::stats::run(cmd)),
        Command::Journal(cmd) => unit(commands::journal::run(cmd)),
        Command::Sim(cmd) => unit(commands::sim::run(cmd)),
        Command::Llm(cmd) => unit(commands::llm::run(cmd)),
        Command::Brainstorm(args) => unit(commands::run::brainstorm(args)),
        Command::Develop(args) => unit(commands::run::develop(args)),
        Command::Evaluate(args) => unit(commands::run::evaluate(args)),
        Command::Evolve(args) => unit(commands::evolve::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
