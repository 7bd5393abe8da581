//! The loop with the built-in brain on a synthetic workspace: KEEPs, lineage, resumption.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};

#[test]
fn builtin_loop_improves_production_and_records_lineage() {
    let ws = common::synthetic_workspace();
    let opts = RunOptions {
        iterations: Some(4),
        approvals: common::approving(),
        ..Default::default()
    };
    let s = run(ws.path(), &opts).unwrap();
    println!("{s}");
    assert!(s.kept() >= 1, "{s}");
    assert!(s.lift() > 0.0, "{s}");
    let j = common::journal(ws.path());
    let events = j.events(&EventFilter::default()).unwrap();
    // the example's gates all run something: its dry run too
    let dry_runs: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::CandidateReady { candidate } => candidate
                .gates
                .iter()
                .find(|g| g.gate == recloop_core::Gate::DryRun)
                .map(|g| g.detail.clone()),
            _ => None,
        })
        .collect();
    assert!(!dry_runs.is_empty());
    for d in &dry_runs {
        assert!(d.contains("recloop rec check") && d.contains("ok"), "{d}");
    }
    // Every developed proposal has its full lineage: made → worktree → gates → verdict or rejection.
    for e in &events {
        if let Event::WorktreeCreated { proposal_id, .. } = &e.event {
            let lineage: Vec<&str> = events
                .iter()
                .filter(|x| x.event.proposal_id() == Some(proposal_id.as_str()))
                .map(|x| x.event.type_name())
                .collect();
            assert!(
                lineage.contains(&"proposal_made"),
                "{proposal_id}: {lineage:?}"
            );
            assert!(
                lineage
                    .iter()
                    .any(|t| *t == "gate_passed" || *t == "gate_failed"),
                "{lineage:?}"
            );
            assert!(
                lineage.contains(&"verdict") || lineage.contains(&"proposal_rejected"),
                "{lineage:?}"
            );
            assert!(
                lineage.contains(&"knowledge_asset_written")
                    || lineage.contains(&"proposal_rejected")
            );
        }
    }
    // Production moved: the branch holds the merged candidate.
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Event::MergedIntoProduction { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Event::HarnessVersionCreated { .. }))
    );
    let spec = std::fs::read_to_string(ws.path().join("pipeline.toml")).unwrap();
    assert!(!spec.contains("kind = \"mostpop\"\nweight = 1.0\n\n[blend]") || s.kept() == 0);
    // A second `run` starts a new run and never repeats an experiment's exact spec.
    let s2 = run(
        ws.path(),
        &RunOptions {
            iterations: Some(1),
            approvals: common::approving(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s2.run_id, "run-2");
}

#[test]
fn stopped_run_resumes_to_the_same_journal() {
    let opts = RunOptions {
        iterations: Some(3),
        seed: Some(7),
        approvals: common::approving(),
        ..Default::default()
    };
    common::assert_resumes_identically(common::synthetic_workspace, &opts, &[2, 5]);
}
