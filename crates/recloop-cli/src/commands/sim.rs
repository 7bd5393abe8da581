//! `recloop sim ...`: guarded A/B and A/A tests in the simulated world, scenarios, benchmark.

use crate::choices::WorldArg;
use anyhow::Context;
use clap::{Args, Subcommand};
use recloop_core::Manifest;
use recloop_online::{
    Ack, ExperimentConfig, ExperimentEvent, default_sim_manifest, repeated_runs, resolve_policy,
    run_experiment,
};
use recloop_sim::grounded::{WorkspaceWorld, load_workspace_world, ml1m_world};
use recloop_sim::{Policy, World};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the simulated world comes from.
#[derive(Args, Clone)]
pub struct WorldArgs {
    /// Production workspace: its `recloop.toml`, pipeline and dataset (the world is grounded in it).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// World without a workspace.
    #[arg(long, value_enum, default_value_t = WorldArg::Ml1m)]
    world: WorldArg,
    /// Seed of the ground-truth fit.
    #[arg(long, default_value_t = 1)]
    world_seed: u64,
}

/// Subcommands of `recloop sim`.
#[derive(Subcommand)]
pub enum Command {
    /// A/B test of a candidate against production: full ramp, gates and verdict.
    Run {
        #[command(flatten)]
        world: WorldArgs,
        /// Candidate: a workspace directory or `builtin:NAME`.
        #[arg(long)]
        candidate: String,
        /// Production policy when not the workspace's pipeline (`builtin:NAME`).
        #[arg(long)]
        control: Option<String>,
        /// Maximum days (default: the manifest's `online.max_days`).
        #[arg(long)]
        days: Option<u32>,
        /// Simulated population (default: the manifest's `online.users`).
        #[arg(long)]
        users: Option<usize>,
        /// Seed of assignment and behaviour (default: the manifest's `run.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Ask on the terminal before continuing past an attention escalation.
        #[arg(long)]
        approve: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A/A calibration: production against itself over many seeds.
    Aa {
        #[command(flatten)]
        world: WorldArgs,
        /// Production policy when no workspace is given.
        #[arg(long, default_value = "builtin:relevance")]
        policy: String,
        /// Runs.
        #[arg(long, default_value_t = 100)]
        runs: u32,
        /// Simulated population per run.
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Maximum days per run.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Repeat an A/B test over many seeds: KEEP, rollback and step-reached rates.
    Repeat {
        #[command(flatten)]
        world: WorldArgs,
        /// Candidate: a workspace directory or `builtin:NAME`.
        #[arg(long)]
        candidate: String,
        /// Control when not the workspace's pipeline.
        #[arg(long, default_value = "builtin:relevance")]
        control: String,
        /// Runs.
        #[arg(long, default_value_t = 100)]
        runs: u32,
        /// Simulated population per run.
        #[arg(long, default_value_t = 50_000)]
        users: usize,
        /// Maximum days per run.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run policies side by side on the same users (north stars and proxies).
    Scenarios {
        #[command(flatten)]
        world: WorldArgs,
        /// Policies (`builtin:NAME` or workspace directories), comma-separated.
        #[arg(
            long,
            default_value = "builtin:relevance,builtin:clickbait-boost,builtin:diversity,builtin:most-popular,builtin:random"
        )]
        policies: String,
        /// Users.
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Days.
        #[arg(long, default_value_t = 42)]
        days: u32,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark: a 50/50 A/B test with `--users` per arm for `--days` days, median of `--runs`.
    Bench {
        #[command(flatten)]
        world: WorldArgs,
        /// Users per arm.
        #[arg(long, default_value_t = 200_000)]
        users: usize,
        /// Days.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Repetitions.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// A stand-in A/B platform behind `[online] platform = "external"` (to try it, and for tests).
    #[command(subcommand)]
    Standin(Standin),
    /// Production traffic logs: simulate the workspace's pipeline alone for `--days` days and
    /// write the exposure and event logs where `[online] logs` points (Parquet files in a
    /// directory, or tables `exposures` and `events` in PostgreSQL for a `postgres://` URL,
    /// in the schema its `?schema=NAME` names, else `public`), for `run_sql_query` and the
    /// reward persona.
    Logs {
        /// The workspace (its world, pipeline and `[online] logs`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Directory to write (default: the manifest's `[online] logs`, in the workspace).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulated users.
        #[arg(long, default_value_t = 2000)]
        users: usize,
        /// Simulated days.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Seed of the simulated traffic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Where production logs were written.
pub struct ProductionLogs {
    /// Exposure rows written.
    pub exposures: u64,
    /// Event rows written.
    pub events: u64,
    /// The directory, or the database (password hidden) and schema.
    pub place: String,
}

/// Simulate `days` days of production traffic of workspace `dir` (its own pipeline) for `users`
/// users and write the logs to `out`, or to the manifest's `[online] logs` (a directory, or a
/// PostgreSQL database).
pub fn write_production_logs(
    dir: &std::path::Path,
    out: Option<&std::path::Path>,
    users: usize,
    days: u32,
    seed: u64,
) -> anyhow::Result<ProductionLogs> {
    let l = load(&WorldArgs {
        workspace: Some(dir.to_path_buf()),
        world: WorldArg::Ml1m,
        world_seed: 1,
    })?;
    let target = match out {
        Some(o) => o.to_path_buf(),
        None => {
            let named = l.manifest.online.logs.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: [online] logs names no directory; pass --out or set `logs = \".recloop/logs/production\"` under [online]",
                    dir.join("recloop.toml").display()
                )
            })?;
            if named.starts_with("postgres://") || named.starts_with("postgresql://") {
                let location = recloop_journal::Location::parse(named).with_context(|| {
                    format!("{}: [online] logs", dir.join("recloop.toml").display())
                })?;
                return write_production_logs_to_postgres(&l, &location, users, days, seed);
            }
            dir.join(named)
        }
    };
    let policy = control_policy(&l, None, seed)?;
    let w = recloop_sim::logs::simulate_logs(
        l.world.clone(),
        policy.as_ref(),
        users,
        days,
        seed,
        &target,
        recloop_logs::LogFormat::Parquet,
    )?;
    Ok(ProductionLogs {
        exposures: w.exposures,
        events: w.events,
        place: w.dir.display().to_string(),
    })
}

/// [`write_production_logs`] into the PostgreSQL database `location`: tables `exposures` and
/// `events` in its `?schema=`, else `public`.
fn write_production_logs_to_postgres(
    l: &Loaded,
    location: &recloop_journal::Location,
    users: usize,
    days: u32,
    seed: u64,
) -> anyhow::Result<ProductionLogs> {
    let place = location.display();
    let recloop_journal::Location::Postgres { url, schema } = location else {
        anyhow::bail!("[online] logs {place} is not a postgres:// URL");
    };
    let policy = control_policy(l, None, seed)?;
    let records = recloop_sim::logs::simulate_production(
        l.world.clone(),
        policy.as_ref(),
        users,
        days,
        seed,
    )?;
    let (exposures, events) = recloop_sim::logs::log_rows(&records, "production");
    let schema = schema.as_deref().unwrap_or("public");
    recloop_online::standin::write_logs_to_postgres(url, schema, &exposures, &events)?;
    Ok(ProductionLogs {
        exposures: exposures.len() as u64,
        events: events.len() as u64,
        place: format!("{place} (tables {schema}.exposures, {schema}.events)"),
    })
}

/// The stand-in platform's commands: `start`, `traffic` and `stop` are what `[online.external]`
/// declares (they read `RECLOOP_EXPERIMENT`, `RECLOOP_SHARE`, ... from the environment); `serve`
/// is the platform, simulating the workspace's world and writing its logs.
#[derive(Subcommand)]
pub enum Standin {
    /// Start `RECLOOP_EXPERIMENT` (snapshot of `RECLOOP_CANDIDATE_DIR` and `RECLOOP_CONTROL_DIR`).
    Start {
        /// The stand-in's state directory.
        #[arg(long)]
        state: PathBuf,
    },
    /// Set the traffic share of `RECLOOP_EXPERIMENT` to `RECLOOP_SHARE`.
    Traffic {
        /// The stand-in's state directory.
        #[arg(long)]
        state: PathBuf,
    },
    /// Stop `RECLOOP_EXPERIMENT` with `RECLOOP_OUTCOME`.
    Stop {
        /// The stand-in's state directory.
        #[arg(long)]
        state: PathBuf,
    },
    /// Serve the workspace's simulated world: every `--day-seconds`, one more day of each running
    /// experiment is simulated and its logs written.
    Serve {
        /// The stand-in's state directory.
        #[arg(long)]
        state: PathBuf,
        /// Production workspace (its world, dataset and seed).
        #[arg(long)]
        workspace: PathBuf,
        /// Wall-clock seconds per simulated day.
        #[arg(long, default_value_t = 86_400.0)]
        day_seconds: f64,
        /// Simulated users per experiment (default: the manifest's `online.users`).
        #[arg(long)]
        users: Option<usize>,
        /// Write Parquet logs into this directory.
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Write logs into PostgreSQL tables `exposures` and `events` at this URL.
        #[arg(long)]
        postgres: Option<String>,
        /// The PostgreSQL schema of those tables (created when missing).
        #[arg(long, default_value = "public")]
        postgres_schema: String,
        /// Stop serving after this many seconds (default: until killed).
        #[arg(long)]
        for_seconds: Option<f64>,
    },
}

struct Loaded {
    dir: Option<PathBuf>,
    world: Arc<World>,
    workspace: Option<WorkspaceWorld>,
    manifest: Manifest,
}

fn load(w: &WorldArgs) -> anyhow::Result<Loaded> {
    if let Some(dir) = &w.workspace {
        let manifest = Manifest::load(dir)?;
        let ww = load_workspace_world(dir, w.world_seed)
            .with_context(|| format!("grounding the world in workspace {}", dir.display()))?;
        return Ok(Loaded {
            dir: Some(dir.clone()),
            world: ww.world.clone(),
            workspace: Some(ww),
            manifest,
        });
    }
    let world = match w.world {
        WorldArg::Ml1m => ml1m_world(w.world_seed).context("building the ML-1M world")?,
        WorldArg::Synthetic => World::synthetic(2000, 1500, w.world_seed)?,
    };
    Ok(Loaded {
        dir: None,
        world: Arc::new(world),
        workspace: None,
        manifest: default_sim_manifest()?,
    })
}

/// The production policy: `explicit` if given, else the workspace's own pipeline, else the
/// built-in relevance model.
fn control_policy(
    l: &Loaded,
    explicit: Option<&str>,
    seed: u64,
) -> anyhow::Result<Box<dyn Policy>> {
    let spec = match (explicit, &l.dir) {
        (Some(s), _) => s.to_string(),
        (None, Some(dir)) => dir.display().to_string(),
        (None, None) => "builtin:relevance".to_string(),
    };
    Ok(resolve_policy(&spec, &l.world, l.workspace.as_ref(), seed)?)
}

/// The `--policy`/`--control` argument as an explicit production policy: its default
/// `builtin:relevance` stands for "the workspace's own pipeline" when a workspace is loaded.
fn explicit_control<'a>(l: &Loaded, policy: &'a str) -> Option<&'a str> {
    (l.workspace.is_none() || policy != "builtin:relevance").then_some(policy)
}

