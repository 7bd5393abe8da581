//! `recloop bench workers`: throughput and journal load of several workers on one PostgreSQL
//! journal. `recloop bench loops`: the single loop against the dual loop at the same simulated
//! duration.

use anyhow::Context;
use recloop_agents::loops_bench::{LoopsBench, LoopsSample, bench_loops};
use recloop_agents::workers_bench::{WorkersBench, WorkersSample, bench_workers, median};
use std::path::PathBuf;

/// `recloop bench`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the MovieLens loop with 1, 2 and 4 worker processes on one PostgreSQL journal and
    /// print candidates per hour and the journal's write load (medians over the repetitions).
    Workers(WorkersArgs),
    /// Run the MovieLens example with the single loop and with the dual loop for the same
    /// simulated days on the simulator, per seed, and print online experiments, KEEPs per
    /// experiment and per simulated week, lift and guardrail breaches (means over the seeds).
    Loops(LoopsArgs),
}

/// Arguments of `recloop bench loops`.
#[derive(clap::Args)]
pub struct LoopsArgs {
    /// Seeds; each runs both loops.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Simulated days each run may use online.
    #[arg(long, default_value_t = 84)]
    pub days: u32,
    /// Upper bound on iterations per run.
    #[arg(long, default_value_t = 40)]
    pub max_iterations: u32,
    /// The dual loop's offline trials per iteration.
    #[arg(long, default_value_t = 8)]
    pub fast_trials: u32,
    /// The dual loop's online slots.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    /// The ramp of both loops (its last step times 2 × slots must fit in one layer).
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.05,0.25")]
    pub ramp: Vec<f64>,
    /// Dataset of the MovieLens example (`ml-100k`, `ml-1m`, `synthetic`).
    #[arg(long, default_value = "ml-100k")]
    pub dataset: String,
    /// Directory for the workspaces (default: a new temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print every sample as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recloop bench workers`.
#[derive(clap::Args)]
pub struct WorkersArgs {
    /// PostgreSQL URL (default `$RECLOOP_TEST_POSTGRES_URL`); each run uses a fresh schema.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Worker counts to compare.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<u32>,
    /// Repetitions per worker count.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Iterations per run.
    #[arg(long, default_value_t = 3)]
    pub iterations: u32,
    /// Candidates per iteration (`[run] batch_size`).
    #[arg(long, default_value_t = 4)]
    pub batch: u32,
    /// Dataset of the MovieLens example (`ml-100k`, `ml-1m`, `synthetic`).
    #[arg(long, default_value = "ml-100k")]
    pub dataset: String,
    /// Directory for the workspaces (default: a new temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print every sample and the medians as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a `recloop bench` command.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Workers(a) => workers(a),
        Command::Loops(a) => loops(a),
    }
}

fn loops(a: LoopsArgs) -> anyhow::Result<()> {
    let scratch = a.dir.is_none();
    let dir = a.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("recloop-bench-loops-{}", std::process::id()))
    });
    let b = LoopsBench {
        binary: std::env::current_exe().context("locating the recloop binary")?,
        dataset: a.dataset.clone(),
        seeds: a.seeds.clone(),
        days: a.days,
        max_iterations: a.max_iterations,
        fast_trials: a.fast_trials,
        slots: a.slots,
        ramp: a.ramp.clone(),
        dir,
    };
    let json = a.json;
    if !json {
        println!(
            "{:>6} {:>4} {:>5} {:>7} {:>6} {:>5} {:>5} {:>9} {:>9} {:>15} {:>9} {:>8} {:>6} {:>7}",
            "mode",
            "seed",
            "iters",
            "decided",
            "online",
            "days",
            "keeps",
            "keeps/exp",
            "keeps/wk",
            "primary",
            "north*",
            "breaches",
            "vetoes",
            "wall_s"
        );
    }
    let samples = bench_loops(&b, &mut |s: &LoopsSample| {
        if !json {
            println!(
                "{:>6} {:>4} {:>5} {:>7} {:>6} {:>5} {:>5} {:>9.3} {:>9.3} {:>6.4}→{:>6.4} {:>+9.4} {:>8} {:>6} {:>7.1}",
                s.mode,
                s.seed,
                s.iterations,
                s.decided,
                s.online_experiments,
                s.online_days,
                s.keeps,
                s.keeps_per_experiment,
                s.keeps_per_week,
                s.start,
                s.end,
                s.north_star,
                s.breaches,
                s.vetoes,
                s.wall_s
            );
        }
    });
    if scratch {
        let _ = std::fs::remove_dir_all(&b.dir);
    }
    let samples = samples?;
    if json {
        println!("{}", serde_json::to_string_pretty(&samples)?);
        return Ok(());
    }
    println!(
        "means over seeds {:?}, {} simulated days each, {}:",
        b.seeds, b.days, b.dataset
    );
    for mode in ["single", "dual"] {
        let mine: Vec<&LoopsSample> = samples.iter().filter(|s| s.mode == mode).collect();
        let n = mine.len().max(1) as f64;
        let mean = |f: fn(&LoopsSample) -> f64| mine.iter().map(|s| f(s)).sum::<f64>() / n;
        println!(
            "  {mode:>6}: {:.1} online experiments, {:.2} KEEPs ({:.3} per experiment, {:.3} per simulated week), primary lift {:+.4}, north star {:+.4}, {:.0} breaches, {:.1} vetoes",
            mean(|s| f64::from(s.online_experiments)),
            mean(|s| f64::from(s.keeps)),
            mean(|s| s.keeps_per_experiment),
            mean(|s| s.keeps_per_week),
            mean(|s| s.end - s.start),
            mean(|s| s.north_star),
            mean(|s| f64::from(s.breaches)),
            mean(|s| f64::from(s.vetoes)),
        );
    }
    Ok(())
}

