//! The LLM path end to end from recorded responses (ScriptedModel): proposal → diff → gates →
//! online A/B → verdict → lesson, on the MovieLens example (synthetic data) and on
//! examples/python-mf (python3 + numpy, in the bubblewrap sandbox);
//! and the recorded rejections (protected path, a diff that does not apply, an answer failing its
//! schema, a command trying the network).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::brain::llm::{LlmBrain, Prices};
use recloop_agents::diff;
use recloop_agents::online::SimulatorPlatform;
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};
use recloop_llm::{ScriptedModel, ScriptedTurn};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn proposal(location: &str, lever: &str, title: &str) -> serde_json::Value {
    json!({
        "title": title, "hypothesis": "item-item similarity beats global popularity",
        "mechanism": "neighbourhoods capture co-consumption", "target_metric": "ndcg@10",
        "direction": "increase", "location": [location], "required_signals": [],
        "risks": ["latency"], "validation": "validation split then A/B", "maturity": "ready",
        "kind": "explore",
        "evidence": [{"source": "journal", "reference": "leaderboard", "summary": "mostpop is the baseline"}],
        "score_parts": {"objective": 0.8, "business": 0.5, "feasibility": 0.9, "handoff": 0.9, "evidence": 0.4, "risk": 0.2},
        "stage": "candidates", "lever": lever
    })
}

fn brain(turns: Vec<ScriptedTurn>) -> Arc<LlmBrain> {
    Arc::new(LlmBrain::new(
        Arc::new(ScriptedModel::new(turns)),
        Prices {
            input: 0.15,
            output: 0.6,
        },
    ))
}

fn events(ws: &Path) -> Vec<recloop_journal::EventRecord> {
    common::journal(ws).events(&EventFilter::default()).unwrap()
}

/// Types of events that make the full LLM path, A/B included.
const PATH: [&str; 10] = [
    "proposal_made",
    "proposal_admitted",
    "worktree_created",
    "trajectory_step",
    "gate_passed",
    "candidate_ready",
    "holdout_result",
    "experiment_started",
    "verdict",
    "knowledge_asset_written",
];

fn assert_full_path(ev: &[recloop_journal::EventRecord]) {
    let types: Vec<&str> = ev.iter().map(|e| e.event.type_name()).collect();
    let failures: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::GateFailed { gate, detail, .. } => Some(format!("{gate:?}: {detail}")),
            _ => None,
        })
        .collect();
    for t in PATH {
        assert!(
            types.contains(&t),
            "{t} missing: {types:?}; gate failures {failures:?}"
        );
    }
    // the diff came from the model's tool call and is stored with the candidate
    assert!(
        ev.iter().any(|e| match &e.event {
            Event::TrajectoryStep { step, .. } => serde_json::to_string(&step.tool_calls)
                .unwrap()
                .contains("apply_diff"),
            _ => false,
        }),
        "no apply_diff tool call recorded"
    );
    let verdict = ev
        .iter()
        .find_map(|e| match &e.event {
            Event::Verdict {
                verdict,
                experiment_id,
                ..
            } => Some((verdict.clone(), experiment_id.clone())),
            _ => None,
        })
        .unwrap();
    assert!(
        verdict.1.is_some(),
        "the verdict did not come from the online A/B: {verdict:?}"
    );
    assert!(verdict.0.window_days > 0, "{verdict:?}");
    if verdict.0.decision != recloop_core::Decision::Extend {
        assert!(
            types.contains(&"lesson_proposed") || types.contains(&"lesson_promoted"),
            "{types:?}"
        );
    }
}

#[test]
fn llm_path_end_to_end_on_the_movielens_example() {
    // The MovieLens example as `recloop init --example movielens` writes it, on the synthetic
    // dataset (no download), with the simulator platform for the A/B, and one generalist
    // Brainstorm (the personas' scripted conversations are in tests/personas.rs).
    let ws = tempfile::tempdir().unwrap();
    let opts = recloop_agents::example::ExampleOptions {
        dataset: Some("synthetic".into()),
        generalist: true,
        ..Default::default()
    };
    recloop_agents::example::init_example("movielens", ws.path(), &opts, None).unwrap();
    let old = std::fs::read_to_string(ws.path().join("pipeline.toml")).unwrap();
    let new = old.replace(
        "kind = \"mostpop\"",
        "kind = \"ease\"\nparams = { lambda = 200.0 }",
    );
    assert_ne!(old, new);
    let d = diff::make("pipeline.toml", &old, &new);
    let turns = vec![
        ScriptedTurn::json(
            json!({"proposals": [proposal("pipeline.toml", "candidates.switch.ease", "switch to ease")]}),
        ),
        ScriptedTurn::tool_call("query_schema", json!({})),
        ScriptedTurn::tool_call("read_file", json!({"path": "pipeline.toml"})),
        ScriptedTurn::tool_call("apply_diff", json!({"diff": d})),
        ScriptedTurn::json(
            json!({"summary": "switched to ease", "files_changed": ["pipeline.toml"]}),
        ),
    ];
    let mut sim = SimulatorPlatform::new(ws.path(), 42);
    sim.users = Some(4000);
    let opts = RunOptions {
        iterations: Some(1),
        brain: Some(brain(turns)),
        online: Some(Arc::new(sim)),
        approvals: common::approving(),
        ..Default::default()
    };
    let s = run(ws.path(), &opts).unwrap();
    println!("{s}");
    let ev = events(ws.path());
    assert_full_path(&ev);
    assert!(s.cost_usd > 0.0);
    assert_eq!(s.tried.len(), 1, "{s}");
}

