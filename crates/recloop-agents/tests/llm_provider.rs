//! A workspace whose `[llm]` names a real provider gets the LLM brain through recloop-llm's
//! router: here an OpenAI-compatible server (a local mock speaking the real wire format) answers
//! `recloop brainstorm`, and the proposals it returns are journaled with their cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::stages::{brain_for, brainstorm};
use serde_json::{Value, json};
use std::path::Path;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn proposal() -> Value {
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

fn completion(content: &Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    })
}

/// A mock OpenAI-compatible server answering every chat completion with `answer`, and the runtime
/// it runs on (our client is synchronous).
fn chat_server(answer: ResponseTemplate) -> (tokio::runtime::Runtime, MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(answer)
            .mount(&server),
    );
    (rt, server)
}

fn add_llm_section(ws: &Path, base_url: &str) {
    let file = ws.join("recloop.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "\n[llm]\nprovider = \"openai-compatible\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"{base_url}\"\n"
    ));
    std::fs::write(&file, text).unwrap();
}

#[test]
fn an_openai_compatible_server_answers_brainstorm_through_the_router() {
    let (rt, server) = chat_server(
        ResponseTemplate::new(200).set_body_json(completion(&json!({"proposals": [proposal()]}))),
    );
    let ws = common::synthetic_workspace();
    add_llm_section(ws.path(), &format!("{}/v1", server.uri()));

    let brain = brain_for(ws.path(), "auto").unwrap();
    assert!(brain.name().starts_with("llm:"), "{}", brain.name());

    let proposals = brainstorm(ws.path()).unwrap();
    assert_eq!(proposals.len(), 1, "{proposals:?}");
    assert_eq!(proposals[0].title, "switch to ease");
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert!(!requests.is_empty(), "the server was never asked");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    // the prompt carries the brainstorm harness and the workspace's evidence
    let prompt = body["messages"].to_string();
    assert!(prompt.contains("ndcg@10"), "{prompt}");
    // the output limit is sized to the brainstorm contract and the batch, not a constant
    let manifest = recloop_core::Manifest::load(ws.path()).unwrap();
    let contract = recloop_agents::harness::Harness::load(ws.path(), "brainstorm")
        .unwrap()
        .contract()
        .unwrap();
    let batch = manifest.run.batch_size as usize;
    assert_eq!(
        body["max_tokens"].as_u64().unwrap(),
        u64::from(recloop_llm::output_tokens_for(&contract, batch))
    );
    assert!(
        recloop_llm::output_tokens_for(&contract, batch)
            > recloop_llm::output_tokens_for(&contract, 1)
            || batch == 1
    );
    // an OpenAI-compatible server without declared JSON Schema support gets no response_format
    assert!(body.get("response_format").is_none(), "{body}");
    // the brain's step is journaled with the tokens the server reported
    let steps: Vec<_> = common::journal(ws.path())
        .events(&recloop_journal::EventFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            recloop_journal::Event::TrajectoryStep { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert!(
        steps
            .iter()
            .any(|s| s.tokens_in >= 1200 && s.cost_usd > 0.0),
        "no trajectory step with the reported usage and its price: {steps:?}"
    );
    // and the spend of the role is journaled with its model
    let spent: Vec<_> = common::journal(ws.path())
        .events(&recloop_journal::EventFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            recloop_journal::Event::BudgetSpent {
                agent,
                model,
                calls,
                tokens_in,
                usd,
                ..
            } => Some((agent, model, calls, tokens_in, usd)),
            _ => None,
        })
        .collect();
    assert_eq!(spent.len(), 1, "{spent:?}");
    let (agent, model, calls, tokens_in, usd) = &spent[0];
    assert_eq!(
        (agent.as_str(), model.as_str()),
        ("brainstorm", "gpt-4o-mini")
    );
    assert_eq!((*calls, *tokens_in), (1, 1200));
    assert!(*usd > 0.0);
}

#[test]
fn a_provider_error_is_a_clear_error_not_a_silent_fallback() {
    let (_rt, server) = chat_server(ResponseTemplate::new(401).set_body_json(
        json!({"error": {"message": "invalid api key", "type": "invalid_request_error"}}),
    ));
    let ws = common::synthetic_workspace();
    add_llm_section(ws.path(), &format!("{}/v1", server.uri()));
    let err = brainstorm(ws.path()).unwrap_err().to_string();
    assert!(
        err.contains("401") || err.contains("invalid api key"),
        "{err}"
    );
}
