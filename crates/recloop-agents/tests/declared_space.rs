//! The built-in brain on a workspace it does not own: the Python example, tuned through its
//! declared search space (`[[search.params]]`), with no language model. Every candidate must be a
//! delta of `params.json` that changes only the values the proposal names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::example::{ExampleOptions, init_example};
use recloop_agents::git::git;
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};

#[test]
fn the_builtin_brain_tunes_a_python_workspace_by_deltas() {
    if !common::python_workspace_runs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("python-mf");
    // decide offline here (a scripted approver answers the KEEP approvals); the simulator A/B of
    // this workspace is exercised by the CLI run the README shows
    let opts = ExampleOptions {
        platform: Some("none".into()),
        ..Default::default()
    };
    init_example("python-mf", &ws, &opts, None).unwrap();
    let s = run(
        &ws,
        &RunOptions {
            iterations: Some(4),
            approvals: common::approving(),
            ..Default::default()
        },
    )
    .unwrap();
    println!("{s}");
    assert_eq!(s.brain, "builtin");
    assert!(s.kept() >= 1, "{s}");
    assert!(s.lift() > 0.0, "{s}");

    let events = common::journal(&ws)
        .events(&EventFilter::default())
        .unwrap();
    let mut candidates = 0;
    for e in &events {
        let Event::CandidateReady { candidate, .. } = &e.event else {
            continue;
        };
        candidates += 1;
        let proposal = events
            .iter()
            .find_map(|x| match &x.event {
                Event::ProposalMade { proposal } if proposal.id == candidate.proposal => {
                    Some(proposal.clone())
                }
                _ => None,
            })
            .unwrap();
        let changed_params = proposal.title.matches(" → ").count();
        let numstat = git(
            &ws,
            &[
                "diff",
                "--numstat",
                &candidate.base_commit,
                &candidate.commit,
            ],
        )
        .unwrap();
        // only params.json, one line per changed value
        assert_eq!(
            numstat,
            format!("{changed_params}\t{changed_params}\tparams.json"),
            "{}: {}",
            proposal.id,
            proposal.title
        );
    }
    assert!(candidates >= 2, "{candidates} candidates");
}
