//! OpenAI Chat Completions against a mock server speaking the real wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, http, json_response, sse};
use recloop_llm::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

const KEY: &str = "sk-test-0123456789abcdef";

fn client(server: &Server, official: bool) -> OpenAiChat {
    let mut cfg = OpenAiConfig::compatible(
        &format!("{}/v1", server.uri()),
        "gpt-4o-mini",
        Some(Secret::new(KEY)),
    );
    cfg.official = official;
    if official {
        cfg.structured = StructuredMode::JsonSchema;
    }
    cfg.timeout = Duration::from_secs(10);
    OpenAiChat::new(cfg, http())
}

fn completion(content: Value, tool_calls: Option<Value>, finish: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(t) = tool_calls {
        message["tool_calls"] = t;
    }
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}
    })
}

#[test]
fn chat_round_trip_uses_the_real_wire_format() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(json_response(
                200,
                completion(json!("Hello!"), None, "stop"),
            )),
    );
    let m = client(&server, true);
    let req = ChatRequest::simple(Some("Be brief."), "Hi")
        .with_max_tokens(50)
        .with_seed(7);
    // Median of a few mock round trips (printed for the report).
    let mut times = Vec::new();
    let mut r = None;
    for _ in 0..5 {
        let t = Instant::now();
        r = Some(m.chat(&req).unwrap());
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!("openai mock round trip median: {:?}", times[2]);
    let r = r.unwrap();
    assert_eq!(r.text(), "Hello!");
    assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 21,
            output_tokens: 7
        }
    );
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    let body = &server.bodies()[0];
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Hi"})
    );
    assert_eq!(body["max_completion_tokens"], 50);
    assert_eq!(body["seed"], 7);
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("tools").is_none());

    // Compatible servers get `max_tokens`.
    let m = client(&server, false);
    m.chat(&req).unwrap();
    let body = server.bodies().pop().unwrap();
    assert_eq!(body["max_tokens"], 50);
}

#[test]
fn tool_call_round_trip_through_the_tool_loop() {
    let server = Server::start();
    let calls = json!([{"id": "call_abc", "type": "function",
        "function": {"name": "get_metric", "arguments": "{\"name\":\"ndcg@10\"}"}},
        {"id": "call_bad", "type": "function",
        "function": {"name": "drop_table", "arguments": "{}"}}]);
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(
                200,
                completion(Value::Null, Some(calls), "tool_calls"),
            ))
            .up_to_n_times(1),
    );
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        completion(json!("ndcg@10 is 0.31"), None, "stop"),
    )));
    let registry = ToolRegistry::new()
        .with(FnTool::new(
            "get_metric",
            "Read a metric.",
            json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
            |args| Ok(json!({"name": args["name"], "value": 0.31})),
        ))
        .unwrap();
    let m = client(&server, true);
    let run = run_with_tools(
        &m,
        &ChatRequest::simple(None, "What is ndcg?"),
        &registry,
        4,
    )
    .unwrap();
    assert_eq!(run.response.text(), "ndcg@10 is 0.31");
    assert_eq!(run.usage.total(), 56);
    assert!(matches!(run.calls[1].outcome, ToolOutcome::Rejected(_)));
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    let first = &bodies[0];
    assert_eq!(first["tools"][0]["type"], "function");
    assert_eq!(first["tools"][0]["function"]["name"], "get_metric");
    assert_eq!(
        first["tools"][0]["function"]["parameters"]["required"],
        json!(["name"])
    );
    assert_eq!(first["tool_choice"], "auto");
    let msgs = bodies[1]["messages"].as_array().unwrap();
    let assistant = &msgs[1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        "{\"name\":\"ndcg@10\"}"
    );
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], "call_abc");
    let result: Value = serde_json::from_str(msgs[2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["value"], 0.31);
    assert_eq!(msgs[3]["tool_call_id"], "call_bad");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("unknown tool")
    );
}

