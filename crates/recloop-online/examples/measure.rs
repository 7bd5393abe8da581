//! Repeated guarded experiments (the numbers behind `recloop sim aa` / `recloop sim repeat`),
//! runnable without building the whole CLI:
//!
//! `cargo run --release -p recloop-online --example measure -- WORLD CONTROL CANDIDATE RUNS USERS [DAYS] [SEED]`
//! with WORLD `ml-1m` or `synthetic`, CONTROL/CANDIDATE built-in policy names.
use recloop_online::{ExperimentConfig, builtin_policy, default_sim_manifest, repeated_runs};
use recloop_sim::World;
use recloop_sim::grounded::ml1m_world;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let t0 = std::time::Instant::now();
    let world = Arc::new(match arg(0, "synthetic").as_str() {
        "ml-1m" => ml1m_world(1)?,
        _ => World::synthetic(2000, 1500, 1)?,
    });
    eprintln!(
        "world {} profiles x {} items in {:.1} s",
        world.n_profiles,
        world.n_items,
        t0.elapsed().as_secs_f64()
    );
    let control = builtin_policy(&arg(1, "relevance"), &world, 7)?;
    let candidate = builtin_policy(&arg(2, "relevance"), &world, 7)?;
    let runs: u32 = arg(3, "100").parse()?;
    let users: usize = arg(4, "20000").parse()?;
    let days: u32 = arg(5, "14").parse()?;
    let seed: u64 = arg(6, "1000").parse()?;
    let mut config = ExperimentConfig::new(world, users, seed);
    config.settings.max_days = Some(days);
    let t1 = std::time::Instant::now();
    let r = repeated_runs(
        &default_sim_manifest()?,
        control.as_ref(),
        candidate.as_ref(),
        &config,
        runs,
        seed,
    )?;
    println!(
        "{} {} vs {}: {} ({:.0} s)",
        arg(0, "synthetic"),
        arg(2, "relevance"),
        arg(1, "relevance"),
        serde_json::to_string(&r)?,
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
