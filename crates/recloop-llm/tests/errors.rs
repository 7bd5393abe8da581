//! Every error class against mock servers speaking each provider's real wire format, with and
//! without streaming: 429 with `Retry-After`, 5xx, timeouts, malformed bodies and stream chunks,
//! invalid structured output (one repair round, then a typed error), unknown tools and bad tool
//! arguments (answered with an error result, never executed), budgets (the call is not made),
//! and the response cache in front of a real client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, http, json_response, sse};
use recloop_llm::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const OPENAI_KEY: &str = "sk-errors-openai-000111";
const ANTHROPIC_KEY: &str = "sk-ant-errors-222333";

#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    OpenAi,
    Anthropic,
}

const BOTH: [P; 2] = [P::OpenAi, P::Anthropic];
const MODES: [bool; 2] = [false, true];

fn client(p: P, server: &Server, timeout: Duration) -> SharedModel {
    match p {
        P::OpenAi => {
            let mut cfg = OpenAiConfig::compatible(
                &format!("{}/v1", server.uri()),
                "gpt-4o-mini",
                Some(Secret::new(OPENAI_KEY)),
            );
            cfg.official = true;
            cfg.structured = StructuredMode::JsonSchema;
            cfg.timeout = timeout;
            Arc::new(OpenAiChat::new(cfg, http()))
        }
        P::Anthropic => {
            let mut cfg =
                AnthropicConfig::new("claude-haiku-4-5", Some(Secret::new(ANTHROPIC_KEY)));
            cfg.base_url = server.uri();
            cfg.timeout = timeout;
            Arc::new(AnthropicChat::new(cfg, http()))
        }
    }
}

fn ok_json(p: P, text: &str) -> Value {
    match p {
        P::OpenAi => json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}}),
        P::Anthropic => json!({
            "id": "msg_9", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": {"input_tokens": 11, "output_tokens": 4}}),
    }
}

/// SSE events of a streamed answer `text` (split in two deltas), optionally cut off after the
/// first delta by a chunk that is not JSON.
fn ok_events(p: P, text: &str, broken_after_first: bool) -> Vec<(Option<&'static str>, String)> {
    let (a, b) = text.split_at(text.len() / 2);
    match p {
        P::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                .to_string()
            };
            let mut ev = vec![
                (
                    None,
                    chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                ),
                (None, chunk(json!({"content": a}), Value::Null)),
            ];
            if broken_after_first {
                ev.push((None, "{\"choices\": [{\"index\": 0, \"delta\":".into()));
            }
            ev.push((None, chunk(json!({"content": b}), json!("stop"))));
            ev.push((
                None,
                json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
                       "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}})
                .to_string(),
            ));
            ev.push((None, "[DONE]".into()));
            ev
        }
        P::Anthropic => {
            let e = |name: &'static str, v: Value| (Some(name), v.to_string());
            let delta = |t: &str| {
                e(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": t}}),
                )
            };
            let mut ev = vec![
                e(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_9", "type": "message",
                        "role": "assistant", "model": "claude-haiku-4-5", "content": [],
                        "stop_reason": null, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
                ),
                e(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                           "content_block": {"type": "text", "text": ""}}),
                ),
                delta(a),
            ];
            if broken_after_first {
                ev.push((
                    Some("content_block_delta"),
                    "{\"type\": \"content_block_delta\", \"index\": 0, \"delta\":".into(),
                ));
            }
            ev.push(delta(b));
            ev.push(e(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            ev.push(e(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 4}}),
            ));
            ev.push(e("message_stop", json!({"type": "message_stop"})));
            ev
        }
    }
}

fn ok(p: P, stream: bool, text: &str) -> ResponseTemplate {
    if stream {
        sse(&ok_events(p, text, false))
    } else {
        json_response(200, ok_json(p, text))
    }
}

/// The provider's error body for `status`.
fn error_body(p: P, status: u16) -> Value {
    match p {
        P::OpenAi => {
            let (kind, msg) = match status {
                429 => ("rate_limit_exceeded", "Rate limit reached for gpt-4o-mini"),
                _ => ("server_error", "The server had an error"),
            };
            json!({"error": {"message": msg, "type": kind, "param": null, "code": kind}})
        }
        P::Anthropic => {
            let (kind, msg) = match status {
                429 => (
                    "rate_limit_error",
                    "Number of request tokens has exceeded your rate limit",
                ),
                529 => ("overloaded_error", "Overloaded"),
                _ => ("api_error", "Internal server error"),
            };
            json!({"type": "error", "error": {"type": kind, "message": msg}})
        }
    }
}

