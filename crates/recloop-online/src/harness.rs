//! Entry points shared by the CLI and the agents: policies by name, the default simulator
//! manifest, and worlds.

use crate::error::{OnlineError, Result};
use recloop_core::Manifest;
use recloop_sim::grounded::{WorkspaceWorld, workspace_policy};
use recloop_sim::{
    Policy, RandomPolicy, World, clickbait_boost_policy, clickbait_only_policy, diversity_policy,
    exploration_policy, most_popular_policy, relevance_policy,
};
use std::path::Path;

/// Names accepted after `builtin:`.
pub const BUILTIN_POLICIES: [&str; 7] = [
    "relevance",
    "clickbait-boost",
    "clickbait-only",
    "diversity",
    "exploration",
    "most-popular",
    "random",
];

/// A built-in test policy on `world` (the relevance model knows true affinity up to unit noise).
pub fn builtin_policy(name: &str, world: &World, seed: u64) -> Result<Box<dyn Policy>> {
    Ok(match name {
        "relevance" => Box::new(relevance_policy(world, 1.0, seed)),
        "clickbait-boost" => Box::new(clickbait_boost_policy(world, 1.0, seed, 1.0)),
        "clickbait-only" => Box::new(clickbait_only_policy(world)),
        "diversity" => Box::new(diversity_policy(world, 1.0, seed, 1)),
        "exploration" => Box::new(exploration_policy(world, 1.0, seed, 0.5)),
        "most-popular" => Box::new(most_popular_policy(world)),
        "random" => Box::new(RandomPolicy),
        other => {
            return Err(OnlineError::Config {
                field: "policy".into(),
                reason: format!(
                    "unknown built-in policy {other:?}; expected one of {BUILTIN_POLICIES:?}"
                ),
            });
        }
    })
}

/// A policy from a command-line spec: `builtin:NAME`, or a workspace directory whose pipeline is
/// fitted on the workspace world's data (`ww` required).
pub fn resolve_policy(
    spec: &str,
    world: &World,
    ww: Option<&WorkspaceWorld>,
    seed: u64,
) -> Result<Box<dyn Policy>> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        return builtin_policy(name, world, seed);
    }
    let dir = Path::new(spec);
    let Some(ww) = ww else {
        return Err(OnlineError::Config {
            field: "candidate".into(),
            reason: format!("{spec}: a workspace policy needs --workspace (its data and world)"),
        });
    };
    if !dir.is_dir() {
        return Err(OnlineError::Config {
            field: "candidate".into(),
            reason: format!("{spec} is neither `builtin:NAME` nor a workspace directory"),
        });
    }
    Ok(Box::new(workspace_policy(dir, ww)?))
}

/// The manifest used when no workspace is given: primary `watch_time_per_user`, north star
/// `retention_d7`, the simulator's default guardrails, default ramp.
pub fn default_sim_manifest() -> Result<Manifest> {
    let text = r#"
[project]
name = "simulator"
editable = ["pipeline.toml"]

[metrics]
primary = { name = "watch_time_per_user", direction = "increase", min_effect = 0.0 }
north_star = { name = "retention_d7", direction = "increase" }
"#;
    Manifest::parse(text, Path::new("<built-in simulator manifest>")).map_err(|e| {
        OnlineError::Config {
            field: "manifest".into(),
            reason: e.to_string(),
        }
    })
}
