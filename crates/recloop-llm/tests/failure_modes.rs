//! What real models do wrong, against mock servers speaking the real wire formats: an answer cut
//! off at its output-token limit (`finish_reason: "length"`, `stop_reason: "max_tokens"`), an
//! answer that fails its schema, and a provider without a JSON mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, http, json_response};
use recloop_llm::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::Mock;
use wiremock::matchers::method;

#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    OpenAi,
    Anthropic,
}

fn client(p: P, server: &Server) -> SharedModel {
    match p {
        P::OpenAi => {
            let mut cfg = OpenAiConfig::openai("gpt-4o-mini", Some(Secret::new("sk-fm-1")));
            cfg.base_url = format!("{}/v1", server.uri());
            cfg.timeout = Duration::from_secs(10);
            std::sync::Arc::new(OpenAiChat::new(cfg, http()))
        }
        P::Anthropic => {
            let mut cfg = AnthropicConfig::new("claude-haiku-4-5", Some(Secret::new("sk-fm-2")));
            cfg.base_url = server.uri();
            cfg.timeout = Duration::from_secs(10);
            std::sync::Arc::new(AnthropicChat::new(cfg, http()))
        }
    }
}

/// A provider answer with `value` as the structured answer, stopped for `stop`
/// (`"stop"`/`"end_turn"` or `"length"`/`"max_tokens"`).
fn answer(p: P, value: &Value, stop: &str) -> Value {
    let text = match value {
        Value::String(prose) => prose.clone(),
        other => other.to_string(),
    };
    match p {
        P::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": stop}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}}),
        P::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "tool_use", "id": "t1", "name": "batch", "input": value}],
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 40, "output_tokens": 20}}),
    }
}

fn max_tokens_of(p: P, body: &Value) -> u64 {
    let key = match p {
        P::OpenAi => "max_completion_tokens",
        P::Anthropic => "max_tokens",
    };
    body[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{p:?}: no {key} in {body}"))
}

fn batch_schema() -> Value {
    json!({"title": "batch", "type": "object",
           "properties": {"ideas": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
           "required": ["ideas"], "additionalProperties": false})
}

#[derive(Debug, Deserialize, PartialEq)]
struct Batch {
    ideas: Vec<String>,
}

#[test]
fn a_cut_off_answer_is_asked_again_with_a_larger_limit_and_never_parsed() {
    for p in [P::OpenAi, P::Anthropic] {
        let server = Server::start();
        let (length, done) = match p {
            P::OpenAi => ("length", "stop"),
            P::Anthropic => ("max_tokens", "tool_use"),
        };
        // The cut-off answer happens to be valid JSON satisfying the schema: only the stop
        // reason tells it is incomplete. Parsing it would return one idea instead of three.
        server.mount(
            Mock::given(method("POST"))
                .respond_with(json_response(
                    200,
                    answer(p, &json!({"ideas": ["mmr"]}), length),
                ))
                .up_to_n_times(1),
        );
        server.mount(Mock::given(method("POST")).respond_with(json_response(
            200,
            answer(p, &json!({"ideas": ["mmr", "ease", "recency"]}), done),
        )));
        let m = client(p, &server);
        let s = Schema::compile("batch", &batch_schema()).unwrap();
        let req = ChatRequest::simple(Some("Propose."), "Three ideas.").with_max_tokens(300);
        let out = structured_detailed::<Batch>(&*m, &req, &s).unwrap();
        assert_eq!(out.value.ideas, ["mmr", "ease", "recency"], "{p:?}");
        assert!(
            !out.repaired,
            "{p:?}: the cut-off answer must not reach the parser"
        );
        assert_eq!(out.calls, 2, "{p:?}");
        assert_eq!(
            out.usage.output_tokens, 40,
            "{p:?}: both calls are paid for"
        );
        let bodies = server.bodies();
        assert_eq!(bodies.len(), 2, "{p:?}: one retry, no repair round");
        let (first, second) = (max_tokens_of(p, &bodies[0]), max_tokens_of(p, &bodies[1]));
        assert_eq!(first, 300, "{p:?}");
        assert!(
            second > first,
            "{p:?}: retry limit {second} not above {first}"
        );
        assert_eq!(
            bodies[0]["messages"], bodies[1]["messages"],
            "{p:?}: the retry asks the same question (nothing about a rejected answer)"
        );
    }
}

#[test]
fn an_answer_cut_off_at_every_limit_is_a_typed_error_after_bounded_retries() {
    let server = Server::start();
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        answer(P::OpenAi, &json!({"ideas": ["mmr"]}), "length"),
    )));
    let m = client(P::OpenAi, &server);
    let s = Schema::compile("batch", &batch_schema()).unwrap();
    let policy = LengthPolicy {
        retries: 5,
        growth: 2,
        ceiling: 1000,
    };
    let req = ChatRequest::simple(None, "Ideas.").with_max_tokens(300);
    let err = structured_with_policy::<Batch>(&*m, &req, &s, &policy).unwrap_err();
    match &err {
        LlmError::Truncated {
            max_tokens,
            attempts,
            ..
        } => assert_eq!((*max_tokens, *attempts), (1000, 3)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("max_output_tokens"), "{err}");
    let limits: Vec<u64> = server
        .bodies()
        .iter()
        .map(|b| max_tokens_of(P::OpenAi, b))
        .collect();
    assert_eq!(limits, [300, 600, 1000], "doubling, capped at the ceiling");
}

