//! Structured output: ask for JSON against a schema, parse leniently, validate, repair once.

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{
    ChatRequest, ChatResponse, JsonSchemaFormat, Message, Role, StopReason, ToolChoice, Usage,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A compiled JSON Schema.
pub struct Schema {
    name: String,
    raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("name", &self.name)
            .field("schema", &self.raw)
            .finish()
    }
}

impl Schema {
    /// Compile `schema`; `name` is used in errors and sent to providers.
    pub fn compile(name: &str, schema: &Value) -> Result<Schema> {
        let validator = jsonschema::validator_for(schema).map_err(|e| LlmError::InvalidSchema {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Schema {
            name: name.to_string(),
            raw: schema.clone(),
            validator,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema as JSON.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// `Ok` when `value` satisfies the schema, else a readable list of up to 5 violations, each
    /// with its JSON path.
    pub fn check(&self, value: &Value) -> std::result::Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Parse a model's answer as JSON, tolerating the usual wrapping: leading/trailing prose and
/// Markdown code fences. Returns the parse error of the whole text when nothing parses.
pub fn parse_json_lenient(text: &str) -> std::result::Result<Value, String> {
    let trimmed = text.trim();
    let direct = serde_json::from_str::<Value>(trimmed);
    let first_error = match direct {
        Ok(v) => return Ok(v),
        Err(e) => format!(
            "not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        ),
    };
    // ```json ... ``` fences.
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str::<Value>(body[..end].trim())
        {
            return Ok(v);
        }
    }
    // The outermost {...} or [...] span.
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (trimmed.find(open), trimmed.rfind(close))
            && s < e
            && let Ok(v) = serde_json::from_str::<Value>(&trimmed[s..=e])
        {
            return Ok(v);
        }
    }
    Err(first_error)
}

/// A validated structured answer with what it cost.
#[derive(Debug, Clone)]
pub struct Structured<T> {
    /// The parsed value.
    pub value: T,
    /// The answer as JSON.
    pub json: Value,
    /// Usage summed over every call made (length retries and the repair round included).
    pub usage: Usage,
    /// True when the first answer was invalid and the repair round fixed it.
    pub repaired: bool,
    /// Calls made: the first, length retries, the repair round and its length retries.
    pub calls: u32,
    /// The last response.
    pub response: ChatResponse,
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

fn decode<T: DeserializeOwned>(
    schema: &Schema,
    text: &str,
) -> std::result::Result<(Value, T), String> {
    let value = parse_json_lenient(text)?;
    schema
        .check(&value)
        .map_err(|e| format!("does not match the schema: {e}"))?;
    let typed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("does not match the expected shape: {e}"))?;
    Ok((value, typed))
}

/// How an answer cut off at its output-token limit (`StopReason::MaxTokens`, OpenAI's
/// `finish_reason: "length"`) is asked again: with a limit `growth` times larger, at most
/// `retries` times, never above `ceiling` (a request asking for more is lowered to it). A
/// cut-off answer is never parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPolicy {
    /// Retries after the first call (0: a cut-off answer fails at once).
    pub retries: u32,
    /// Factor the limit grows by per retry (at least 2 is used).
    pub growth: u32,
    /// Largest output-token limit ever requested.
    pub ceiling: u32,
}

/// Default ceiling of output tokens for length retries (what current hosted models accept).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 16_384;

impl Default for LengthPolicy {
    fn default() -> Self {
        LengthPolicy {
            retries: 2,
            growth: 2,
            ceiling: DEFAULT_MAX_OUTPUT_TOKENS,
        }
    }
}

impl LengthPolicy {
    /// The default policy with another ceiling (`[llm] max_output_tokens`).
    pub fn with_ceiling(ceiling: u32) -> LengthPolicy {
        LengthPolicy {
            ceiling: ceiling.max(1),
            ..LengthPolicy::default()
        }
    }
}

/// A complete answer (not cut off at its output-token limit) and what getting it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The complete answer.
    pub response: ChatResponse,
    /// Usage summed over every attempt (cut-off ones included: they were paid for).
    pub usage: Usage,
    /// Calls made (1 when the first answer was complete).
    pub attempts: u32,
    /// The output-token limit of the call that completed.
    pub max_tokens: u32,
}

/// Call `model` and return a complete answer: an answer that stopped at its output-token limit
/// is discarded and asked again with a larger limit, as `policy` allows; when even the largest
/// limit cuts it off, [`LlmError::Truncated`].
pub fn complete(
    model: &dyn ChatModel,
    request: &ChatRequest,
    policy: &LengthPolicy,
) -> Result<Completion> {
    let mut req = request.clone();
    let mut limit = req.max_tokens_or_default().min(policy.ceiling.max(1));
    let mut usage = Usage::default();
    let mut attempts = 0;
    loop {
        req.max_tokens = Some(limit);
        let response = model.chat(&req)?;
        attempts += 1;
        usage.add(response.usage);
        if response.stop_reason != StopReason::MaxTokens {
            return Ok(Completion {
                response,
                usage,
                attempts,
                max_tokens: limit,
            });
        }
        if attempts > policy.retries || limit >= policy.ceiling {
            return Err(LlmError::Truncated {
                model: model.name().to_string(),
                max_tokens: limit,
                attempts,
                usage,
            });
        }
        let next = limit
            .saturating_mul(policy.growth.max(2))
            .min(policy.ceiling);
        tracing::warn!(
            model = model.name(),
            max_tokens = limit,
            next,
            "answer cut off at the output-token limit; asking again with a larger limit"
        );
        limit = next;
    }
}

/// Output tokens an answer satisfying `schema` needs, with a margin: estimated from the schema
/// (strings ~40 tokens unless `maxLength` says otherwise, numbers and enums a few tokens, free
/// values 100), the outermost array holding `batch` items (within its `minItems`/`maxItems`),
/// nested arrays 2; plus a quarter and 128. At least 256. An answer that needs more is retried
/// with a larger limit ([`complete`]).
pub fn output_tokens_for(schema: &Value, batch: usize) -> u32 {
    let estimate = estimate_tokens(schema, Some(batch.max(1)), 0);
    let with_margin = estimate.saturating_mul(5) / 4 + 128;
    u32::try_from(with_margin).unwrap_or(u32::MAX).max(256)
}

fn estimate_tokens(schema: &Value, batch: Option<usize>, depth: usize) -> u64 {
    const FREE_VALUE: u64 = 100;
    if depth > 12 {
        return FREE_VALUE;
    }
    let Some(obj) = schema.as_object() else {
        return FREE_VALUE;
    };
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = obj.get(key).and_then(Value::as_array) {
            return options
                .iter()
                .map(|o| estimate_tokens(o, batch, depth + 1))
                .max()
                .unwrap_or(FREE_VALUE);
        }
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| crate::scripted::estimate_text_tokens(&v.to_string()) + 1)
            .max()
            .unwrap_or(4);
    }
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "",
    };
    match kind {
        "object" => {
            let props = obj.get("properties").and_then(Value::as_object);
            2 + props.map_or(FREE_VALUE, |props| {
                props
                    .iter()
                    .map(|(k, v)| {
                        crate::scripted::estimate_text_tokens(k)
                            + 3
                            + estimate_tokens(v, batch, depth + 1)
                    })
                    .sum()
            })
        }
        "array" => {
            let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let max = obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let wanted = batch.map_or(2, |b| b as u64);
            let count = wanted.max(min).min(max).max(1);
            let item = obj
                .get("items")
                .map_or(FREE_VALUE, |i| estimate_tokens(i, None, depth + 1));
            2 + count * (item + 1)
        }
        "string" => obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .map_or(40, |n| n.div_ceil(3) + 2),
        "number" | "integer" | "boolean" | "null" => 4,
        _ => FREE_VALUE,
    }
}