#[test]
fn structured_output_uses_response_format_and_repairs_once() {
    let server = Server::start();
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}, "score": {"type": "number"}},
                        "required": ["title", "score"], "additionalProperties": false});
    server.mount(
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"response_format": {"type": "json_schema",
                "json_schema": {"name": "proposal", "schema": schema}}}),
            ))
            .respond_with(json_response(
                200,
                completion(json!("{\"title\": \"mmr\", \"score\": "), None, "stop"),
            ))
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"response_format": {"type": "json_schema"}}),
            ))
            .respond_with(json_response(
                200,
                completion(json!("{\"title\": \"mmr\", \"score\": 0.8}"), None, "stop"),
            )),
    );
    let m = client(&server, true);
    let s = Schema::compile("proposal", &schema).unwrap();
    let out = structured_detailed::<Value>(&m, &ChatRequest::simple(None, "Propose."), &s).unwrap();
    assert!(out.repaired);
    assert_eq!(out.json, json!({"title": "mmr", "score": 0.8}));
    let bodies = server.bodies();
    let repair = bodies[1]["messages"].as_array().unwrap();
    assert!(
        repair.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
}

#[test]
fn structured_output_fails_typed_after_the_repair_round() {
    let server = Server::start();
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        200,
        completion(json!("{\"title\": 3}"), None, "stop"),
    )));
    let m = client(&server, true);
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]});
    let err = structured::<Value>(&m, &ChatRequest::simple(None, "x"), &schema).unwrap_err();
    assert!(matches!(err, LlmError::StructuredOutput { .. }), "{err}");
    assert_eq!(server.requests().len(), 2);
}

fn retrying(server: &Server, clock: Arc<ManualClock>) -> Retrying<OpenAiChat> {
    Retrying::with_clock(client(server, true), RetryPolicy::default(), clock)
}

#[test]
fn unauthorized_is_not_retried_and_key_is_not_echoed() {
    let server = Server::start();
    server.mount(Mock::given(method("POST")).respond_with(json_response(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}}),
    )));
    let clock = ManualClock::shared();
    let err = retrying(&server, clock.clone())
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(KEY), "{err}");
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[test]
fn rate_limit_honours_retry_after_seconds_and_dates() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(
                json_response(429, json!({"error": {"message": "Rate limit reached"}}))
                    .insert_header("retry-after", "3"),
            )
            .up_to_n_times(1),
    );
    let date = chrono::Utc::now() + chrono::Duration::seconds(30);
    server.mount(
        Mock::given(method("POST"))
            .respond_with(
                json_response(503, json!({"error": {"message": "busy"}})).insert_header(
                    "retry-after",
                    date.to_rfc2822().replace("+0000", "GMT").as_str(),
                ),
            )
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(200, completion(json!("ok"), None, "stop"))),
    );
    let clock = ManualClock::shared();
    let r = retrying(&server, clock.clone())
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap();
    assert_eq!(r.text(), "ok");
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert_eq!(sleeps[0], Duration::from_secs(3));
    assert!(
        sleeps[1] > Duration::from_secs(25) && sleeps[1] <= Duration::from_secs(30),
        "{sleeps:?}"
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn server_errors_timeouts_and_malformed_bodies_are_typed_and_retried() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("internal"))
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(
                json_response(200, completion(json!("late"), None, "stop"))
                    .set_delay(Duration::from_millis(800)),
            )
            .up_to_n_times(1),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(200, completion(json!("ok"), None, "stop"))),
    );

    // Without retries each failure surfaces as its own typed error.
    let mut cfg = OpenAiConfig::compatible(&format!("{}/v1", server.uri()), "m", None);
    cfg.timeout = Duration::from_millis(300);
    let bare = OpenAiChat::new(cfg.clone(), http());
    let req = ChatRequest::simple(None, "x");
    assert!(matches!(
        bare.chat(&req).unwrap_err(),
        LlmError::Server { status: 500, .. }
    ));
    let e = bare.chat(&req).unwrap_err();
    assert!(
        matches!(&e, LlmError::MalformedResponse { excerpt, .. } if excerpt.contains("proxy")),
        "{e}"
    );
    let e = bare.chat(&req).unwrap_err();
    assert!(matches!(e, LlmError::Timeout { .. }), "{e}");
    assert_eq!(bare.chat(&req).unwrap().text(), "ok");

    // Connection refused is a transport error.
    let dead = OpenAiChat::new(
        OpenAiConfig::compatible("http://127.0.0.1:9/v1", "m", None),
        http(),
    );
    let e = dead.chat(&req).unwrap_err();
    assert!(matches!(e, LlmError::Transport { .. }), "{e}");
    assert!(e.is_retryable());
}

#[test]
fn retries_recover_from_500_then_succeed() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
            .up_to_n_times(2),
    );
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(200, completion(json!("ok"), None, "stop"))),
    );
    let clock = ManualClock::shared();
    let r = retrying(&server, clock.clone())
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap();
    assert_eq!(r.text(), "ok");
    assert_eq!(clock.sleeps().len(), 2);
}

