//! `[llm.roles]` inside the loop: each agent role gets its own model chain, and what each role
//! spends is journaled as `budget_spent` events (role, model, calls, tokens, dollars); an answer
//! cut off at its output-token limit is asked again with a larger limit, never parsed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::diff;
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_agents::stages::{brain_for, brainstorm};
use recloop_journal::{Event, EventFilter};
use recloop_llm::ScriptedTurn;
use serde_json::json;
use std::path::Path;

fn proposal() -> serde_json::Value {
    json!({
        "title": "switch to ease", "hypothesis": "item-item regression beats global popularity",
        "mechanism": "EASE learns co-consumption", "target_metric": "ndcg@10",
        "direction": "increase", "location": ["pipeline.toml"], "required_signals": [],
        "risks": ["latency"], "validation": "validation split then A/B", "maturity": "ready",
        "kind": "explore",
        "evidence": [{"source": "journal", "reference": "leaderboard", "summary": "mostpop is the baseline"}],
        "score_parts": {"objective": 0.8, "business": 0.5, "feasibility": 0.9, "handoff": 0.9, "evidence": 0.4, "risk": 0.2},
        "stage": "candidates", "lever": "candidates.switch.ease"
    })
}

fn write_script(path: &Path, turns: &[ScriptedTurn]) {
    std::fs::write(path, serde_json::to_string_pretty(turns).unwrap()).unwrap();
}

/// Append `[llm]` (scripted, default model from `default_script`) plus `extra` to the manifest
/// and commit it.
fn add_llm(ws: &Path, default_script: &Path, extra: &str) {
    let file = ws.join("recloop.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "\n[llm]\nprovider = \"scripted\"\nmodel = \"default\"\ncassettes = \"{}\"\n{extra}",
        default_script.display()
    ));
    std::fs::write(&file, text).unwrap();
    recloop_agents::git::git(ws, &["commit", "-qam", "llm"]).unwrap();
}

fn spends(ws: &Path) -> Vec<(String, String, u64, u64, u64)> {
    common::journal(ws)
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::BudgetSpent {
                agent,
                model,
                calls,
                tokens_in,
                tokens_out,
                ..
            } => Some((agent, model, calls, tokens_in, tokens_out)),
            _ => None,
        })
        .collect()
}

#[test]
fn llm_roles_give_develop_its_own_model_inside_the_loop() {
    let ws = common::synthetic_workspace();
    let scripts = tempfile::tempdir().unwrap();
    let old = std::fs::read_to_string(ws.path().join("pipeline.toml")).unwrap();
    let new = old.replace(
        "kind = \"mostpop\"",
        "kind = \"ease\"\nparams = { lambda = 200.0 }",
    );
    assert_ne!(old, new);
    let d = diff::make("pipeline.toml", &old, &new);
    // The brainstorm model only knows how to propose; the develop model only how to implement.
    // Were develop served by the brainstorm model, its script would run dry (a transport
    // failure) and no candidate would be made.
    let brainstorm_script = scripts.path().join("brainstorm.json");
    write_script(
        &brainstorm_script,
        &[ScriptedTurn::json(json!({"proposals": [proposal()]}))],
    );
    let develop_script = scripts.path().join("develop.json");
    write_script(
        &develop_script,
        &[
            ScriptedTurn::tool_call("apply_diff", json!({"diff": d})),
            ScriptedTurn::json(
                json!({"summary": "switched to ease", "files_changed": ["pipeline.toml"]}),
            ),
        ],
    );
    add_llm(
        ws.path(),
        &brainstorm_script,
        &format!(
            "[llm.roles]\ndevelop = [\"scripted:{}\"]\n",
            develop_script.display()
        ),
    );
    let brain = brain_for(ws.path(), "auto").unwrap();
    assert!(
        brain.name().contains("develop=scripted:") && brain.name().contains("develop.json"),
        "{}",
        brain.name()
    );
    let opts = RunOptions {
        iterations: Some(1),
        brain: Some(brain),
        approvals: common::approving(),
        ..Default::default()
    };
    run(ws.path(), &opts).unwrap();
    let events = common::journal(ws.path())
        .events(&EventFilter::default())
        .unwrap();
    let failures: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::StageFailed { detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Event::CandidateReady { .. })),
        "the develop model made no candidate"
    );
    let spent = spends(ws.path());
    let brainstorm: Vec<_> = spent.iter().filter(|s| s.0 == "brainstorm").collect();
    let develop: Vec<_> = spent.iter().filter(|s| s.0 == "develop").collect();
    assert_eq!(brainstorm.len(), 1, "{spent:?}");
    assert!(brainstorm[0].1.ends_with("brainstorm.json"), "{spent:?}");
    assert_eq!(brainstorm[0].2, 1, "one brainstorm call: {spent:?}");
    assert_eq!(develop.len(), 1, "{spent:?}");
    assert!(develop[0].1.ends_with("develop.json"), "{spent:?}");
    assert_eq!(develop[0].2, 2, "a tool turn and the answer: {spent:?}");
    assert!(develop[0].3 > 0 && develop[0].4 > 0, "{spent:?}");
    // the journal's budget view (the dashboard's spend table) has one row per role
    let view = common::journal(ws.path()).budget().unwrap();
    let row = |agent: &str| view.iter().find(|b| b.agent == agent).unwrap().clone();
    assert_eq!(row("brainstorm").calls, 1);
    assert_eq!(row("develop").calls, 2);
    assert_eq!(row("develop").tokens_in, develop[0].3);
}

#[test]
fn a_cut_off_answer_is_asked_again_with_a_larger_limit_never_parsed() {
    let ws = common::synthetic_workspace();
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("brainstorm.json");
    // The cut-off answer is complete, contract-valid JSON with another title: were it parsed,
    // that proposal would be journaled.
    let mut cut = proposal();
    cut["title"] = json!("cut off before the second proposal");
    write_script(
        &script,
        &[
            ScriptedTurn::truncated(json!({"proposals": [cut]}).to_string()),
            ScriptedTurn::json(json!({"proposals": [proposal()]})),
        ],
    );
    add_llm(ws.path(), &script, "");
    let proposals = brainstorm(ws.path()).unwrap();
    assert_eq!(proposals.len(), 1, "{proposals:?}");
    assert_eq!(proposals[0].title, "switch to ease");
    let spent = spends(ws.path());
    assert_eq!(spent.len(), 1, "{spent:?}");
    assert_eq!(
        (spent[0].0.as_str(), spent[0].2),
        ("brainstorm", 2),
        "the cut-off call is paid for and journaled: {spent:?}"
    );
}