/// The instruction that carries a schema in the prompt (for providers without a JSON mode).
pub fn schema_instruction(format: &JsonSchemaFormat) -> String {
    format!(
        "Answer with only a JSON value, no prose and no code fences, that satisfies this JSON \
         Schema ({}):\n{}",
        format.name, format.schema
    )
}

/// `request` for a provider without a JSON mode: `response_format` removed and the schema
/// written into the system prompt instead (appended to the first system message, or a new one
/// at the start). Requests without `response_format` are returned unchanged.
pub fn schema_in_prompt(request: &ChatRequest) -> ChatRequest {
    let mut req = request.clone();
    let Some(format) = req.response_format.take() else {
        return req;
    };
    let instruction = schema_instruction(&format);
    match req.messages.iter_mut().find(|m| m.role == Role::System) {
        Some(system) => {
            system.content.push_str("\n\n");
            system.content.push_str(&instruction);
        }
        None => req.messages.insert(0, Message::system(instruction)),
    }
    req
}

/// `request` asking for `schema` as its answer (`response_format` set; providers map it to
/// their native mechanism, or to the prompt when they declare no JSON mode). When the request
/// sets no output-token limit, one sized to the schema is set ([`output_tokens_for`], one item).
pub fn with_schema(request: &ChatRequest, schema: &Schema) -> ChatRequest {
    let mut req = request.clone();
    req.response_format = Some(JsonSchemaFormat {
        name: schema.name().to_string(),
        schema: schema.raw().clone(),
        strict: false,
    });
    if req.max_tokens.is_none() {
        req.max_tokens = Some(output_tokens_for(schema.raw(), 1));
    }
    req
}