#[test]
fn circuit_breaker_fails_fast_without_calling() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("down")),
    );
    let clock = ManualClock::shared();
    let state = BreakerState::with_clock(
        BreakerConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(60),
        },
        clock.clone(),
    );
    let m = Retrying::with_clock(
        CircuitBreaker::new(client(&server, true), state),
        RetryPolicy {
            max_retries: 5,
            ..RetryPolicy::default()
        },
        clock,
    );
    let err = m.chat(&ChatRequest::simple(None, "x")).unwrap_err();
    assert!(
        matches!(err, LlmError::CircuitOpen { failures: 2, .. }),
        "{err}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "the breaker stopped the retries"
    );
    let err = m.chat(&ChatRequest::simple(None, "x")).unwrap_err();
    assert!(matches!(err, LlmError::CircuitOpen { .. }));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn exhausted_budget_means_no_request_is_sent() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .respond_with(json_response(200, completion(json!("ok"), None, "stop"))),
    );
    let ledger = BudgetLedger::with_clock(
        BudgetLimits {
            usd: Some(0.0001),
            ..Default::default()
        },
        ManualClock::shared(),
    );
    // gpt-4o-mini: 0.60 $/Mtok output → 1000 output tokens ≈ $0.0006 > $0.0001.
    let m = Budgeted::new(client(&server, true), ledger.clone(), "develop");
    let err = m
        .chat(&ChatRequest::simple(None, "x").with_max_tokens(1000))
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::BudgetExhausted { which, scope, .. } if which == "usd" && scope == "run"),
        "{err}"
    );
    assert!(err.to_string().contains("usd budget of run"));
    assert_eq!(server.requests().len(), 0);
    // A small call fits and is charged at the reported usage.
    m.chat(&ChatRequest::simple(None, "x").with_max_tokens(20))
        .unwrap();
    let report = ledger.report();
    assert_eq!(report.run.input_tokens, 21);
    assert_eq!(report.run.output_tokens, 7);
    assert!((report.roles["develop"].usd - (21.0 * 0.15 + 7.0 * 0.60) / 1e6).abs() < 1e-12);
}

#[test]
fn streaming_text_tool_calls_and_usage() {
    let server = Server::start();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let events = vec![
        (
            None,
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        ),
        (None, chunk(json!({"content": "Let me "}), Value::Null)),
        (None, chunk(json!({"content": "check."}), Value::Null)),
        (
            None,
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                              "function": {"name": "read_file", "arguments": ""}}]}),
                Value::Null,
            ),
        ),
        (
            None,
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]}),
                Value::Null,
            ),
        ),
        (
            None,
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a.toml\"}"}}]}),
                Value::Null,
            ),
        ),
        (None, chunk(json!({}), json!("tool_calls"))),
        (
            None,
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
                      "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}})
            .to_string(),
        ),
        (None, "[DONE]".to_string()),
    ];
    server.mount(
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ))
            .respond_with(sse(&events)),
    );
    let m = client(&server, true);
    let mut seen = Vec::new();
    let r = m
        .chat_stream(&ChatRequest::simple(None, "read a.toml"), &mut |e| {
            seen.push(e.clone())
        })
        .unwrap();
    assert_eq!(r.text(), "Let me check.");
    assert_eq!(r.tool_calls()[0].name, "read_file");
    assert_eq!(r.tool_calls()[0].arguments, json!({"path": "a.toml"}));
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.usage.total(), 21);
    let texts: Vec<&StreamEvent> = seen
        .iter()
        .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(matches!(seen.last().unwrap(), StreamEvent::Done { usage, .. } if usage.total() == 21));
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, StreamEvent::ToolCallDelta { .. }))
            .count(),
        3
    );
}

#[test]
fn truncated_stream_is_malformed() {
    let server = Server::start();
    let events = vec![(
        None,
        json!({"choices": [{"index": 0, "delta": {"content": "Hal"}, "finish_reason": null}]})
            .to_string(),
    )];
    server.mount(Mock::given(method("POST")).respond_with(sse(&events)));
    let m = client(&server, true);
    let err = m
        .chat_stream(&ChatRequest::simple(None, "x"), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, LlmError::MalformedResponse { .. }), "{err}");
}