fn describe(e: &ExperimentEvent) -> String {
    match e {
        ExperimentEvent::Started {
            id,
            platform,
            ramp,
            primary,
            guardrails,
            max_days,
        } => format!(
            "start {id} on {platform}: ramp {ramp:?}, primary {primary}, guardrails {guardrails:?}, up to {max_days} days"
        ),
        ExperimentEvent::Day { day, share, units } => {
            format!(
                "day {day:>2}: {:>4.1}% traffic, units control {} / treatment {}",
                share * 100.0,
                units[0],
                units[1]
            )
        }
        ExperimentEvent::Hold {
            day,
            srm_p,
            srm_sequential_p,
            ..
        } => {
            format!(
                "day {day}: HOLD, sample ratio mismatch (χ² p {srm_p:.2e}, sequential p {srm_sequential_p:.2e})"
            )
        }
        ExperimentEvent::Escalation {
            day,
            metric,
            relative_harm,
            threshold,
            ..
        } => format!(
            "day {day}: ATTENTION {metric} {:.1}% worse (threshold {:.1}%)",
            relative_harm * 100.0,
            threshold * 100.0
        ),
        ExperimentEvent::Blocked {
            day,
            metric,
            relative_harm,
            threshold,
            ..
        } => format!(
            "day {day}: BLOCKED {metric} {:.1}% worse (hard {:.1}%)",
            relative_harm * 100.0,
            threshold * 100.0
        ),
        ExperimentEvent::RampAdvanced { day, from, to } => {
            format!("day {day}: ramp {:.0}% -> {:.0}%", from * 100.0, to * 100.0)
        }
        ExperimentEvent::Rollback {
            day,
            share,
            metric,
            relative,
            p_value,
            ..
        } => format!(
            "day {day}: ROLLBACK at {:.0}%: {metric} {:+.2}% (p {p_value:.2e})",
            share * 100.0,
            relative * 100.0
        ),
        ExperimentEvent::Verdict { verdict } => {
            format!("verdict {}: {}", verdict.decision, verdict.reason)
        }
    }
}