fn send(m: &dyn ChatModel, stream: bool, req: &ChatRequest) -> Result<ChatResponse> {
    if stream {
        let mut text = String::new();
        let r = m.chat_stream(req, &mut |e| {
            if let StreamEvent::TextDelta { text: t } = e {
                text.push_str(t);
            }
        })?;
        assert_eq!(text, r.text(), "streamed deltas add up to the answer");
        Ok(r)
    } else {
        m.chat(req)
    }
}

fn retrying(m: SharedModel, clock: Arc<ManualClock>) -> Retrying<SharedModel> {
    Retrying::with_clock(m, RetryPolicy::default(), clock)
}

#[test]
fn rate_limits_are_typed_and_honour_retry_after() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let server = Server::start();
            server.mount(
                Mock::given(method("POST"))
                    .respond_with(
                        json_response(429, error_body(p, 429)).insert_header("retry-after", "2"),
                    )
                    .up_to_n_times(2),
            );
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "fine now")));
            let req = ChatRequest::simple(None, "hello");
            let bare = client(p, &server, Duration::from_secs(10));
            let e = send(&*bare, stream, &req).unwrap_err();
            assert!(
                matches!(&e, LlmError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(2)),
                "{ctx}: {e}"
            );
            assert!(e.to_string().contains("retry after 2.0 s"), "{ctx}: {e}");
            let clock = ManualClock::shared();
            let r = send(&retrying(bare, clock.clone()), stream, &req).unwrap();
            assert_eq!(r.text(), "fine now", "{ctx}");
            assert_eq!(clock.sleeps(), vec![Duration::from_secs(2)], "{ctx}");
            assert_eq!(server.requests().len(), 3, "{ctx}");
        }
    }
}

#[test]
fn a_retry_after_longer_than_allowed_fails_without_waiting() {
    for p in BOTH {
        let server = Server::start();
        server.mount(Mock::given(method("POST")).respond_with(
            json_response(429, error_body(p, 429)).insert_header("retry-after", "3600"),
        ));
        let clock = ManualClock::shared();
        let e = retrying(client(p, &server, Duration::from_secs(10)), clock.clone())
            .chat(&ChatRequest::simple(None, "x"))
            .unwrap_err();
        assert!(matches!(e, LlmError::RateLimited { .. }), "{p:?}: {e}");
        assert!(clock.sleeps().is_empty(), "{p:?}");
        assert_eq!(server.requests().len(), 1, "{p:?}");
    }
}

#[test]
fn server_errors_are_typed_and_retried_with_backoff() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let server = Server::start();
            let busy = if p == P::Anthropic { 529 } else { 503 };
            server.mount(
                Mock::given(method("POST"))
                    .respond_with(json_response(500, error_body(p, 500)))
                    .up_to_n_times(1),
            );
            server.mount(
                Mock::given(method("POST"))
                    .respond_with(json_response(busy, error_body(p, busy)))
                    .up_to_n_times(1),
            );
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "recovered")));
            let req = ChatRequest::simple(None, "hello");
            let bare = client(p, &server, Duration::from_secs(10));
            let e = send(&*bare, stream, &req).unwrap_err();
            assert!(
                matches!(&e, LlmError::Server { status: 500, message, .. } if !message.is_empty()),
                "{ctx}: {e}"
            );
            assert!(e.is_retryable());
            let clock = ManualClock::shared();
            let r = send(&retrying(bare, clock.clone()), stream, &req).unwrap();
            assert_eq!(r.text(), "recovered", "{ctx}");
            let sleeps = clock.sleeps();
            assert_eq!(sleeps.len(), 1, "{ctx}");
            // Exponential backoff with jitter: base 500 ms scaled into [0.5, 1).
            assert!(
                sleeps[0] >= Duration::from_millis(250) && sleeps[0] < Duration::from_millis(500),
                "{ctx}: {sleeps:?}"
            );
        }
    }
}