#[test]
fn rejections_are_recorded_with_reasons() {
    let ws = common::synthetic_workspace();
    let bad = "--- a/pipeline.toml\n+++ b/pipeline.toml\n@@ -1,3 +1,3 @@\n [[models]]\n-name = \"ease\"\n+name = \"itemknn\"\n kind = \"mostpop\"\n";
    let protected = diff::make("recloop.toml", "x\n", "y\n");
    let done = ScriptedTurn::json(json!({"summary": "attempted", "files_changed": []}));
    let turns = vec![
        // iteration 1: one proposal on a protected path, one valid
        ScriptedTurn::json(json!({"proposals": [
            proposal("eval/eval.toml", "eval.split", "move the evaluation split"),
            proposal("pipeline.toml", "candidates.switch.itemknn", "switch to itemknn"),
        ]})),
        ScriptedTurn::tool_call("apply_diff", json!({"diff": bad})),
        done.clone(),
        ScriptedTurn::tool_call("apply_diff", json!({"diff": protected})),
        done.clone(),
        done.clone(),
        done.clone(),
        // iteration 2: an answer that fails the contract, and again in the repair round
        ScriptedTurn::json(json!({"ideas": ["more models"]})),
        ScriptedTurn::json(json!({"ideas": ["even more models"]})),
    ];
    let opts = RunOptions {
        iterations: Some(2),
        brain: Some(brain(turns)),
        approvals: common::approving(),
        ..Default::default()
    };
    run(ws.path(), &opts).unwrap();
    let ev = events(ws.path());
    let reasons: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::ProposalRejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("eval/eval.toml") && r.contains("protected")),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains("contract")),
        "an unusable answer is not a rejected idea: {reasons:?}"
    );
    let failures: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::StageFailed { class, detail, .. } => {
                Some(format!("{}: {detail}", class.as_str()))
            }
            _ => None,
        })
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("llm_answer") && f.contains("contract")),
        "{failures:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("gate EditablePaths")),
        "{reasons:?}"
    );
    let tool_errors: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::TrajectoryStep { step, .. } => {
                Some(serde_json::to_string(&step.tool_calls).unwrap())
            }
            _ => None,
        })
        .collect();
    let all = tool_errors.join("\n");
    assert!(
        all.contains("hunk #1") && all.contains("does not apply"),
        "{all}"
    );
    assert!(all.contains("recloop.toml: protected"), "{all}");
}

#[test]
fn a_command_trying_the_network_fails_its_gate_with_the_reason() {
    if !common::require(
        common::sandbox_available(),
        "a sandbox that can confine commands",
        "install bubblewrap (`apt-get install -y bubblewrap`) or enable unprivileged user namespaces",
    ) {
        return;
    }
    let ws = common::synthetic_workspace();
    let m = std::fs::read_to_string(ws.path().join("recloop.toml"))
        .unwrap()
        .replacen(
            "[commands]\n",
            "[commands]\ntest = \"bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'\"\n",
            1,
        );
    assert!(
        m.contains("/dev/tcp/"),
        "the manifest has a [commands] section"
    );
    std::fs::write(ws.path().join("recloop.toml"), m).unwrap();
    recloop_agents::git::git(ws.path(), &["commit", "-qam", "network test"]).unwrap();
    run(
        ws.path(),
        &RunOptions {
            iterations: Some(1),
            approvals: common::approving(),
            ..Default::default()
        },
    )
    .unwrap();
    let ev = events(ws.path());
    let failed: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::GateFailed { detail, gate, .. } => Some(format!("{gate:?}: {detail}")),
            _ => None,
        })
        .collect();
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("Tests") && f.contains("Network is unreachable")),
        "{failed:?}"
    );
}