/// Execute a `recloop sim` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run {
            world,
            candidate,
            control,
            days,
            users,
            seed,
            approve,
            json,
        } => {
            let l = load(&world)?;
            let seed = seed.unwrap_or(l.manifest.run.seed);
            let control = control_policy(&l, control.as_deref(), seed)?;
            let treatment = resolve_policy(&candidate, &l.world, l.workspace.as_ref(), seed)?;
            let users = users.unwrap_or(l.manifest.online.users as usize);
            let mut config = ExperimentConfig::new(l.world.clone(), users, seed);
            config.settings.id = format!("sim-{seed}");
            config.settings.approve = approve;
            config.settings.max_days = days;
            let stdin = std::io::stdin();
            let report = run_experiment(
                &l.manifest,
                control.as_ref(),
                treatment.as_ref(),
                &config,
                &mut |e| {
                    if !json {
                        println!("{}", describe(e));
                    }
                    if approve && matches!(e, ExperimentEvent::Escalation { .. }) {
                        eprint!("approve and continue the ramp? [y/N] ");
                        let _ = std::io::stderr().flush();
                        let mut line = String::new();
                        let _ = stdin.lock().read_line(&mut line);
                        if line.trim().eq_ignore_ascii_case("y") {
                            Ack::Continue
                        } else {
                            Ack::Reject
                        }
                    } else {
                        Ack::Continue
                    }
                },
            )?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
        Command::Aa {
            world,
            policy,
            runs,
            users,
            days,
            seed,
            json,
        } => {
            let l = load(&world)?;
            let explicit = explicit_control(&l, &policy);
            let p = control_policy(&l, explicit, seed)?;
            let mut config = ExperimentConfig::new(l.world.clone(), users, seed);
            config.settings.id = "aa".into();
            config.settings.max_days = Some(days);
            let start = std::time::Instant::now();
            let r = repeated_runs(&l.manifest, p.as_ref(), p.as_ref(), &config, runs, seed)?;
            let out = serde_json::json!({
                "runs": r.runs,
                "false_keep_rate": r.keep_rate,
                "false_veto_rate": r.veto_rate,
                "held_rate": f64::from(r.held) / f64::from(r.runs.max(1)),
                "detail": r,
                "seconds": start.elapsed().as_secs_f64(),
            });
            if json {
                println!("{out}");
            } else {
                println!(
                    "A/A over {} runs: false KEEP {:.1}%, false veto {:.1}%, held {} ({:.0} s)",
                    r.runs,
                    r.keep_rate * 100.0,
                    r.veto_rate * 100.0,
                    r.held,
                    start.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Repeat {
            world,
            candidate,
            control,
            runs,
            users,
            days,
            seed,
            json,
        } => {
            let l = load(&world)?;
            let explicit = explicit_control(&l, &control);
            let c = control_policy(&l, explicit, seed)?;
            let t = resolve_policy(&candidate, &l.world, l.workspace.as_ref(), seed)?;
            let mut config = ExperimentConfig::new(l.world.clone(), users, seed);
            config.settings.id = "repeat".into();
            config.settings.max_days = Some(days);
            let start = std::time::Instant::now();
            let r = repeated_runs(&l.manifest, c.as_ref(), t.as_ref(), &config, runs, seed)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} runs: KEEP {}, EXTEND {}, DISCARD {}; rolled back {} ({} by step 2), reached step 3 in {}, held {} ({:.0} s)",
                    r.runs,
                    r.keep,
                    r.extend,
                    r.discard,
                    r.rolled_back,
                    r.rolled_back_by_step2,
                    r.reached_step3,
                    r.held,
                    start.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Scenarios {
            world,
            policies,
            users,
            days,
            seed,
            json,
        } => {
            let l = load(&world)?;
            let owned: Vec<Box<dyn Policy>> = policies
                .split(',')
                .map(|s| resolve_policy(s.trim(), &l.world, l.workspace.as_ref(), seed))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&dyn Policy> = owned.iter().map(|b| b.as_ref()).collect();
            let out =
                recloop_sim::scenario::compare_policies(l.world.clone(), &refs, users, days, seed)?;
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                for o in &out {
                    println!(
                        "{:16} ctr {:.4} hide/click {:.3} watch/user {:7.1} active days {:5.2} D7 {:.3} D30 {:.3} churned {:.3}",
                        o.policy,
                        o.ctr,
                        o.hide_rate,
                        o.watch_per_user,
                        o.active_days,
                        o.retention_d7,
                        o.retention_d30,
                        o.churned
                    );
                }
            }
            Ok(())
        }
        Command::Bench {
            world,
            users,
            days,
            runs,
        } => {
            let l = load(&world)?;
            let r = recloop_sim::scenario::bench_ab(l.world.clone(), users, days, runs)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Standin(cmd) => standin(cmd),
        Command::Logs {
            workspace,
            out,
            users,
            days,
            seed,
        } => {
            let w = write_production_logs(&workspace, out.as_deref(), users, days, seed)?;
            println!(
                "wrote {} exposures and {} events ({} days of {users} simulated users) to {}",
                w.exposures, w.events, days, w.place
            );
            Ok(())
        }
    }
}

fn standin(cmd: Standin) -> anyhow::Result<()> {
    use recloop_online::standin::{StandIn, StandInSinks};
    match cmd {
        Standin::Start { state } => StandIn::new(&state).start()?,
        Standin::Traffic { state } => StandIn::new(&state).traffic()?,
        Standin::Stop { state } => StandIn::new(&state).stop()?,
        Standin::Serve {
            state,
            workspace,
            day_seconds,
            users,
            logs,
            postgres,
            postgres_schema,
            for_seconds,
        } => {
            anyhow::ensure!(
                day_seconds.is_finite() && day_seconds > 0.0,
                "--day-seconds must be a positive number of seconds"
            );
            anyhow::ensure!(
                logs.is_some() || postgres.is_some(),
                "give --logs DIR, --postgres URL or both: where the platform writes its logs"
            );
            let manifest = Manifest::load(&workspace)
                .with_context(|| format!("the workspace {}", workspace.display()))?;
            let users = users.unwrap_or(manifest.online.users as usize);
            let until = for_seconds.map(|s| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
                    + s
            });
            StandIn::new(&state).serve(
                &workspace,
                users,
                day_seconds,
                &StandInSinks {
                    files: logs,
                    postgres,
                    schema: Some(postgres_schema),
                },
                until,
            )?;
        }
    }
    Ok(())
}
