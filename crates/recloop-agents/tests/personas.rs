//! The personas with scripted language models: each persona's Brainstorm call carries its
//! instructions and scope, is offered its own tools and answers on its own model role; a
//! proposal outside a persona's scope is refused by admission; the spending is journaled per
//! persona; `compute_eval` and `compute_loss` measure a candidate for the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::brain::llm::{LlmBrain, Prices};
use recloop_agents::diff;
use recloop_agents::example::{ExampleOptions, init_example};
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};
use recloop_llm::{ChatRequest, Message, Role, ScriptedModel, ScriptedTurn};
use serde_json::json;
use std::sync::Arc;

fn proposal(lever: &str, title: &str, objective: f64) -> serde_json::Value {
    json!({
        "title": title, "hypothesis": format!("{title} improves the recommender"),
        "mechanism": "see the title", "target_metric": "ndcg@10",
        "direction": "increase", "location": ["pipeline.toml"], "required_signals": [],
        "risks": ["latency"], "validation": "validation split", "maturity": "ready",
        "kind": "explore",
        "evidence": [{"source": "journal", "reference": "leaderboard", "summary": "mostpop is the baseline"}],
        "score_parts": {"objective": objective, "business": 0.5, "feasibility": 0.9, "handoff": 0.9, "evidence": 0.4, "risk": 0.2},
        "stage": "candidates", "lever": lever
    })
}

fn system_of(req: &ChatRequest) -> &str {
    let m = &req.messages[0];
    assert_eq!(m.role, Role::System);
    &m.content
}

fn tools_of(req: &ChatRequest) -> Vec<&str> {
    req.tools.iter().map(|t| t.name.as_str()).collect()
}

fn last_tool_answer(req: &ChatRequest) -> &Message {
    let m = req.messages.last().unwrap();
    assert_eq!(m.role, Role::Tool, "{m:?}");
    m
}