#[test]
fn a_schema_invalid_answer_gets_one_repair_round_showing_the_violation() {
    for p in [P::OpenAi, P::Anthropic] {
        let server = Server::start();
        let stop = match p {
            P::OpenAi => "stop",
            P::Anthropic => "tool_use",
        };
        // Valid JSON, wrong shape: `ideas` must be an array of strings.
        server.mount(
            Mock::given(method("POST"))
                .respond_with(json_response(
                    200,
                    answer(p, &json!({"ideas": "mmr, ease"}), stop),
                ))
                .up_to_n_times(1),
        );
        server.mount(Mock::given(method("POST")).respond_with(json_response(
            200,
            answer(p, &json!({"ideas": ["mmr", "ease"]}), stop),
        )));
        let m = client(p, &server);
        let s = Schema::compile("batch", &batch_schema()).unwrap();
        let out =
            structured_detailed::<Batch>(&*m, &ChatRequest::simple(None, "Ideas."), &s).unwrap();
        assert!(out.repaired, "{p:?}");
        assert_eq!(out.value.ideas, ["mmr", "ease"], "{p:?}");
        let bodies = server.bodies();
        assert_eq!(bodies.len(), 2, "{p:?}: exactly one repair round");
        let repair = bodies[1]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .to_string();
        assert!(
            repair.contains("/ideas") && repair.contains("does not match the schema"),
            "{p:?}: {repair}"
        );
        // The repair round is structured too: the schema is still enforced.
        match p {
            P::OpenAi => assert_eq!(bodies[1]["response_format"]["type"], "json_schema"),
            P::Anthropic => assert_eq!(bodies[1]["tool_choice"]["name"], "batch"),
        }
    }
}

fn section(base: &str, extra: &str) -> recloop_core::LlmSection {
    toml::from_str(&format!(
        "provider = \"openai-compatible\"\nmodel = \"llama3.1:8b\"\nbase_url = \"{base}\"\n{extra}"
    ))
    .unwrap()
}

#[test]
fn a_provider_without_json_mode_gets_the_schema_in_the_prompt_and_no_response_format() {
    let ws = tempfile::tempdir().unwrap();
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(
                200,
                answer(P::OpenAi, &json!("Sure! Ideas: mmr and ease."), "stop"),
            ))
            .up_to_n_times(1),
    );
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        answer(P::OpenAi, &json!({"ideas": ["mmr", "ease"]}), "stop"),
    )));
    let base = format!("{}/v1", server.uri());
    // An OpenAI-compatible server declares no JSON Schema support unless the manifest says so.
    let settings = LlmSettings::from_section(&section(&base, ""), ws.path()).unwrap();
    assert_eq!(
        settings.structured_mode("openai-compatible"),
        StructuredMode::Prompt
    );
    let router = LlmRouter::new(settings);
    let m = router.for_role("brainstorm").unwrap();
    let s = Schema::compile("batch", &batch_schema()).unwrap();
    let req = ChatRequest::simple(Some("You propose ideas."), "Two ideas.");
    let out = structured_detailed::<Batch>(&*m, &req, &s).unwrap();
    assert_eq!(out.value.ideas, ["mmr", "ease"]);
    assert!(
        out.repaired,
        "prose first, then JSON after the repair round"
    );
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    let schema_text = batch_schema().to_string();
    for body in &bodies {
        assert!(
            body.get("response_format").is_none(),
            "no JSON mode, no response_format: {body}"
        );
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(
            system.starts_with("You propose ideas.") && system.contains(&schema_text),
            "the schema is in the prompt: {system}"
        );
        // sized to the output contract, not a fixed constant
        assert_eq!(
            body["max_tokens"].as_u64().unwrap(),
            u64::from(output_tokens_for(&batch_schema(), 1))
        );
    }

    // Declared support: the schema goes as response_format and stays out of the prompt.
    let server = Server::start();
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        answer(P::OpenAi, &json!({"ideas": ["mmr"]}), "stop"),
    )));
    let base = format!("{}/v1", server.uri());
    let settings = LlmSettings::from_section(
        &section(&base, "structured_output = \"json_schema\""),
        ws.path(),
    )
    .unwrap();
    let m = LlmRouter::new(settings).for_role("brainstorm").unwrap();
    structured_detailed::<Batch>(&*m, &req, &s).unwrap();
    let body = &server.bodies()[0];
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        batch_schema()
    );
    assert_eq!(body["messages"][0]["content"], "You propose ideas.");

    // A misspelt declaration is a configuration error naming the field.
    let err = LlmSettings::from_section(&section(&base, "structured_output = \"json\""), ws.path())
        .unwrap_err();
    assert!(err.to_string().contains("llm.structured_output"), "{err}");
}
