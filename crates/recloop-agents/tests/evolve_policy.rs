//! The built-in brain's policy evolves by paired replay of offline search episodes: an injected
//! defect (local moves too small to leave the start) is repaired by an admitted edit with a
//! measured gain; edits without a gain past ε are archived; the admitted version is on disk,
//! in the journal with its parent, diff and numbers, and what the next run uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::brain::policy::{BrainPolicy, POLICY_AGENT};
use recloop_agents::evolve::policy::{PolicyOptions, evolve_policy_workspace};
use recloop_agents::example::{ExampleOptions, init_example};
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};

#[test]
fn a_defective_policy_is_repaired_by_an_admitted_edit_and_the_run_uses_it() {
    let ws = tempfile::tempdir().unwrap();
    let opts = ExampleOptions {
        dataset: Some("synthetic".into()),
        platform: Some("none".into()),
        generalist: true,
        ..Default::default()
    };
    init_example("movielens", ws.path(), &opts, None).unwrap();
    // the defect: local moves of 5 % of a range, few samples, almost no structure
    let defective = BrainPolicy {
        samples: 4,
        local_structural: 0.0,
        global_structural: 0.1,
        local_step: 0.05,
        explore_value_skip: 0.95,
    };
    defective.save(ws.path()).unwrap();
    let epsilon = 0.0005;
    let rounds = evolve_policy_workspace(
        ws.path(),
        &PolicyOptions {
            rounds: 2,
            trials: 8,
            episodes: 3,
            epsilon: Some(epsilon),
            seed: 0,
        },
    )
    .unwrap();
    for r in &rounds {
        println!("{r}");
        assert!(r.candidates.iter().filter(|c| c.admitted).count() <= 1);
        for c in &r.candidates {
            // the gate, and nothing else, decides
            assert_eq!(c.admitted, Some(c.version) == r.admitted, "{c:?}");
            if c.admitted {
                assert!(c.gain > epsilon && c.worst_loss <= epsilon, "{c:?}");
            }
            if c.gain <= epsilon {
                assert!(!c.admitted, "{c:?}");
            }
        }
    }
    let admitted: Vec<_> = rounds
        .iter()
        .flat_map(|r| r.candidates.iter().filter(|c| c.admitted))
        .collect();
    assert_eq!(admitted.len(), 1, "{rounds:?}");
    let repair = admitted[0];
    assert_eq!(repair.field, "local_step");
    assert!(repair.to > defective.local_step && repair.gain > epsilon);
    assert!(
        rounds
            .iter()
            .flat_map(|r| &r.candidates)
            .any(|c| !c.admitted && c.gain <= epsilon),
        "no archived edit without gain"
    );
    // on disk, and in the journal with parent, diff and the replay numbers
    let on_disk = BrainPolicy::load(ws.path()).unwrap();
    assert_eq!(on_disk.local_step, repair.to);
    let journal = common::journal(ws.path());
    let versions = journal.harness_versions(Some(POLICY_AGENT)).unwrap();
    let v = versions
        .iter()
        .find(|v| v.version == repair.version)
        .unwrap();
    assert!(v.admitted && v.parent_version == Some(1));
    assert!(
        v.diff.contains("-local_step = 0.05")
            && v.diff.contains(&format!("+local_step = {}", repair.to))
    );
    assert!(v.diagnosis.contains("paired replay"), "{}", v.diagnosis);
    assert_eq!(v.evidence["gain"].as_f64().unwrap(), repair.gain);
    assert_eq!(
        versions.iter().filter(|v| v.admitted).count(),
        2,
        "v1 and the repair"
    );
    // the next run searches with the admitted policy and says so
    run(
        ws.path(),
        &RunOptions {
            iterations: Some(1),
            approvals: common::approving(),
            ..Default::default()
        },
    )
    .unwrap();
    let started = journal
        .events(&EventFilter {
            types: vec!["run_started".into()],
            ..Default::default()
        })
        .unwrap();
    let Event::RunStarted { config, .. } = &started[0].event else {
        panic!("{started:?}")
    };
    assert_eq!(config["brain_policy"]["local_step"], repair.to);
    // the gate refuses a replay with fewer than 3 episodes
    let err = evolve_policy_workspace(
        ws.path(),
        &PolicyOptions {
            episodes: 2,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least 3"), "{err}");
}
