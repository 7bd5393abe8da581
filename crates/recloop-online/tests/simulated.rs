//! Guarded experiments on simulated users (small generated world).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_core::Decision;
use recloop_online::{
    Ack, ExperimentConfig, ExperimentEvent, Outcome, builtin_policy, default_sim_manifest,
    repeated_runs, run_experiment,
};
use recloop_sim::World;
use std::sync::Arc;

fn world() -> Arc<World> {
    Arc::new(World::synthetic(1000, 800, 1).unwrap())
}

#[test]
fn harmful_candidate_is_rolled_back_before_20_percent() {
    let w = world();
    let m = default_sim_manifest().unwrap();
    let control = builtin_policy("relevance", &w, 7).unwrap();
    let bad = builtin_policy("clickbait-only", &w, 7).unwrap();
    let config = ExperimentConfig::new(w, 30_000, 11);
    let mut events = Vec::new();
    let r = run_experiment(&m, control.as_ref(), bad.as_ref(), &config, &mut |e| {
        events.push(e.clone());
        Ack::Continue
    })
    .unwrap();
    assert_eq!(r.verdict.decision, Decision::Discard);
    assert!(
        matches!(r.outcome, Outcome::RolledBack { share, .. } if share <= 0.05),
        "{:?}",
        r.outcome
    );
    assert!(r.max_share < 0.2);
    // the rollback was reported before the verdict
    let rb = events
        .iter()
        .position(|e| matches!(e, ExperimentEvent::Rollback { .. }))
        .unwrap();
    let v = events
        .iter()
        .position(|e| matches!(e, ExperimentEvent::Verdict { .. }))
        .unwrap();
    assert!(rb < v);
}

#[test]
fn better_candidate_is_kept_and_runs_are_reproducible() {
    let w = world();
    let m = default_sim_manifest().unwrap();
    let pop = builtin_policy("most-popular", &w, 7).unwrap();
    let rel = builtin_policy("relevance", &w, 7).unwrap();
    let config = ExperimentConfig::new(w, 10_000, 3);
    let run = || {
        run_experiment(&m, pop.as_ref(), rel.as_ref(), &config, &mut |_| {
            Ack::Continue
        })
        .unwrap()
    };
    let r = run();
    assert_eq!(r.verdict.decision, Decision::Keep, "{:?}", r.verdict);
    assert_eq!(r.max_share, 0.5);
    let primary = &r.verdict.effects[0];
    assert_eq!(primary.metric, "watch_time_per_user");
    assert!(primary.effect > 0.0 && primary.ci.0.unwrap() > 0.0);
    assert_eq!(run(), r);
}

#[test]
fn harmful_candidates_are_rolled_back_by_the_second_step_in_almost_every_seed() {
    let w = world();
    let m = default_sim_manifest().unwrap();
    let control = builtin_policy("relevance", &w, 7).unwrap();
    let mut config = ExperimentConfig::new(w.clone(), 50_000, 100);
    config.settings.id = "harm".into();
    for name in ["clickbait-boost", "clickbait-only"] {
        let bad = builtin_policy(name, &w, 7).unwrap();
        let r = repeated_runs(&m, control.as_ref(), bad.as_ref(), &config, 20, 100).unwrap();
        assert!(r.rolled_back_by_step2 >= 19, "{name}: {r:?}");
        assert_eq!(r.reached_step3, 0, "{name}: {r:?}");
        assert_eq!(r.keep, 0, "{name}: {r:?}");
    }
}

#[test]
fn aa_runs_on_simulated_users_rarely_keep_or_veto() {
    let w = world();
    let m = default_sim_manifest().unwrap();
    let p = builtin_policy("relevance", &w, 7).unwrap();
    let mut config = ExperimentConfig::new(w, 4_000, 500);
    config.settings.id = "aa".into();
    let r = repeated_runs(&m, p.as_ref(), p.as_ref(), &config, 40, 500).unwrap();
    assert_eq!(r.runs, 40);
    assert!(r.keep <= 4, "{r:?}");
    assert!(r.rolled_back <= 4, "{r:?}");
    assert!(r.held <= 2, "{r:?}");
}
