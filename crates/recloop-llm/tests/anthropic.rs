//! Anthropic Messages against a mock server speaking the real wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, http, json_response, sse};
use recloop_llm::*;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

const KEY: &str = "sk-ant-test-0123456789";

fn client(server: &Server) -> AnthropicChat {
    let mut cfg = AnthropicConfig::new("claude-haiku-4-5", Some(Secret::new(KEY)));
    cfg.base_url = server.uri();
    cfg.timeout = Duration::from_secs(10);
    AnthropicChat::new(cfg, http())
}

fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 12}
    })
}

#[test]
fn chat_round_trip_uses_the_real_wire_format() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", KEY))
            .and(header("anthropic-version", "2023-06-01"))
            .respond_with(json_response(
                200,
                message(json!([{"type": "text", "text": "Hi there"}]), "end_turn"),
            )),
    );
    let m = client(&server);
    let r = m
        .chat(&ChatRequest::simple(Some("Be brief."), "Hello").with_temperature(0.2))
        .unwrap();
    assert_eq!(r.text(), "Hi there");
    assert_eq!(r.model, "claude-haiku-4-5-20251001");
    assert_eq!(r.usage.total(), 42);
    let body = &server.bodies()[0];
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    );
    assert!(server.requests()[0].headers.get("authorization").is_none());
}

#[test]
fn tool_use_round_trip_sends_tool_results_in_a_user_turn() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(
                200,
                message(
                    json!([
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "list_files", "input": {"dir": "scripts"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "list_files", "input": {"dir": 5}}
                    ]),
                    "tool_use",
                ),
            ))
            .up_to_n_times(1),
    );
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        message(json!([{"type": "text", "text": "Two files."}]), "end_turn"),
    )));
    let registry = ToolRegistry::new()
        .with(FnTool::new(
            "list_files",
            "List files of a directory.",
            json!({"type": "object", "properties": {"dir": {"type": "string"}}, "required": ["dir"]}),
            |_| Ok(json!(["a.rhai", "b.rhai"])),
        ))
        .unwrap();
    let run = run_with_tools(
        &client(&server),
        &ChatRequest::simple(Some("sys"), "list"),
        &registry,
        3,
    )
    .unwrap();
    assert_eq!(run.response.text(), "Two files.");
    assert_eq!(run.calls.len(), 2);
    let bodies = server.bodies();
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"]["required"],
        json!(["dir"])
    );
    assert_eq!(bodies[0]["tool_choice"], json!({"type": "auto"}));
    let msgs = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "user, assistant, user(tool results)");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][1]["input"], json!({"dir": "scripts"}));
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_1");
    assert!(results[0].get("is_error").is_none());
    assert_eq!(results[1]["tool_use_id"], "toolu_2");
    assert_eq!(results[1]["is_error"], true);
    assert!(
        results[1]["content"]
            .as_str()
            .unwrap()
            .contains("do not match its schema")
    );
}

#[test]
fn structured_output_forces_a_tool_and_unwraps_its_input() {
    let server = Server::start();
    let schema = json!({"type": "object", "properties": {"verdict": {"enum": ["keep", "discard"]}}, "required": ["verdict"]});
    server.mount(
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"tool_choice": {"type": "tool", "name": "verdict"}}),
            ))
            .respond_with(json_response(
                200,
                message(
                    json!([{"type": "tool_use", "id": "t", "name": "verdict", "input": {"verdict": "keep"}}]),
                    "tool_use",
                ),
            )),
    );
    let s = Schema::compile("verdict", &schema).unwrap();
    let out =
        structured_detailed::<Value>(&client(&server), &ChatRequest::simple(None, "judge"), &s)
            .unwrap();
    assert_eq!(out.json, json!({"verdict": "keep"}));
    assert!(!out.repaired);
    assert_eq!(out.response.stop_reason, StopReason::EndTurn);
    assert!(out.response.tool_calls().is_empty());
    let body = &server.bodies()[0];
    assert_eq!(body["tools"][0]["name"], "verdict");
    assert_eq!(body["tools"][0]["input_schema"], schema);
}