#[test]
fn llm_path_changes_python_model_code_and_repairs_it_in_the_same_conversation() {
    if !common::python_workspace_runs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("python-mf");
    // exactly what `recloop init --example python-mf` writes
    recloop_agents::example::init_example("python-mf", &ws, &Default::default(), None).unwrap();
    let old = std::fs::read_to_string(ws.join("mf.py")).unwrap();
    let good = old.replace(
        "    pop = r.sum(axis=0)\n",
        "    pop = np.log1p(r.sum(axis=0))\n",
    );
    assert_ne!(old, good, "mf.py computes popularity as the test expects");
    // the first attempt sums over the wrong axis: a users-long vector where items are expected
    let bad = old.replace(
        "    pop = r.sum(axis=0)\n",
        "    pop = np.log1p(r.sum(axis=1))\n",
    );
    let first = diff::make("mf.py", &old, &bad);
    let repair = diff::make("mf.py", &bad, &good);
    let mut p = proposal(
        "mf.py",
        "model.popularity",
        "log-damped popularity in the blend",
    );
    p["stage"] = json!("scoring");
    let turns = vec![
        ScriptedTurn::json(json!({"proposals": [p]})),
        ScriptedTurn::tool_call("read_file", json!({"path": "mf.py"})),
        ScriptedTurn::tool_call("apply_diff", json!({"diff": first})),
        ScriptedTurn::json(json!({"summary": "log1p popularity", "files_changed": ["mf.py"]})),
        ScriptedTurn::tool_call("apply_diff", json!({"diff": repair})),
        ScriptedTurn::json(json!({"summary": "popularity per item", "files_changed": ["mf.py"]})),
    ];
    let model = Arc::new(ScriptedModel::new(turns));
    let brain = Arc::new(LlmBrain::new(
        model.clone(),
        Prices {
            input: 0.15,
            output: 0.6,
        },
    ));
    let opts = RunOptions {
        iterations: Some(1),
        brain: Some(brain),
        online: recloop_agents::stages::online_for(&ws).unwrap(),
        approvals: common::approving(),
        ..Default::default()
    };
    let s = run(&ws, &opts).unwrap();
    println!("{s}");
    let ev = events(&ws);
    // round 0: the real unit tests fail on the wrong axis; round 1 passes every gate
    let gates: Vec<(String, bool, String)> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::GateFailed { gate, detail, .. } => {
                Some((format!("{gate:?}"), false, detail.clone()))
            }
            Event::GatePassed { gate, detail, .. } => {
                Some((format!("{gate:?}"), true, detail.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(
        gates
            .iter()
            .any(|(g, ok, d)| g == "Tests" && !ok && d.contains("unittest")),
        "{gates:?}"
    );
    for wanted in ["Tests", "DryRun", "OfflineEval", "Determinism"] {
        assert!(
            gates.iter().any(|(g, ok, _)| g == wanted && *ok),
            "{wanted} never passed: {gates:?}"
        );
    }
    assert!(
        gates
            .iter()
            .any(|(g, ok, d)| g == "DryRun" && *ok && d.contains("--dry-run")),
        "{gates:?}"
    );
    assert_full_path(&ev);
    // the repair round continued the conversation: the model saw its first diff and the failure
    let requests = model.requests();
    let repair_request = requests
        .iter()
        .find(|r| {
            r.messages
                .iter()
                .any(|m| m.content.contains("The gates checked your change"))
        })
        .expect("a repair request");
    let seen = serde_json::to_string(&repair_request.messages).unwrap();
    assert!(
        seen.contains("np.log1p(r.sum(axis=1))"),
        "the first attempt is not in the repair round"
    );
    assert!(
        seen.contains("Tests"),
        "the failed gate is not in the repair round"
    );
    // Develop's first request carried the file map, the README and the protected test file
    let develop_request = requests
        .iter()
        .find(|r| {
            r.messages
                .iter()
                .any(|m| m.content.contains("# Proposal to implement"))
        })
        .unwrap();
    let first_user = serde_json::to_string(&develop_request.messages).unwrap();
    assert!(
        first_user.contains("mf.py") && first_user.contains("(editable)"),
        "{first_user}"
    );
    assert!(first_user.contains("README.md (beginning)"), "{first_user}");
    // the merged code is the repaired one
    let candidate = ev
        .iter()
        .find_map(|e| match &e.event {
            Event::CandidateReady { candidate } => Some(candidate.clone()),
            _ => None,
        })
        .unwrap();
    let shown =
        recloop_agents::git::git(&ws, &["show", &format!("{}:mf.py", candidate.commit)]).unwrap();
    assert!(shown.contains("np.log1p(r.sum(axis=0))"), "{shown}");
    let started = ev.iter().find_map(|e| match &e.event {
        Event::ExperimentStarted { platform, .. } => Some(platform.clone()),
        _ => None,
    });
    assert_eq!(started.as_deref(), Some("simulator (exported lists)"));
}
