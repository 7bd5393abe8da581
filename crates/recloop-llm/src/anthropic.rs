//! Anthropic Messages (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`).
//!
//! Structured output uses a forced tool: the schema becomes the input schema of a tool named
//! after it, `tool_choice` forces that tool, and its input is returned as the answer text.
//! Schemas that are not objects are wrapped as `{"value": schema}` and unwrapped again.

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::openai::parse_arguments;
use crate::structured::sanitize_name;
use crate::types::{
    ChatRequest, ChatResponse, Message, Role, StopReason, StreamEvent, ToolCall, ToolChoice, Usage,
};
use crate::wire::{Secret, SseEvent, Transport, WireRequest, error_for_status, excerpt};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Default base URL of Anthropic.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The API version header value sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Configuration of an Anthropic client.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Base URL (with or without `/v1`).
    pub base_url: String,
    /// Model sent when the request names none.
    pub model: String,
    /// The key (`x-api-key`).
    pub api_key: Option<Secret>,
    /// Default temperature when the request sets none.
    pub temperature: Option<f64>,
    /// Time limit per call.
    pub timeout: Duration,
}

impl AnthropicConfig {
    /// Anthropic's API with `model`.
    pub fn new(model: &str, api_key: Option<Secret>) -> AnthropicConfig {
        AnthropicConfig {
            base_url: ANTHROPIC_BASE_URL.to_string(),
            model: model.to_string(),
            api_key,
            temperature: None,
            timeout: Duration::from_secs(120),
        }
    }
}

/// An Anthropic chat model.
pub struct AnthropicChat {
    config: AnthropicConfig,
    transport: Arc<dyn Transport>,
    name: String,
}

const PROVIDER: &str = "anthropic";

/// How the structured-output tool was set up for one request.
struct SchemaTool {
    name: String,
    wrapped: bool,
}

fn schema_tool(request: &ChatRequest) -> Option<SchemaTool> {
    request.response_format.as_ref().map(|f| SchemaTool {
        name: sanitize_name(&f.name),
        wrapped: f.schema.get("type").and_then(Value::as_str) != Some("object"),
    })
}

impl AnthropicChat {
    /// A client speaking through `transport`.
    pub fn new(config: AnthropicConfig, transport: Arc<dyn Transport>) -> AnthropicChat {
        let name = format!("anthropic:{}", config.model);
        AnthropicChat {
            config,
            transport,
            name,
        }
    }

    fn secrets(&self) -> Vec<Secret> {
        self.config.api_key.iter().cloned().collect()
    }

    fn requested_model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        if request.model.is_empty() {
            &self.config.model
        } else {
            &request.model
        }
    }

    /// The JSON body for `request`.
    pub fn encode_body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(self.requested_model(request)));
        body.insert("max_tokens".into(), json!(request.max_tokens_or_default()));
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        if !system.is_empty() {
            body.insert("system".into(), json!(system.join("\n\n")));
        }
        body.insert(
            "messages".into(),
            Value::Array(encode_messages(&request.messages)),
        );
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        let mut choice = match &request.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        if let (Some(f), Some(st)) = (&request.response_format, schema_tool(request)) {
            let input_schema = if st.wrapped {
                json!({"type": "object", "properties": {"value": f.schema}, "required": ["value"]})
            } else {
                f.schema.clone()
            };
            tools.push(json!({
                "name": st.name,
                "description": "Give the final answer as the input of this tool; it must satisfy the input schema.",
                "input_schema": input_schema,
            }));
            choice = json!({"type": "tool", "name": st.name});
        }
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(tools));
            body.insert("tool_choice".into(), choice);
        }
        if let Some(t) = request.temperature.or(self.config.temperature) {
            body.insert("temperature".into(), json!(t));
        }
        if stream {
            body.insert("stream".into(), json!(true));
        }
        Value::Object(body)
    }

    fn wire(&self, request: &ChatRequest, stream: bool) -> WireRequest {
        let base = self.config.base_url.trim_end_matches('/');
        let url = if base.ends_with("/v1") {
            format!("{base}/messages")
        } else {
            format!("{base}/v1/messages")
        };
        WireRequest {
            provider: PROVIDER.into(),
            url,
            headers: vec![("anthropic-version".into(), ANTHROPIC_VERSION.into())],
            secret_headers: self
                .config
                .api_key
                .iter()
                .map(|k| ("x-api-key".to_string(), k.clone()))
                .collect(),
            body: self.encode_body(request, stream),
            stream,
            timeout: self.config.timeout,
        }
    }

    /// Decode a non-streaming response body.
    pub fn decode_body(&self, body: &str, request: &ChatRequest) -> Result<ChatResponse> {
        let malformed = |detail: String| LlmError::MalformedResponse {
            provider: PROVIDER.into(),
            detail,
            excerpt: excerpt(body),
        };
        let v: Value =
            serde_json::from_str(body).map_err(|e| malformed(format!("body is not JSON: {e}")))?;
        let blocks = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no content array".into()))?;
        let mut text = String::new();
        let mut calls = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => calls.push(ToolCall {
                    id: b
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| malformed("tool_use without name".into()))?
                        .to_string(),
                    arguments: b.get("input").cloned().unwrap_or_else(|| json!({})),
                }),
                _ => {}
            }
        }
        let usage = parse_usage(v.get("usage"));
        let stop = map_stop(v.get("stop_reason").and_then(Value::as_str));
        Ok(finish_response(
            request,
            v.get("model")
                .and_then(Value::as_str)
                .unwrap_or(self.requested_model(request)),
            text,
            calls,
            usage,
            stop,
        ))
    }
}