fn workers(a: WorkersArgs) -> anyhow::Result<()> {
    let postgres = match a.postgres {
        Some(u) => u,
        None => std::env::var("RECLOOP_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .context("give --postgres URL (or set RECLOOP_TEST_POSTGRES_URL)")?,
    };
    let scratch = a.dir.is_none();
    let dir = a.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("recloop-bench-workers-{}", std::process::id()))
    });
    let b = WorkersBench {
        binary: std::env::current_exe().context("locating the recloop binary")?,
        postgres,
        workers: a.workers.clone(),
        repeat: a.repeat.max(1),
        iterations: a.iterations,
        batch: a.batch,
        dataset: a.dataset.clone(),
        dir,
    };
    if !a.json {
        println!(
            "{:>7} {:>4} {:>8} {:>10} {:>10} {:>7} {:>9} {:>8} {:>10} {:>9}",
            "workers",
            "rep",
            "wall_s",
            "candidates",
            "cand/hour",
            "events",
            "events/s",
            "rows",
            "lease_stmt",
            "lease/s"
        );
    }
    let json = a.json;
    let samples = bench_workers(&b, &mut |s: &WorkersSample| {
        if !json {
            println!(
                "{:>7} {:>4} {:>8.1} {:>10} {:>10.0} {:>7} {:>9.1} {:>8} {:>10} {:>9.2}",
                s.workers,
                s.repetition,
                s.wall_s,
                s.candidates,
                s.candidates_per_hour,
                s.events,
                s.events_per_s,
                s.rows_written,
                s.lease_statements,
                s.lease_statements_per_s
            );
        }
    });
    if scratch {
        let _ = std::fs::remove_dir_all(&b.dir);
    }
    let samples = samples?;
    let mut medians = Vec::new();
    for &n in &a.workers {
        let of = |f: fn(&WorkersSample) -> f64| {
            median(samples.iter().filter(|s| s.workers == n).map(f).collect())
        };
        medians.push(serde_json::json!({
            "workers": n,
            "candidates_per_hour": of(|s| s.candidates_per_hour),
            "wall_s": of(|s| s.wall_s),
            "candidates": of(|s| s.candidates as f64),
            "events": of(|s| s.events as f64),
            "events_per_s": of(|s| s.events_per_s),
            "rows_written": of(|s| s.rows_written as f64),
            "lease_statements": of(|s| s.lease_statements as f64),
            "lease_statements_per_s": of(|s| s.lease_statements_per_s),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "samples": samples, "medians": medians,
            }))?
        );
    } else {
        println!(
            "medians over {} repetition(s), {} iterations × {} candidates, {}:",
            b.repeat, b.iterations, b.batch, b.dataset
        );
        for m in &medians {
            println!(
                "  {} worker(s): {:.0} candidates/hour, {:.1} events/s, {:.0} rows, {:.2} lease statements/s",
                m["workers"],
                m["candidates_per_hour"].as_f64().unwrap_or(f64::NAN),
                m["events_per_s"].as_f64().unwrap_or(f64::NAN),
                m["rows_written"].as_f64().unwrap_or(f64::NAN),
                m["lease_statements_per_s"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
