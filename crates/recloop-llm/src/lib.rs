//! Language-model layer of recloop: one chat abstraction over providers (OpenAI-compatible,
//! Anthropic, local GGUF), tools, structured output, retries, circuit breaking, budgets that
//! bind, record/replay and a scripted model for tests.
//!
//! * [`ChatModel`] — the synchronous trait every model implements (`chat`, `chat_stream`).
//! * [`structured()`] / [`structured_detailed`] — JSON answers validated against a schema, with
//!   one repair round.
//! * [`run_with_tools`] with a [`ToolRegistry`] of [`Tool`]s — the tool loop.
//! * [`LlmRouter::for_role`] — the configured model of an agent role (fallback chain, retries,
//!   circuit breaker, budgets, record/replay, cache), built from `[llm]` in `recloop.toml`.
//! * [`BudgetLedger::report`] — spend per run and role, for `budget spent` journal events.
//! * [`ScriptedModel`] — a queue of turns for deterministic tests.
//!
//! Wrappers compose: provider → [`Budgeted`] → [`CircuitBreaker`] → [`Retrying`] →
//! ([`CachedModel`]) → [`Fallback`].

pub mod anthropic;
pub mod breaker;
pub mod budget;
pub mod cache;
pub mod cassette;
pub mod clock;
pub mod error;
pub mod fetch;
#[cfg(feature = "local")]
pub mod local;
pub mod model;
pub mod openai;
pub mod ping;
pub mod prices;
pub mod retry;
pub mod router;
pub mod scripted;
pub mod structured;
pub mod tools;
pub mod types;
pub mod wire;

pub use anthropic::{AnthropicChat, AnthropicConfig};
pub use breaker::{BreakerConfig, BreakerState, BreakerStatus, CircuitBreaker};
pub use budget::{
    BudgetLedger, BudgetLimits, Budgeted, CallCost, CallEstimate, Spend, SpendReport, estimate_call,
};
pub use cache::{CachedModel, cache_key};
pub use cassette::{CassetteTransport, LlmMode, MODE_ENV};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{LlmError, Result};
pub use fetch::{SMOLLM2, fetch_model};
pub use model::{ChatModel, SharedModel, emit_response_events};
pub use openai::{OpenAiChat, OpenAiConfig};
pub use ping::{PingReport, ping};
pub use prices::{PRICE_TABLE, PRICES_VERSION, cost_usd, price_of};
pub use retry::{RetryPolicy, Retrying};
pub use router::{Fallback, LlmRouter, LlmSettings, ModelSpec, SettingsOverrides};
pub use scripted::{ScriptedModel, ScriptedTurn, estimate_text_tokens};
pub use structured::{
    Completion, DEFAULT_MAX_OUTPUT_TOKENS, LengthPolicy, Schema, Structured, complete,
    output_tokens_for, parse_json_lenient, schema_in_prompt, structured, structured_detailed,
    structured_reply, structured_with_policy, with_schema,
};
pub use tools::{
    FnTool, Tool, ToolCallRecord, ToolError, ToolOutcome, ToolRegistry, ToolRun, run_with_tools,
};
pub use types::{
    ChatRequest, ChatResponse, DEFAULT_MAX_TOKENS, JsonSchemaFormat, Message, Role, StopReason,
    StreamEvent, StructuredMode, ToolCall, ToolChoice, ToolDefinition, Usage,
};
pub use wire::{HttpTransport, Secret, SseEvent, Transport, WireRequest, WireResponse};

/// Load a local GGUF model (cargo feature `local`).
#[cfg(feature = "local")]
pub fn local_model(path: &std::path::Path, temperature: Option<f64>) -> Result<SharedModel> {
    Ok(std::sync::Arc::new(local::LocalModel::load(
        path,
        temperature,
    )?))
}

/// Load a local GGUF model: this build lacks the `local` feature, so this is a configuration
/// error naming the fix.
#[cfg(not(feature = "local"))]
pub fn local_model(path: &std::path::Path, _temperature: Option<f64>) -> Result<SharedModel> {
    Err(LlmError::Config {
        field: "llm.provider".into(),
        reason: format!(
            "provider \"local\" ({}) needs recloop built with `--features recloop-llm/local` \
             (requires cmake, clang, libclang-dev)",
            path.display()
        ),
    })
}