/// Apply the structured-output convention: the forced tool's input becomes the answer text.
fn finish_response(
    request: &ChatRequest,
    model: &str,
    mut text: String,
    mut calls: Vec<ToolCall>,
    usage: Usage,
    mut stop: StopReason,
) -> ChatResponse {
    if let Some(st) = schema_tool(request)
        && let Some(pos) = calls.iter().position(|c| c.name == st.name)
    {
        let call = calls.remove(pos);
        let value = if st.wrapped {
            call.arguments
                .get("value")
                .cloned()
                .unwrap_or(call.arguments)
        } else {
            call.arguments
        };
        text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if calls.is_empty() && stop == StopReason::ToolUse {
            stop = StopReason::EndTurn;
        }
    }
    ChatResponse {
        model: model.to_string(),
        message: Message::assistant_with_tools(text, calls),
        usage,
        stop_reason: stop,
    }
}

fn parse_usage(u: Option<&Value>) -> Usage {
    let get = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        input_tokens: get("input_tokens")
            + get("cache_creation_input_tokens")
            + get("cache_read_input_tokens"),
        output_tokens: get("output_tokens"),
    }
}

fn map_stop(reason: Option<&str>) -> StopReason {
    match reason {
        None | Some("end_turn") => StopReason::EndTurn,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("tool_use") => StopReason::ToolUse,
        Some("stop_sequence") => StopReason::StopSequence,
        Some("refusal") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Messages as Anthropic wants them: no system messages (they go to `system`), tool results as
/// `tool_result` blocks in user turns, consecutive turns of one role merged.
fn encode_messages(messages: &[Message]) -> Vec<Value> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, blocks): (&'static str, Vec<Value>) = match m.role {
            Role::System => continue,
            Role::User => ("user", vec![json!({"type": "text", "text": m.content})]),
            Role::Tool => {
                let mut b = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                });
                if m.is_error {
                    b["is_error"] = json!(true);
                }
                ("user", vec![b])
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input = match &c.arguments {
                        Value::Object(_) => c.arguments.clone(),
                        _ => json!({}),
                    };
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": ""}));
                }
                ("assistant", blocks)
            }
        };
        match out.last_mut() {
            Some((r, existing)) if *r == role => existing.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

#[derive(Default)]
struct Block {
    kind: String,
    id: String,
    name: String,
    json: String,
    tool_index: usize,
}

/// Folds Anthropic stream events into events and a final response.
struct StreamState<'r> {
    request: &'r ChatRequest,
    schema_tool: Option<String>,
    model: Option<String>,
    text: String,
    blocks: Vec<(usize, Block)>,
    tools_seen: usize,
    usage: Usage,
    stop: Option<String>,
    done: bool,
    error: Option<LlmError>,
}