#[test]
fn structured_array_schema_is_wrapped_and_repaired() {
    let server = Server::start();
    // First answer violates the schema, the repair answer is valid.
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(
                200,
                message(
                    json!([{"type": "tool_use", "id": "t", "name": "answer", "input": {"value": ["x", 1]}}]),
                    "tool_use",
                ),
            ))
            .up_to_n_times(1),
    );
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        message(
            json!([{"type": "tool_use", "id": "t", "name": "answer", "input": {"value": ["x", "y"]}}]),
            "tool_use",
        ),
    )));
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let v: Vec<String> = structured(
        &client(&server),
        &ChatRequest::simple(None, "list"),
        &schema,
    )
    .unwrap();
    assert_eq!(v, vec!["x", "y"]);
    let bodies = server.bodies();
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"]["properties"]["value"],
        schema
    );
    let repair = bodies[1]["messages"].as_array().unwrap();
    let last = repair.last().unwrap();
    assert!(
        last["content"][0]["text"].as_str().unwrap().contains("/1"),
        "{last}"
    );
}

#[test]
fn overloaded_529_is_retried_and_errors_are_typed() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(
                529,
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ))
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(
                json_response(
                    429,
                    json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Too many"}}),
                )
                .insert_header("retry-after", "4"),
            )
            .up_to_n_times(1),
    );
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        message(json!([{"type": "text", "text": "ok"}]), "end_turn"),
    )));
    let clock = ManualClock::shared();
    let m = Retrying::with_clock(client(&server), RetryPolicy::default(), clock.clone());
    assert_eq!(
        m.chat(&ChatRequest::simple(None, "x")).unwrap().text(),
        "ok"
    );
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert_eq!(sleeps[1], Duration::from_secs(4));

    let bad = Server::start();
    bad.mount(Mock::given(method("POST")).respond_with(json_response(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: required"}}),
    )));
    let e = client(&bad)
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::BadRequest { status: 400, message, .. } if message.contains("max_tokens")),
        "{e}"
    );

    let odd = Server::start();
    odd.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"content\": 5}")),
    );
    let e = client(&odd)
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::MalformedResponse { detail, .. } if detail.contains("content")),
        "{e}"
    );
}

fn ev(name: &'static str, data: Value) -> (Option<&'static str>, String) {
    (Some(name), data.to_string())
}

#[test]
fn streaming_text_and_tool_input_deltas() {
    let server = Server::start();
    let events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-haiku-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Reading "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "it."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "read_file", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"pipe"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "line.toml\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 17}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    server.mount(
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"stream": true})))
            .respond_with(sse(&events)),
    );
    let mut seen = Vec::new();
    let r = client(&server)
        .chat_stream(&ChatRequest::simple(None, "read"), &mut |e| {
            seen.push(e.clone())
        })
        .unwrap();
    assert_eq!(r.text(), "Reading it.");
    assert_eq!(r.tool_calls()[0].id, "toolu_9");
    assert_eq!(
        r.tool_calls()[0].arguments,
        json!({"path": "pipeline.toml"})
    );
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 25,
            output_tokens: 17
        }
    );
    assert!(matches!(&seen[0], StreamEvent::TextDelta { text } if text == "Reading "));
    assert!(seen.iter().any(
        |e| matches!(e, StreamEvent::ToolCallDelta { index: 0, name: Some(n), .. } if n == "read_file")
    ));
    assert!(matches!(seen.last().unwrap(), StreamEvent::Done { .. }));
}

#[test]
fn stream_error_event_is_typed_and_retryable() {
    let server = Server::start();
    let events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1}}}),
        ),
        ev(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ];
    server.mount(Mock::given(method("POST")).respond_with(sse(&events)));
    let err = client(&server)
        .chat_stream(&ChatRequest::simple(None, "x"), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, LlmError::Server { status: 529, .. }), "{err}");
    assert!(err.is_retryable());
}

#[test]
fn structured_output_streams_as_text() {
    let server = Server::start();
    let events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 5, "output_tokens": 0}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "ping", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"ok\": true, \"echo\": \"pong\"}"}}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    server.mount(Mock::given(method("POST")).respond_with(sse(&events)));
    let req = ChatRequest::simple(None, "ping").with_schema("ping", ping::ping_schema());
    let mut text = String::new();
    let r = client(&server)
        .chat_stream(&req, &mut |e| {
            if let StreamEvent::TextDelta { text: t } = e {
                text.push_str(t)
            }
        })
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(r.text()).unwrap(),
        json!({"ok": true, "echo": "pong"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::from_str::<Value>(r.text()).unwrap()
    );
    assert!(r.tool_calls().is_empty());
}