/// Ask `model` for an answer satisfying `schema`, parsed into `T`.
///
/// The request is sent with `response_format` set (see [`with_schema`]); an answer cut off at
/// its output-token limit is asked again with a larger limit ([`complete`], default
/// [`LengthPolicy`]) and never parsed. An answer that does not parse or validate gets exactly
/// one repair round ([`structured_reply`]). A second failure is [`LlmError::StructuredOutput`].
pub fn structured_detailed<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    schema: &Schema,
) -> Result<Structured<T>> {
    structured_with_policy(model, request, schema, &LengthPolicy::default())
}

/// [`structured_detailed`] with an explicit [`LengthPolicy`].
pub fn structured_with_policy<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    schema: &Schema,
    policy: &LengthPolicy,
) -> Result<Structured<T>> {
    let req = with_schema(request, schema);
    let first = complete(model, &req, policy)?;
    structured_reply(model, &req, first, schema, policy)
}

/// Decode `answer`, the complete reply of `model` to `request`, against `schema`; when it does
/// not parse or validate, run the one repair round: the invalid answer and the validation error
/// are shown to the model, which answers again (with `response_format` set and tool use off).
///
/// This is how a tool loop ends in a structured answer: the loop's last reply goes here.
pub fn structured_reply<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    answer: Completion,
    schema: &Schema,
    policy: &LengthPolicy,
) -> Result<Structured<T>> {
    let mut usage = answer.usage;
    let mut calls = answer.attempts;
    let first = answer.response;
    let error = match decode::<T>(schema, first.text()) {
        Ok((json, value)) => {
            return Ok(Structured {
                value,
                json,
                usage,
                repaired: false,
                calls,
                response: first,
            });
        }
        Err(e) => e,
    };
    tracing::debug!(model = model.name(), %error, "structured output invalid; repairing");
    let mut req = with_schema(request, schema);
    req.max_tokens = Some(req.max_tokens_or_default().max(answer.max_tokens));
    if !req.tools.is_empty() {
        req.tool_choice = ToolChoice::None;
    }
    req.messages.push(Message::assistant(first.text()));
    req.messages.push(Message::user(format!(
        "Your answer was rejected: it {error}. Answer again with only a JSON value that satisfies \
         the schema {}, with no prose and no code fences.",
        schema.raw()
    )));
    let second = complete(model, &req, policy)?;
    usage.add(second.usage);
    calls += second.attempts;
    match decode::<T>(schema, second.response.text()) {
        Ok((json, value)) => Ok(Structured {
            value,
            json,
            usage,
            repaired: true,
            calls,
            response: second.response,
        }),
        Err(reason) => Err(LlmError::StructuredOutput {
            reason,
            excerpt: excerpt(second.response.text()),
        }),
    }
}

/// Ask `model` for an answer satisfying the JSON Schema `schema`, parsed into `T`; see
/// [`structured_detailed`]. The schema's `title` (if any) names it, else `answer`.
pub fn structured<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    schema: &Value,
) -> Result<T> {
    let name = schema
        .get("title")
        .and_then(Value::as_str)
        .map(sanitize_name)
        .unwrap_or_else(|| "answer".to_string());
    let compiled = Schema::compile(&name, schema)?;
    Ok(structured_detailed::<T>(model, request, &compiled)?.value)
}