impl<'r> StreamState<'r> {
    fn new(request: &'r ChatRequest) -> StreamState<'r> {
        StreamState {
            request,
            schema_tool: schema_tool(request).map(|s| s.name),
            model: None,
            text: String::new(),
            blocks: Vec::new(),
            tools_seen: 0,
            usage: Usage::default(),
            stop: None,
            done: false,
            error: None,
        }
    }

    fn block(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn feed(&mut self, ev: &SseEvent, on_event: &mut dyn FnMut(&StreamEvent)) {
        if self.error.is_some() || self.done {
            return;
        }
        let data = ev.data.trim();
        if data.is_empty() {
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(LlmError::MalformedResponse {
                    provider: PROVIDER.into(),
                    detail: format!("stream event is not JSON: {e}"),
                    excerpt: excerpt(data),
                });
                return;
            }
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(ev.event.as_str())
            .to_string();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match kind.as_str() {
            "message_start" => {
                let m = v.get("message");
                self.model = m
                    .and_then(|m| m.get("model"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.usage = parse_usage(m.and_then(|m| m.get("usage")));
            }
            "content_block_start" => {
                let cb = v.get("content_block").cloned().unwrap_or(Value::Null);
                let mut b = Block {
                    kind: cb.get("type").and_then(Value::as_str).unwrap_or("").into(),
                    id: cb.get("id").and_then(Value::as_str).unwrap_or("").into(),
                    name: cb.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    ..Block::default()
                };
                if b.kind == "text"
                    && let Some(t) = cb.get("text").and_then(Value::as_str)
                    && !t.is_empty()
                {
                    self.text.push_str(t);
                    on_event(&StreamEvent::TextDelta { text: t.into() });
                }
                if b.kind == "tool_use" && Some(&b.name) != self.schema_tool.as_ref() {
                    b.tool_index = self.tools_seen;
                    self.tools_seen += 1;
                    on_event(&StreamEvent::ToolCallDelta {
                        index: b.tool_index,
                        id: Some(b.id.clone()),
                        name: Some(b.name.clone()),
                        arguments: String::new(),
                    });
                }
                self.blocks.push((index, b));
            }
            "content_block_delta" => {
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        self.text.push_str(t);
                        on_event(&StreamEvent::TextDelta { text: t.into() });
                    }
                    Some("input_json_delta") => {
                        let part = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let schema_tool = self.schema_tool.clone();
                        if let Some(b) = self.block(index) {
                            b.json.push_str(&part);
                            if Some(&b.name) == schema_tool.as_ref() {
                                on_event(&StreamEvent::TextDelta { text: part });
                            } else {
                                let ev = StreamEvent::ToolCallDelta {
                                    index: b.tool_index,
                                    id: None,
                                    name: None,
                                    arguments: part,
                                };
                                on_event(&ev);
                            }
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(s.to_string());
                }
                if let Some(o) = v
                    .get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64)
                {
                    self.usage.output_tokens = o;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let e = v.get("error").cloned().unwrap_or(Value::Null);
                let etype = e.get("type").and_then(Value::as_str).unwrap_or("");
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.error = Some(match etype {
                    "rate_limit_error" => LlmError::RateLimited {
                        provider: PROVIDER.into(),
                        retry_after: None,
                        message,
                    },
                    "overloaded_error" => LlmError::Server {
                        provider: PROVIDER.into(),
                        status: 529,
                        retry_after: None,
                        message,
                    },
                    _ => LlmError::Server {
                        provider: PROVIDER.into(),
                        status: 500,
                        retry_after: None,
                        message: format!("{etype}: {message}"),
                    },
                });
            }
            _ => {} // ping, content_block_stop, unknown future events
        }
    }

    fn finish(
        self,
        requested_model: &str,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.done {
            return Err(LlmError::MalformedResponse {
                provider: PROVIDER.into(),
                detail: "stream ended before message_stop".into(),
                excerpt: excerpt(&self.text),
            });
        }
        let calls = self
            .blocks
            .into_iter()
            .filter(|(_, b)| b.kind == "tool_use")
            .map(|(_, b)| ToolCall {
                id: b.id,
                name: b.name,
                arguments: parse_arguments(&b.json),
            })
            .collect();
        let r = finish_response(
            self.request,
            self.model.as_deref().unwrap_or(requested_model),
            self.text,
            calls,
            self.usage,
            map_stop(self.stop.as_deref()),
        );
        on_event(&StreamEvent::Done {
            usage: r.usage,
            stop_reason: r.stop_reason.clone(),
        });
        Ok(r)
    }
}

impl ChatModel for AnthropicChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let wire = self.wire(request, false);
        let resp = self.transport.send(&wire, &mut |_| {})?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for_status(PROVIDER, &resp, &self.secrets()));
        }
        self.decode_body(&resp.body, request)
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        let wire = self.wire(request, true);
        let mut state = StreamState::new(request);
        let resp = self
            .transport
            .send(&wire, &mut |ev| state.feed(ev, on_event))?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for_status(PROVIDER, &resp, &self.secrets()));
        }
        if resp.events.is_empty() && !resp.body.is_empty() {
            let r = self.decode_body(&resp.body, request)?;
            crate::model::emit_response_events(&r, on_event);
            return Ok(r);
        }
        state.finish(self.requested_model(request), on_event)
    }
}