#[test]
fn timeouts_are_typed_and_retried() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let server = Server::start();
            server.mount(
                Mock::given(method("POST"))
                    .respond_with(ok(p, stream, "too late").set_delay(Duration::from_millis(700)))
                    .up_to_n_times(2),
            );
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "in time")));
            let req = ChatRequest::simple(None, "hello");
            let bare = client(p, &server, Duration::from_millis(200));
            let e = send(&*bare, stream, &req).unwrap_err();
            assert!(
                matches!(&e, LlmError::Timeout { after, .. } if *after == Duration::from_millis(200)),
                "{ctx}: {e}"
            );
            let clock = ManualClock::shared();
            let r = send(&retrying(bare, clock.clone()), stream, &req).unwrap();
            assert_eq!(r.text(), "in time", "{ctx}");
            assert_eq!(clock.sleeps().len(), 1, "{ctx}");
        }
    }
}

#[test]
fn malformed_bodies_and_stream_chunks_are_typed_and_retried() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let server = Server::start();
            let broken = if stream {
                // The very first chunk is not JSON: nothing was delivered, so a retry is safe.
                let mut ev = ok_events(p, "abcdef", false);
                let first = ev
                    .iter()
                    .position(|(_, d)| d.contains("\"content\"") || d.contains("message_start"))
                    .unwrap_or(0);
                ev[first].1 = "{\"truncated\": ".into();
                sse(&ev)
            } else {
                ResponseTemplate::new(200)
                    .set_body_raw("<html><body>502 from the proxy</body></html>", "text/html")
            };
            server.mount(
                Mock::given(method("POST"))
                    .respond_with(broken)
                    .up_to_n_times(2),
            );
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "clean")));
            let req = ChatRequest::simple(None, "hello");
            let bare = client(p, &server, Duration::from_secs(10));
            let e = send(&*bare, stream, &req).unwrap_err();
            assert!(
                matches!(&e, LlmError::MalformedResponse { .. }),
                "{ctx}: {e}"
            );
            let clock = ManualClock::shared();
            let r = send(&retrying(bare, clock.clone()), stream, &req).unwrap();
            assert_eq!(r.text(), "clean", "{ctx}");
            assert_eq!(clock.sleeps().len(), 1, "{ctx}");
        }
    }
}

#[test]
fn a_stream_broken_after_output_is_not_retried() {
    for p in BOTH {
        let server = Server::start();
        server.mount(Mock::given(method("POST")).respond_with(sse(&ok_events(p, "abcdef", true))));
        let clock = ManualClock::shared();
        let mut seen = String::new();
        let e = retrying(client(p, &server, Duration::from_secs(10)), clock.clone())
            .chat_stream(&ChatRequest::simple(None, "x"), &mut |e| {
                if let StreamEvent::TextDelta { text } = e {
                    seen.push_str(text);
                }
            })
            .unwrap_err();
        assert!(
            matches!(e, LlmError::MalformedResponse { .. }),
            "{p:?}: {e}"
        );
        assert_eq!(seen, "abc", "{p:?}: the caller saw the first part once");
        assert_eq!(server.requests().len(), 1, "{p:?}: no duplicate output");
        assert!(clock.sleeps().is_empty());
    }
}

#[test]
fn invalid_structured_output_gets_one_repair_round_then_a_typed_error() {
    let schema = json!({"type": "object", "properties": {"score": {"type": "number"}},
                        "required": ["score"], "additionalProperties": false});
    for p in BOTH {
        let server = Server::start();
        // Always invalid: first not JSON at all, then JSON of the wrong shape.
        let (first, second) = match p {
            P::OpenAi => (
                ok_json(p, "Sure! Here it is: {score: high"),
                ok_json(p, "{\"score\": \"high\"}"),
            ),
            P::Anthropic => {
                let mut a = ok_json(p, "");
                a["content"] = json!([{"type": "text", "text": "I would say high."}]);
                let mut b = ok_json(p, "");
                b["content"] = json!([{"type": "tool_use", "id": "t", "name": "score", "input": {"score": "high"}}]);
                b["stop_reason"] = json!("tool_use");
                (a, b)
            }
        };
        server.mount(
            Mock::given(method("POST"))
                .respond_with(json_response(200, first))
                .up_to_n_times(1),
        );
        server.mount(Mock::given(method("POST")).respond_with(json_response(200, second)));
        let s = Schema::compile("score", &schema).unwrap();
        let m = client(p, &server, Duration::from_secs(10));
        let e = structured_detailed::<Value>(&*m, &ChatRequest::simple(None, "Rate it."), &s)
            .unwrap_err();
        assert!(
            matches!(&e, LlmError::StructuredOutput { .. }),
            "{p:?}: {e}"
        );
        let bodies = server.bodies();
        assert_eq!(bodies.len(), 2, "{p:?}: exactly one repair round");
        // The repair turn shows the model why its first answer failed.
        let repair = bodies[1]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let text = match p {
            P::OpenAi => repair["content"].as_str().unwrap().to_string(),
            P::Anthropic => repair["content"].to_string(),
        };
        assert!(text.contains("not valid JSON"), "{p:?}: {text}");
    }
}

