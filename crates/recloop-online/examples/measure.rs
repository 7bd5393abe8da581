//! Repeated guarded experiments (the numbers behind `recloop sim aa` / `recloop sim repeat`),
//! runnable without building the whole CLI:
//!
//! `cargo run --release -p recloop-online --example measure -- WORLD CONTROL CANDIDATE RUNS USERS [DAYS] [SEED]`
//!
//! WORLD is `ml-1m`, `synthetic` or a workspace directory (the world is grounded in its dataset
//! and its `recloop.toml` is the manifest); CONTROL and CANDIDATE are built-in policy names,
//! `builtin:NAME`, or workspace directories (fitted on the workspace world's data).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use recloop_online::{ExperimentConfig, default_sim_manifest, repeated_runs, resolve_policy};
use recloop_sim::World;
use recloop_sim::grounded::{load_workspace_world, ml1m_world};
use std::path::Path;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let t0 = std::time::Instant::now();
    let world_arg = arg(0, "synthetic");
    let (world, ww, manifest) = match world_arg.as_str() {
        "ml-1m" => (Arc::new(ml1m_world(1)?), None, default_sim_manifest()?),
        "synthetic" => (
            Arc::new(World::synthetic(2000, 1500, 1)?),
            None,
            default_sim_manifest()?,
        ),
        dir => {
            let ww = load_workspace_world(Path::new(dir), 1)?;
            let m = recloop_core::Manifest::load(Path::new(dir))?;
            (ww.world.clone(), Some(ww), m)
        }
    };
    eprintln!(
        "world {} profiles x {} items in {:.1} s",
        world.n_profiles,
        world.n_items,
        t0.elapsed().as_secs_f64()
    );
    let spec = |s: String| {
        if s.contains('/') || s.contains(':') {
            s
        } else {
            format!("builtin:{s}")
        }
    };
    let (c_spec, t_spec) = (spec(arg(1, "relevance")), spec(arg(2, "relevance")));
    let control = resolve_policy(&c_spec, &world, ww.as_ref(), 7)?;
    let candidate = if t_spec == c_spec {
        None
    } else {
        Some(resolve_policy(&t_spec, &world, ww.as_ref(), 7)?)
    };
    let runs: u32 = arg(3, "100").parse()?;
    let users: usize = arg(4, "20000").parse()?;
    let days: u32 = arg(5, "14").parse()?;
    let seed: u64 = arg(6, "1000").parse()?;
    let mut config = ExperimentConfig::new(world, users, seed);
    config.settings.max_days = Some(days);
    let t1 = std::time::Instant::now();
    let r = repeated_runs(
        &manifest,
        control.as_ref(),
        candidate.as_deref().unwrap_or(control.as_ref()),
        &config,
        runs,
        seed,
    )?;
    println!(
        "{world_arg} {t_spec} vs {c_spec}: {} ({:.0} s)",
        serde_json::to_string(&r)?,
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