/// Make a name acceptable to providers (`[a-zA-Z0-9_-]`, at most 64 characters).
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "answer".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{ScriptedModel, ScriptedTurn};
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Verdict {
        ok: bool,
        score: f64,
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "score": {"type": "number", "minimum": 0}},
            "required": ["ok", "score"],
            "additionalProperties": false
        })
    }

    #[test]
    fn lenient_parse_handles_fences_and_prose() {
        assert_eq!(parse_json_lenient(" {\"a\":1} ").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_json_lenient("Sure!\n```json\n{\"a\": 2}\n```\nDone.").unwrap(),
            json!({"a": 2})
        );
        assert_eq!(
            parse_json_lenient("The answer is {\"a\": 3}.").unwrap(),
            json!({"a": 3})
        );
        let err = parse_json_lenient("{\"a\": ").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn valid_answer_needs_no_repair() {
        let m = ScriptedModel::new([ScriptedTurn::json(json!({"ok": true, "score": 0.5}))]);
        let v: Verdict = structured(&m, &ChatRequest::simple(None, "judge"), &schema()).unwrap();
        assert_eq!(
            v,
            Verdict {
                ok: true,
                score: 0.5
            }
        );
        let sent = &m.requests()[0];
        assert_eq!(
            sent.response_format.as_ref().unwrap().schema,
            schema(),
            "schema must be sent with the request"
        );
    }

    #[test]
    fn malformed_answer_is_repaired_once_with_the_error_shown() {
        let m = ScriptedModel::new([
            ScriptedTurn::text("{\"ok\": true, \"score\": -1"),
            ScriptedTurn::json(json!({"ok": false, "score": 2.0})),
        ]);
        let s = Schema::compile("verdict", &schema()).unwrap();
        let out =
            structured_detailed::<Verdict>(&m, &ChatRequest::simple(None, "judge"), &s).unwrap();
        assert!(out.repaired);
        assert!(!out.value.ok);
        let repair = &m.requests()[1];
        let last = repair.messages.last().unwrap();
        assert!(last.content.contains("not valid JSON"), "{}", last.content);
    }

    #[test]
    fn schema_violation_twice_is_a_typed_error() {
        let m = ScriptedModel::new([
            ScriptedTurn::json(json!({"ok": true, "score": -1})),
            ScriptedTurn::json(json!({"ok": "yes", "score": 1})),
        ]);
        let err =
            structured::<Verdict>(&m, &ChatRequest::simple(None, "judge"), &schema()).unwrap_err();
        match &err {
            LlmError::StructuredOutput { reason, .. } => {
                assert!(reason.contains("/ok"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let repair_prompt = m.requests()[1].messages.last().unwrap().content.clone();
        assert!(repair_prompt.contains("/score"), "{repair_prompt}");
        assert_eq!(m.remaining(), 0);
    }

    #[test]
    fn cut_off_answers_are_retried_larger_and_bounded() {
        let m = ScriptedModel::new([
            ScriptedTurn::truncated("{\"ok\": true"),
            ScriptedTurn::json(json!({"ok": true, "score": 1.0})),
        ]);
        let req = ChatRequest::simple(None, "judge").with_max_tokens(100);
        let s = Schema::compile("verdict", &schema()).unwrap();
        let out = structured_detailed::<Verdict>(&m, &req, &s).unwrap();
        assert!(!out.repaired);
        assert_eq!(out.calls, 2);
        let limits: Vec<_> = m.requests().iter().map(|r| r.max_tokens).collect();
        assert_eq!(limits, [Some(100), Some(200)]);

        let m = ScriptedModel::new((0..10).map(|_| ScriptedTurn::truncated("{")));
        let policy = LengthPolicy {
            retries: 2,
            growth: 3,
            ceiling: 10_000,
        };
        let err = complete(&m, &req, &policy).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::Truncated {
                    max_tokens: 900,
                    attempts: 3,
                    usage: Usage {
                        output_tokens: 1..,
                        ..
                    },
                    ..
                }
            ),
            "the cut-off calls' tokens are reported: {err:?}"
        );
        assert_eq!(m.remaining(), 7, "bounded: the first call and two retries");
    }

    #[test]
    fn output_limit_grows_with_the_contract_and_the_batch() {
        let batch = json!({"type": "object", "properties": {"items": {"type": "array",
            "maxItems": 8, "items": schema()}}});
        let one = output_tokens_for(&batch, 1);
        let five = output_tokens_for(&batch, 5);
        assert!(five > one, "{five} <= {one}");
        assert_eq!(output_tokens_for(&batch, 8), output_tokens_for(&batch, 50));
        let bigger = json!({"type": "object", "properties": {"items": {"type": "array",
            "items": {"type": "object", "properties": {"a": {"type": "string"},
            "b": {"type": "string"}, "c": {"type": "string"}}}}}});
        assert!(output_tokens_for(&bigger, 5) > five);
        assert!(output_tokens_for(&json!({}), 1) >= 256);
    }

    #[test]
    fn schema_in_prompt_moves_the_schema_into_the_system_message() {
        let req = ChatRequest::simple(Some("Judge."), "x").with_schema("verdict", schema());
        let p = schema_in_prompt(&req);
        assert!(p.response_format.is_none());
        assert!(p.messages[0].content.starts_with("Judge."));
        assert!(p.messages[0].content.contains(&schema().to_string()));
        let bare = schema_in_prompt(&ChatRequest::simple(None, "x").with_schema("v", schema()));
        assert_eq!(bare.messages[0].role, Role::System);
        assert_eq!(bare.messages.len(), 2);
        let plain = ChatRequest::simple(None, "x");
        assert_eq!(schema_in_prompt(&plain), plain);
    }

    #[test]
    fn invalid_schema_is_reported() {
        let err = Schema::compile("bad", &json!({"type": 12})).unwrap_err();
        assert!(err.to_string().contains("bad"));
    }
}
