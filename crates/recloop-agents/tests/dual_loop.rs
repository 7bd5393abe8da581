//! The dual loop on a synthetic workspace and the simulator: candidate states, the layer's
//! conflict check, and resumption after a stop at any step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter, EventRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A synthetic workspace on the simulator with `[run] mode = "dual"`: 4 offline trials and 2
/// online slots per iteration (the ramp stops at 25 % so that two experiments fit a layer).
fn dual_workspace(run_extra: &str) -> tempfile::TempDir {
    let ws = common::synthetic_workspace();
    let path = ws.path().join("recloop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("platform = \"none\""), "{text}");
    let ramp = text
        .lines()
        .find(|l| l.starts_with("ramp = "))
        .map(str::to_string);
    let mut text = text.replace("platform = \"none\"", "platform = \"simulator\"\nslots = 2");
    text = match ramp {
        Some(line) => text.replace(&line, "ramp = [0.01, 0.05, 0.25]"),
        None => text.replace("slots = 2", "slots = 2\nramp = [0.01, 0.05, 0.25]"),
    };
    text.push_str(&format!(
        "\n[run]\nmode = \"dual\"\nfast_trials = 4\n{run_extra}"
    ));
    std::fs::write(&path, text).unwrap();
    // a fixed date: two such workspaces have the same commits (the resumption test compares
    // their journals)
    let st = std::process::Command::new("git")
        .args(["commit", "-qam", "dual loop"])
        .current_dir(ws.path())
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .status()
        .unwrap();
    assert!(st.success());
    ws
}

fn events(ws: &Path) -> Vec<EventRecord> {
    common::journal(ws).events(&EventFilter::default()).unwrap()
}

/// (iteration, proposal, state) of every `candidate_state` event, in journal order.
fn states(evs: &[EventRecord]) -> Vec<(u32, String, String)> {
    evs.iter()
        .filter_map(|e| match &e.event {
            Event::CandidateState {
                proposal_id, state, ..
            } => Some((e.iteration, proposal_id.clone(), state.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_fast_loop_fills_a_pool_and_the_slow_loop_promotes_its_best_to_the_slots() {
    let ws = dual_workspace("quotas = { exploit = 2, explore = 1, novel = 1 }\n");
    let opts = RunOptions {
        iterations: Some(3),
        approvals: common::approving(),
        ..Default::default()
    };
    let s = run(ws.path(), &opts).unwrap();
    println!("{s}");
    let evs = events(ws.path());
    let st = states(&evs);
    assert!(!st.is_empty(), "no candidate states journaled");
    // each candidate's states follow the lifecycle
    let mut by_proposal: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, p, state) in &st {
        by_proposal.entry(p).or_default().push(state);
    }
    let allowed: BTreeSet<Vec<&str>> = [
        vec!["proposed", "completed"],
        vec!["proposed", "validated"],
        vec!["proposed", "validated", "live", "completed"],
        vec!["proposed", "validated", "retired"],
    ]
    .into_iter()
    .collect();
    for (p, seq) in &by_proposal {
        assert!(allowed.contains(seq), "{p}: {seq:?}");
    }
    // the fast loop ran 4 offline trials per iteration: more candidates than online slots
    let proposed = st.iter().filter(|s| s.2 == "proposed").count();
    let live: Vec<&(u32, String, String)> = st.iter().filter(|s| s.2 == "live").collect();
    assert!(proposed >= 8, "{proposed} proposed");
    assert!(!live.is_empty(), "nothing went online:\n{s}");
    assert!(live.len() < proposed);
    // every live candidate ran an experiment and got an online verdict
    for (_, p, _) in &live {
        assert!(
            evs.iter().any(|e| matches!(&e.event,
                Event::ExperimentStarted { proposal_id, .. } if proposal_id == p)),
            "{p} live without an experiment"
        );
        assert!(
            evs.iter().any(|e| matches!(&e.event,
                Event::Verdict { proposal_id, experiment_id: Some(_), .. } if proposal_id == p)),
            "{p} live without an online verdict"
        );
    }
    // at most `slots` per iteration, and no two on one pipeline stage (the layer's check)
    let stage_of: BTreeMap<&str, &str> = evs
        .iter()
        .filter_map(|e| match &e.event {
            Event::ProposalMade { proposal } => {
                Some((proposal.id.as_str(), proposal.stage.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut per_iteration: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (it, p, _) in &live {
        per_iteration
            .entry(*it)
            .or_default()
            .push(stage_of[p.as_str()]);
    }
    for (it, stages) in &per_iteration {
        assert!(stages.len() <= 2, "iteration {it}: {stages:?}");
        let distinct: BTreeSet<&&str> = stages.iter().collect();
        assert_eq!(distinct.len(), stages.len(), "iteration {it}: {stages:?}");
    }
    // candidates decided offline never went online
    for (p, seq) in &by_proposal {
        if seq.as_slice() == ["proposed", "completed"] {
            assert!(
                !evs.iter().any(|e| matches!(&e.event,
                    Event::ExperimentStarted { proposal_id, .. } if proposal_id == p)),
                "{p}"
            );
        }
    }
    assert_eq!(s.online_experiments as usize, {
        evs.iter()
            .filter(|e| matches!(e.event, Event::ExperimentStarted { .. }))
            .count()
    });
    assert!(s.online_days > 0, "{s}");
    // each batch has the quotas' composition: 2 exploit, 1 explore, 1 novel
    let mut kinds: BTreeMap<(u32, String), usize> = BTreeMap::new();
    for e in &evs {
        if let Event::ProposalMade { proposal } = &e.event {
            *kinds
                .entry((e.iteration, format!("{:?}", proposal.kind)))
                .or_default() += 1;
        }
    }
    for ((it, kind), n) in &kinds {
        let quota = match kind.as_str() {
            "Exploit" => 2,
            _ => 1,
        };
        assert!(*n <= quota, "iteration {it}: {n} {kind}: {kinds:?}");
    }
    assert!(kinds.keys().any(|(_, k)| k == "Exploit"));
}

#[test]
fn a_stopped_dual_run_resumes_to_the_same_journal() {
    let opts = RunOptions {
        iterations: Some(2),
        seed: Some(7),
        approvals: common::approving(),
        ..Default::default()
    };
    common::assert_resumes_identically(|| dual_workspace(""), &opts, &[3, 7]);
}
