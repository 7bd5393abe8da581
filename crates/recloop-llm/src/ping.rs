//! `recloop llm ping`: one short structured call that proves a provider works end to end.

use crate::error::Result;
use crate::model::ChatModel;
use crate::prices::{PRICES_VERSION, cost_usd};
use crate::structured::{Schema, structured_detailed};
use crate::types::{ChatRequest, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What a ping measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    /// The model that answered.
    pub model: String,
    /// Wall-clock time of the call(s), including a repair round if one was needed.
    pub latency: Duration,
    /// Tokens used.
    pub usage: Usage,
    /// Cost in USD at [`PRICES_VERSION`] prices (0 when the model has no price).
    pub usd: f64,
    /// False when the model is not in the price table.
    pub priced: bool,
    /// Version of the price table.
    pub prices_version: String,
    /// The structured answer.
    pub answer: Value,
    /// True when the first answer needed the repair round.
    pub repaired: bool,
}

/// The schema a ping answer must satisfy.
pub fn ping_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "echo": {"type": "string"}},
        "required": ["ok", "echo"],
        "additionalProperties": false
    })
}

/// The ping request.
pub fn ping_request() -> ChatRequest {
    ChatRequest::simple(
        Some("You are a health check. Answer only with JSON."),
        "Reply with the JSON object {\"ok\": true, \"echo\": \"pong\"}.",
    )
    .with_max_tokens(64)
    .with_temperature(0.0)
}

/// Send one short structured request and measure it.
pub fn ping(model: &dyn ChatModel) -> Result<PingReport> {
    let schema = Schema::compile("ping", &ping_schema())?;
    let started = Instant::now();
    let out = structured_detailed::<Value>(model, &ping_request(), &schema)?;
    let latency = started.elapsed();
    let (usd, priced) = cost_usd(
        model.name(),
        out.usage.input_tokens,
        out.usage.output_tokens,
    );
    Ok(PingReport {
        model: model.name().to_string(),
        latency,
        usage: out.usage,
        usd,
        priced,
        prices_version: PRICES_VERSION.to_string(),
        answer: out.json,
        repaired: out.repaired,
    })
}