#[test]
fn unknown_tools_and_bad_arguments_are_answered_with_errors_and_not_run() {
    for p in BOTH {
        let server = Server::start();
        let first = match p {
            P::OpenAi => json!({
                "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_ok", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"a.toml\"}"}},
                    {"id": "call_unknown", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}},
                    {"id": "call_schema", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": 7}"}},
                    {"id": "call_garbled", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": "}}
                ]}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 30}}),
            P::Anthropic => json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                "content": [
                    {"type": "tool_use", "id": "call_ok", "name": "read_file", "input": {"path": "a.toml"}},
                    {"type": "tool_use", "id": "call_unknown", "name": "rm_rf", "input": {}},
                    {"type": "tool_use", "id": "call_schema", "name": "read_file", "input": {"path": 7}},
                    {"type": "tool_use", "id": "call_garbled", "name": "read_file", "input": {"path": "b", "extra": true}}
                ],
                "stop_reason": "tool_use", "usage": {"input_tokens": 20, "output_tokens": 30}}),
        };
        server.mount(
            Mock::given(method("POST"))
                .respond_with(json_response(200, first))
                .up_to_n_times(1),
        );
        server.mount(Mock::given(method("POST")).respond_with(ok(p, false, "done")));
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let registry = ToolRegistry::new()
            .with(FnTool::new(
                "read_file",
                "Read a file.",
                json!({"type": "object", "properties": {"path": {"type": "string"}},
                       "required": ["path"], "additionalProperties": false}),
                move |args| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(json!({"path": args["path"], "text": "k = 1"}))
                },
            ))
            .unwrap();
        let m = client(p, &server, Duration::from_secs(10));
        let run = run_with_tools(&*m, &ChatRequest::simple(None, "read"), &registry, 3).unwrap();
        assert_eq!(run.response.text(), "done", "{p:?}");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{p:?}: only the valid call ran"
        );
        assert_eq!(run.calls.len(), 4);
        assert!(matches!(run.calls[0].outcome, ToolOutcome::Ok(_)), "{p:?}");
        for c in &run.calls[1..] {
            assert!(
                matches!(c.outcome, ToolOutcome::Rejected(_)),
                "{p:?}: {c:?}"
            );
        }
        // The error results go back to the model in the provider's format.
        let bodies = server.bodies();
        let msgs = bodies[1]["messages"].as_array().unwrap();
        let results: Vec<(String, String, bool)> = match p {
            P::OpenAi => msgs
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    let c = m["content"].as_str().unwrap().to_string();
                    let is_err = c.contains("error");
                    (m["tool_call_id"].as_str().unwrap().to_string(), c, is_err)
                })
                .collect(),
            P::Anthropic => msgs.last().unwrap()["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    assert_eq!(b["type"], "tool_result");
                    (
                        b["tool_use_id"].as_str().unwrap().to_string(),
                        b["content"].as_str().unwrap_or_default().to_string(),
                        b["is_error"] == true,
                    )
                })
                .collect(),
        };
        assert_eq!(results.len(), 4, "{p:?}: {results:?}");
        assert_eq!(results[0].0, "call_ok");
        assert!(!results[0].2, "{p:?}: {results:?}");
        assert!(
            results[1].1.contains("unknown tool") && results[1].1.contains("read_file"),
            "{p:?}: {results:?}"
        );
        assert!(
            results[2].1.contains("do not match its schema"),
            "{p:?}: {results:?}"
        );
        assert!(results[3].2, "{p:?}: {results:?}");
        if p == P::Anthropic {
            assert!(results[1..].iter().all(|r| r.2), "{results:?}");
        }
    }
}

