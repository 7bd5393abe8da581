//! `cargo bench -p recloop-sim`: a 14-day 50/50 A/B test with 200,000 users per arm, median of 3.
//!
//! Uses the ML-1M world when `RECLOOP_BENCH_WORLD=ml-1m` (fetched on first use), otherwise a
//! generated world of ML-1M size (6,040 profiles × 3,706 items).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use recloop_sim::World;
use recloop_sim::grounded::ml1m_world;
use recloop_sim::scenario::bench_ab;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users: usize = std::env::var("RECLOOP_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let world = match std::env::var("RECLOOP_BENCH_WORLD").as_deref() {
        Ok("ml-1m") => ml1m_world(1)?,
        _ => World::synthetic(6040, 3706, 1)?,
    };
    let r = bench_ab(Arc::new(world), users, 14, 3)?;
    println!(
        "sim ab14: {} users/arm x {} days: median {:.2} s (runs {:?}), {} impressions, {} threads",
        r.users_per_arm, r.days, r.median_seconds, r.seconds, r.impressions, r.threads
    );
    Ok(())
}
