//! Tuning aid: A/A, harmful and better candidates on a generated world.
use recloop_core::Manifest;
use recloop_online::*;
use recloop_sim::{
    Policy, World, clickbait_boost_policy, clickbait_only_policy, most_popular_policy,
    relevance_policy,
};
use std::path::Path;
use std::sync::Arc;
fn main() -> Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let runs = args.first().copied().unwrap_or(40) as u32;
    let users = args.get(1).copied().unwrap_or(20000) as usize;
    let m = Manifest::parse(
        r#"
[project]
name = "sim"
editable = ["pipeline.toml"]
[metrics]
primary = { name = "watch_time_per_user", direction = "increase", min_effect = 0.0 }
north_star = { name = "retention_d7", direction = "increase" }
"#,
        Path::new("recloop.toml"),
    )
    .unwrap();
    let world = Arc::new(World::synthetic(2000, 1500, 1)?);
    let rel = relevance_policy(&world, 1.0, 7);
    let cb = clickbait_boost_policy(&world, 1.0, 7, 1.0);
    let cbo = clickbait_only_policy(&world);
    let pop = most_popular_policy(&world);
    let mut cfg = ExperimentConfig::new(world.clone(), users, 1);
    if let Some(&n) = args.get(2) {
        cfg.settings.sequential_tuning = n as f64;
    }
    for (name, c, t) in [
        ("A/A", &rel as &dyn Policy, &rel as &dyn Policy),
        ("clickbait-boost", &rel, &cb),
        ("clickbait-only", &rel, &cbo),
        ("relevance>pop", &pop, &rel),
    ]
    .into_iter()
    .filter(|(n, _, _)| std::env::var("ONLY").map_or(true, |o| n.starts_with(&o)))
    {
        let t0 = std::time::Instant::now();
        let r = repeated_runs(&m, c, t, &cfg, runs, 1000)?;
        println!(
            "{name:16} {} ({:?})",
            serde_json::to_string(&r).unwrap(),
            t0.elapsed()
        );
    }
    Ok(())
}