#[test]
fn budgets_bind_before_the_request_is_sent() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let server = Server::start();
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "paid")));
            let clock = ManualClock::shared();
            let ledger = BudgetLedger::with_clock(
                BudgetLimits {
                    tokens: Some(400),
                    seconds: Some(60.0),
                    ..Default::default()
                },
                clock.clone(),
            );
            ledger.set_role_limits(
                "evolve",
                BudgetLimits {
                    usd: Some(0.0),
                    ..Default::default()
                },
            );
            let m = Budgeted::new(
                client(p, &server, Duration::from_secs(10)),
                ledger.clone(),
                "develop",
            );
            // Worst case (prompt + max_tokens) over the run's token budget: refused, not sent.
            let e = send(
                &m,
                stream,
                &ChatRequest::simple(None, "x").with_max_tokens(1000),
            )
            .unwrap_err();
            assert!(
                matches!(&e, LlmError::BudgetExhausted { which, scope, .. } if which == "tokens" && scope == "run"),
                "{ctx}: {e}"
            );
            assert!(
                e.to_string().contains("tokens budget of run (400)"),
                "{ctx}: {e}"
            );
            assert!(e.is_budget() && !e.is_retryable() && !e.is_provider_failure());
            assert_eq!(server.requests().len(), 0, "{ctx}");
            // A call that fits is made and charged with the provider's reported usage.
            let r = send(
                &m,
                stream,
                &ChatRequest::simple(None, "x").with_max_tokens(100),
            )
            .unwrap();
            assert_eq!(r.text(), "paid");
            let report = ledger.report();
            assert_eq!(report.run.tokens(), 15, "{ctx}");
            assert_eq!(report.roles["develop"].calls, 1);
            // A role with a zero-dollar budget on a priced model: refused.
            let evolve = Budgeted::new(
                client(p, &server, Duration::from_secs(10)),
                ledger.clone(),
                "evolve",
            );
            let e = send(
                &evolve,
                stream,
                &ChatRequest::simple(None, "x").with_max_tokens(10),
            )
            .unwrap_err();
            assert!(e.to_string().contains("usd budget of evolve"), "{ctx}: {e}");
            // The run's wall clock ran out: refused.
            clock.advance(Duration::from_secs(61));
            let e = send(
                &m,
                stream,
                &ChatRequest::simple(None, "x").with_max_tokens(10),
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("seconds budget of run"),
                "{ctx}: {e}"
            );
            assert_eq!(server.requests().len(), 1, "{ctx}");
        }
    }
}

#[test]
fn retries_stop_at_an_exhausted_budget() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST")).respond_with(json_response(500, error_body(P::OpenAi, 500))),
    );
    let ledger = BudgetLedger::with_clock(
        BudgetLimits {
            tokens: Some(5),
            ..Default::default()
        },
        ManualClock::shared(),
    );
    let clock = ManualClock::shared();
    let m = Retrying::with_clock(
        Budgeted::new(
            client(P::OpenAi, &server, Duration::from_secs(10)),
            ledger,
            "brainstorm",
        ),
        RetryPolicy::default(),
        clock.clone(),
    );
    let e = m.chat(&ChatRequest::simple(None, "x")).unwrap_err();
    assert!(e.is_budget(), "{e}");
    assert!(clock.sleeps().is_empty(), "a budget error is not retried");
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn the_response_cache_serves_repeats_without_calling_the_provider() {
    for p in BOTH {
        for stream in MODES {
            let ctx = format!("{p:?} stream={stream}");
            let dir = tempfile::tempdir().unwrap();
            let server = Server::start();
            server.mount(Mock::given(method("POST")).respond_with(ok(p, stream, "cached answer")));
            let m = CachedModel::new(client(p, &server, Duration::from_secs(10)), dir.path());
            let req = ChatRequest::simple(None, "same question")
                .with_temperature(0.0)
                .with_seed(7);
            let a = send(&m, stream, &req).unwrap();
            let b = send(&m, stream, &req).unwrap();
            assert_eq!(a, b, "{ctx}");
            assert_eq!(
                server.requests().len(),
                1,
                "{ctx}: second answer from the cache"
            );
            assert_eq!(m.stats(), (1, 1));
            // Another seed is another key.
            send(&m, stream, &req.clone().with_seed(8)).unwrap();
            assert_eq!(server.requests().len(), 2, "{ctx}");
            // A strict cache (replay of a whole run) answers what was cached and refuses the rest.
            let strict = CachedModel::strict(m.name(), dir.path());
            assert_eq!(send(&strict, stream, &req).unwrap(), a, "{ctx}");
            let e = send(&strict, stream, &req.clone().with_seed(9)).unwrap_err();
            assert!(matches!(e, LlmError::CacheMiss { .. }), "{ctx}: {e}");
        }
    }
}