#[test]
fn each_persona_brainstorms_in_its_scope_with_its_tools_and_model() {
    // the MovieLens example with its three personas, synthetic data, decided offline
    let ws = tempfile::tempdir().unwrap();
    let opts = ExampleOptions {
        dataset: Some("synthetic".into()),
        synthetic: Some((300, 200)),
        platform: Some("none".into()),
        generalist: false,
    };
    init_example("movielens", ws.path(), &opts, None).unwrap();
    let old = std::fs::read_to_string(ws.path().join("pipeline.toml")).unwrap();
    let new = old.replace(
        "kind = \"mostpop\"",
        "kind = \"ease\"\nparams = { lambda = 200.0 }",
    );
    // batch 4 at iteration 1: optimizer 1, architecture 2, reward 1 (in manifest order)
    let main = Arc::new(ScriptedModel::new([
        // optimizer: measures the training objective of an EASE candidate first
        ScriptedTurn::tool_call(
            "compute_loss",
            json!({"pipeline": old.replace("kind = \"mostpop\"", "kind = \"ease\"\nparams = { lambda = 50.0 }")}),
        ),
        // ... then proposes a model switch, which is not its lever
        ScriptedTurn::json(
            json!({"proposals": [proposal("candidates.switch.itemknn", "switch to itemknn", 0.9)]}),
        ),
        // architecture
        ScriptedTurn::json(
            json!({"proposals": [proposal("candidates.switch.ease", "switch to ease", 0.8)]}),
        ),
        // develop (the default model) implements the best admitted proposal
        ScriptedTurn::tool_call(
            "apply_diff",
            json!({"diff": diff::make("pipeline.toml", &old, &new)}),
        ),
        ScriptedTurn::json(json!({"summary": "EASE", "files_changed": ["pipeline.toml"]})),
    ]));
    let liked = format!("{old}\n[positives]\nmin_rating = 4.0\n");
    let reward = Arc::new(ScriptedModel::new([
        ScriptedTurn::tool_call(
            "compute_eval",
            json!({"pipeline": liked, "metrics": ["mean_rating@10", "ndcg@10"]}),
        ),
        ScriptedTurn::tool_call(
            "run_sql_query",
            json!({"sql": "SELECT count(*) FROM events", "database": "logs"}),
        ),
        ScriptedTurn::json(
            json!({"proposals": [proposal("positives.min_rating", "learn from liked items", 0.3)]}),
        ),
    ]));
    let brain =
        LlmBrain::new(main.clone(), Prices::FREE).with_role("reward", reward.clone(), Prices::FREE);
    let run_opts = RunOptions {
        iterations: Some(1),
        brain: Some(Arc::new(brain)),
        approvals: common::approving(),
        ..Default::default()
    };
    let summary = run(ws.path(), &run_opts).unwrap();

    let asked = main.requests();
    assert!(
        system_of(&asked[0]).contains("# Persona: optimizer"),
        "{}",
        system_of(&asked[0])
    );
    // compute_loss answered with the candidate's EASE objective beside production's MostPop
    let loss = last_tool_answer(&asked[1]);
    assert!(!loss.is_error, "{loss:?}");
    let v: serde_json::Value = serde_json::from_str(&loss.content).unwrap();
    let ease = &v["candidate"][0];
    assert_eq!(ease["kind"], "ease", "{v}");
    assert!(
        ease["objective"]["validation_loss"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert!(
        v["production"][0]["objective"].is_null(),
        "mostpop has none: {v}"
    );
    assert!(system_of(&asked[2]).contains("# Persona: architecture"));
    // the optimizer is offered its tools, not the SQL over the logs
    let tools = tools_of(&asked[0]);
    assert!(
        tools.contains(&"compute_eval")
            && tools.contains(&"compute_loss")
            && tools.contains(&"journal_search"),
        "{tools:?}"
    );
    assert!(!tools.contains(&"run_sql_query"), "{tools:?}");
    // the reward persona answers on its own model, with its proxy in the prompt
    let asked = reward.requests();
    assert_eq!(asked.len(), 3);
    let system = system_of(&asked[0]);
    assert!(
        system.contains("# Persona: reward") && system.contains("mean_rating@10"),
        "{system}"
    );
    assert!(tools_of(&asked[0]).contains(&"run_sql_query"));
    // compute_eval measured the candidate against production
    let measured = last_tool_answer(&asked[1]);
    assert!(!measured.is_error, "{measured:?}");
    let v: serde_json::Value = serde_json::from_str(&measured.content).unwrap();
    assert!(v["mean_rating@10"]["change"].as_f64().unwrap() > 0.0, "{v}");
    // no logs in this workspace yet: a tool error that says how to get them
    let no_logs = last_tool_answer(&asked[2]);
    assert!(
        no_logs.is_error && no_logs.content.contains("recloop sim logs"),
        "{no_logs:?}"
    );

    let events: Vec<Event> = common::journal(ws.path())
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let made: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProposalMade { proposal } => {
                Some((proposal.id.clone(), proposal.persona.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        made.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["architecture", "reward", "optimizer"],
        "{made:?}"
    );
    assert!(made.iter().all(|(id, p)| id.contains(&format!("-{p}-"))));
    let rejected: Vec<(&String, &String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProposalRejected {
                proposal_id,
                reason,
            } => Some((proposal_id, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].0.contains("-optimizer-"));
    assert!(
        rejected[0]
            .1
            .contains("outside the optimizer persona's scope"),
        "{}",
        rejected[0].1
    );
    // spending per persona role
    let spenders: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::BudgetSpent { agent, .. } => Some(agent.as_str()),
            _ => None,
        })
        .collect();
    for role in ["optimizer", "architecture", "reward", "develop"] {
        assert!(spenders.contains(role), "{role}: {spenders:?}");
    }
    // the architecture persona's EASE was the best admitted proposal and was kept
    let printed = summary.to_string();
    assert!(
        printed.contains("REJECTED: outside the optimizer persona's scope"),
        "{printed}"
    );
    assert!(
        events.iter().any(|e| matches!(e,
            Event::Verdict { proposal_id, verdict, .. }
                if proposal_id.contains("-architecture-")
                    && verdict.decision == recloop_core::Decision::Keep)),
        "{summary}"
    );
}
