//! Record/replay: cassettes are written scrubbed, replay needs no network, unrecorded requests
//! fail with the request shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, http, json_response, sse};
use recloop_llm::cassette::NamedSecret;
use recloop_llm::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const KEY: &str = "sk-live-SECRET-987654321";

fn secrets() -> Vec<NamedSecret> {
    vec![NamedSecret {
        var: "OPENAI_API_KEY".into(),
        value: Secret::new(KEY),
    }]
}

fn openai(base: &str, key: Option<&str>, transport: Arc<dyn Transport>) -> OpenAiChat {
    OpenAiChat::new(
        OpenAiConfig::compatible(base, "gpt-4o-mini", key.map(Secret::new)),
        transport,
    )
}

fn completion(text: &str) -> Value {
    json!({"id": "x", "model": "gpt-4o-mini", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
}

fn all_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        s.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    s
}

#[test]
fn record_then_replay_without_network_with_secrets_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let req = ChatRequest::simple(Some("sys"), "What is 2+2?").with_seed(1);
    let stream_req = ChatRequest::simple(None, "stream please");
    let (plain, streamed) = {
        let server = Server::start();
        // The server echoes the key in its answer; the cassette must not keep it.
        server.mount(
            Mock::given(method("POST"))
                .and(wiremock::matchers::body_partial_json(json!({"stream": true})))
                .respond_with(sse(&[
                    (
                        None,
                        json!({"choices": [{"index": 0, "delta": {"content": "str"}, "finish_reason": null}]}).to_string(),
                    ),
                    (
                        None,
                        json!({"choices": [{"index": 0, "delta": {"content": "eamed"}, "finish_reason": "stop"}]}).to_string(),
                    ),
                    (None, "[DONE]".into()),
                ])),
        );
        server.mount(
            Mock::given(method("POST"))
                .respond_with(json_response(200, completion(&format!("4 (key {KEY})")))),
        );
        let base = format!("{}/v1", server.uri());
        let rec = Arc::new(CassetteTransport::record(dir.path(), http(), secrets()));
        let m = openai(&base, Some(KEY), rec);
        let plain = m.chat(&req).unwrap();
        assert!(plain.text().contains(KEY), "live answer is untouched");
        let streamed = m.chat_stream(&stream_req, &mut |_| {}).unwrap();
        (plain, streamed)
    }; // server gone
    let text = all_text(dir.path());
    assert!(!text.contains(KEY), "cassettes must not hold the key");
    assert!(!text.to_ascii_lowercase().contains("authorization"));
    assert!(text.contains("[REDACTED]"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    // Replay: another host and port (the server is gone), no key at all.
    let replay = Arc::new(CassetteTransport::replay(dir.path()));
    let m = openai("http://127.0.0.1:9/v1", None, replay);
    let again = m.chat(&req).unwrap();
    assert_eq!(again.text(), plain.text().replace(KEY, "[REDACTED]"));
    assert_eq!(again.usage, plain.usage);
    let mut events = Vec::new();
    let s = m
        .chat_stream(&stream_req, &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(s.text(), streamed.text());
    assert_eq!(s.text(), "streamed");
    assert_eq!(events.len(), 3, "two text deltas and done: {events:?}");

    // Key order in the request does not matter (normalised JSON); content does.
    let err = m
        .chat(&ChatRequest::simple(Some("sys"), "What is 3+3?").with_seed(1))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LlmError::Unrecorded { .. }));
    assert!(msg.contains("What is 3+3?"), "{msg}");
    assert!(msg.contains("/v1/chat/completions"), "{msg}");
    assert!(msg.contains("RECLOOP_LLM=record"), "{msg}");
}

#[test]
fn repeated_requests_replay_in_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let req = ChatRequest::simple(None, "flaky");
    {
        let server = Server::start();
        server.mount(
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
                .up_to_n_times(1),
        );
        server
            .mount(Mock::given(method("POST")).respond_with(json_response(200, completion("ok"))));
        let rec = Arc::new(CassetteTransport::record(dir.path(), http(), vec![]));
        let m = Retrying::with_clock(
            openai(&format!("{}/v1", server.uri()), None, rec),
            RetryPolicy::default(),
            ManualClock::shared(),
        );
        assert_eq!(m.chat(&req).unwrap().text(), "ok");
    }
    let clock = ManualClock::shared();
    let m = Retrying::with_clock(
        openai(
            "http://127.0.0.1:9/v1",
            None,
            Arc::new(CassetteTransport::replay(dir.path())),
        ),
        RetryPolicy::default(),
        clock.clone(),
    );
    assert_eq!(m.chat(&req).unwrap().text(), "ok");
    assert_eq!(clock.sleeps().len(), 1, "the recorded 503 replays too");
    // Past the last recording, the last one repeats.
    assert_eq!(m.chat(&req).unwrap().text(), "ok");
}

#[test]
fn refuses_to_write_a_cassette_that_would_contain_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    server.mount(Mock::given(method("POST")).respond_with(json_response(200, completion("ok"))));
    // A gateway URL with the key in its path: the path is recorded, so the write is refused.
    let base = format!("{}/{KEY}/v1", server.uri());
    let rec = Arc::new(CassetteTransport::record(dir.path(), http(), secrets()));
    let err = openai(&base, Some(KEY), rec)
        .chat(&ChatRequest::simple(None, "x"))
        .unwrap_err();
    assert!(matches!(err, LlmError::SecretInCassette { .. }), "{err}");
    assert!(err.to_string().contains("OPENAI_API_KEY"));
    assert!(!err.to_string().contains(KEY));
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}
