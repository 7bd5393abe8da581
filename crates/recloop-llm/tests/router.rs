//! The router end to end: manifest section → per-role fallback chain over two mock providers,
//! budgets per role, keys from the environment, record then replay through `RECLOOP_LLM`.
//!
//! One test function only: it changes environment variables, which must not race other threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, json_response};
use recloop_llm::*;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

const ANTHROPIC_KEY: &str = "sk-ant-router-test-55555";

fn section(openai_base: &str, cassettes: &str) -> recloop_core::LlmSection {
    let text = format!(
        r#"
provider = "openai-compatible"
model = "local-llama"
base_url = "{openai_base}"
budget_tokens = 100000
cassettes = "{cassettes}"
[roles]
brainstorm = ["local-llama", "anthropic:claude-haiku-4-5"]
[role_budgets.develop]
tokens = 10
"#
    );
    toml::from_str(&text).unwrap()
}

fn anthropic_ok(text: &str) -> serde_json::Value {
    json!({"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
           "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 10, "output_tokens": 5}})
}

#[test]
fn router_fallback_budgets_keys_record_and_replay() {
    let ws = tempfile::tempdir().unwrap();
    let openai_srv = Server::start();
    openai_srv.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("GPU on fire")),
    );
    let anthropic_srv = Server::start();
    anthropic_srv.mount(
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", ANTHROPIC_KEY))
            .respond_with(json_response(200, anthropic_ok("from claude"))),
    );
    let sec = section(&format!("{}/v1", openai_srv.uri()), "tapes");

    // SAFETY: this binary has a single test; nothing else reads the environment concurrently.
    unsafe {
        std::env::remove_var("ANTHROPIC_API_KEY");
        std::env::set_var("RECLOOP_LLM", "record");
    }
    let anthropic_uri = anthropic_srv.uri();
    let build = |sec: &recloop_core::LlmSection| {
        let mut s = LlmSettings::from_section(sec, ws.path()).unwrap();
        s.base_urls
            .insert("anthropic".into(), anthropic_uri.clone());
        s.retry = RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        LlmRouter::with_clock(s, ManualClock::shared())
    };
    let router = build(&sec);
    assert_eq!(router.settings().mode, LlmMode::Record);
    assert_eq!(router.settings().cassettes, ws.path().join("tapes"));

    // No key in the environment: a clear error naming the variable.
    let err = router.for_role("brainstorm").err().unwrap();
    assert!(
        matches!(&err, LlmError::MissingKey { var } if var == "ANTHROPIC_API_KEY"),
        "{err}"
    );

    unsafe { std::env::set_var("ANTHROPIC_API_KEY", ANTHROPIC_KEY) };
    let brainstorm = router.for_role("brainstorm").unwrap();
    let req = ChatRequest::simple(None, "ideas?");
    let r = brainstorm.chat(&req).unwrap();
    assert_eq!(r.text(), "from claude");
    assert_eq!(
        openai_srv.requests().len(),
        2,
        "first model tried with one retry"
    );
    assert_eq!(anthropic_srv.requests().len(), 1);
    let report = router.ledger().report();
    assert_eq!(report.roles["brainstorm"].calls, 1);
    assert_eq!(report.roles["brainstorm"].input_tokens, 10);

    // develop has a 10-token budget: refused before any request.
    let before = openai_srv.requests().len();
    let err = router.for_role("develop").unwrap().chat(&req).unwrap_err();
    assert!(
        matches!(&err, LlmError::BudgetExhausted { which, scope, .. } if which == "tokens" && scope == "develop"),
        "{err}"
    );
    assert_eq!(openai_srv.requests().len(), before);

    // The recorded tapes hold no key; replay needs neither servers nor keys.
    let tapes = ws.path().join("tapes");
    let mut all = String::new();
    for e in std::fs::read_dir(&tapes).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(!all.contains(ANTHROPIC_KEY));
    drop(openai_srv);
    drop(anthropic_srv);
    unsafe {
        std::env::remove_var("ANTHROPIC_API_KEY");
        std::env::set_var("RECLOOP_LLM", "replay");
    }
    let replay = build(&sec);
    let r = replay.for_role("brainstorm").unwrap().chat(&req).unwrap();
    assert_eq!(r.text(), "from claude");
    let err = replay
        .for_role("brainstorm")
        .unwrap()
        .chat(&ChatRequest::simple(None, "never asked"))
        .unwrap_err();
    assert!(err.to_string().contains("never asked"), "{err}");

    unsafe { std::env::set_var("RECLOOP_LLM", "tape") };
    let err = LlmSettings::from_section(&sec, ws.path()).unwrap_err();
    assert!(err.to_string().contains("RECLOOP_LLM"), "{err}");
    unsafe { std::env::remove_var("RECLOOP_LLM") };
}
