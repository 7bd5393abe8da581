//! OpenAI Chat Completions (`POST {base_url}/chat/completions`), for OpenAI itself and every
//! compatible server (vLLM, llama.cpp server, Ollama, LM Studio, OpenRouter).

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{
    ChatRequest, ChatResponse, Message, Role, StopReason, StreamEvent, StructuredMode, ToolCall,
    ToolChoice, Usage,
};
use crate::wire::{Secret, SseEvent, Transport, WireRequest, error_for_status, excerpt};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Default base URL of OpenAI.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Configuration of an OpenAI-compatible client.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    /// Model sent when the request names none.
    pub model: String,
    /// Bearer key (optional for local servers).
    pub api_key: Option<Secret>,
    /// True for api.openai.com: sends `max_completion_tokens`; compatible servers get
    /// `max_tokens`.
    pub official: bool,
    /// Default temperature when the request sets none.
    pub temperature: Option<f64>,
    /// Time limit per call.
    pub timeout: Duration,
    /// Name used in errors and logs.
    pub provider: String,
    /// Whether the server honours `response_format: json_schema` (OpenAI does; a compatible
    /// server only when declared): with [`StructuredMode::Prompt`] the schema goes into the
    /// prompt and no `response_format` is sent.
    pub structured: StructuredMode,
}

impl OpenAiConfig {
    /// OpenAI itself with `model`.
    pub fn openai(model: &str, api_key: Option<Secret>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: OPENAI_BASE_URL.to_string(),
            model: model.to_string(),
            api_key,
            official: true,
            temperature: None,
            timeout: Duration::from_secs(120),
            provider: "openai".into(),
            structured: StructuredMode::JsonSchema,
        }
    }

    /// A compatible server at `base_url`; structured output through the prompt until its JSON
    /// Schema support is declared (`structured`).
    pub fn compatible(base_url: &str, model: &str, api_key: Option<Secret>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            official: false,
            provider: "openai-compatible".into(),
            structured: StructuredMode::Prompt,
            ..OpenAiConfig::openai(model, api_key)
        }
    }
}

/// An OpenAI-compatible chat model.
pub struct OpenAiChat {
    config: OpenAiConfig,
    transport: Arc<dyn Transport>,
    name: String,
}

impl OpenAiChat {
    /// A client speaking through `transport`.
    pub fn new(config: OpenAiConfig, transport: Arc<dyn Transport>) -> OpenAiChat {
        let name = format!("{}:{}", config.provider, config.model);
        OpenAiChat {
            config,
            transport,
            name,
        }
    }

    fn secrets(&self) -> Vec<Secret> {
        self.config.api_key.iter().cloned().collect()
    }

    /// The JSON body for `request`.
    pub fn encode_body(&self, request: &ChatRequest, stream: bool) -> Value {
        let prompted;
        let request = match (self.config.structured, &request.response_format) {
            (StructuredMode::Prompt, Some(_)) => {
                prompted = crate::structured::schema_in_prompt(request);
                &prompted
            }
            _ => request,
        };
        let mut body = Map::new();
        let model = if request.model.is_empty() {
            &self.config.model
        } else {
            &request.model
        };
        body.insert("model".into(), json!(model));
        body.insert(
            "messages".into(),
            Value::Array(request.messages.iter().map(encode_message).collect()),
        );
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
            let choice = match &request.tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            };
            body.insert("tool_choice".into(), choice);
        }
        if let Some(f) = &request.response_format {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {
                    "name": crate::structured::sanitize_name(&f.name),
                    "schema": f.schema, "strict": f.strict}}),
            );
        }
        let max_key = if self.config.official {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(max_key.into(), json!(request.max_tokens_or_default()));
        if let Some(t) = request.temperature.or(self.config.temperature) {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(seed) = request.seed {
            body.insert("seed".into(), json!(seed));
        }
        if stream {
            body.insert("stream".into(), json!(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(body)
    }

    fn wire(&self, request: &ChatRequest, stream: bool) -> WireRequest {
        WireRequest {
            provider: self.config.provider.clone(),
            url: format!("{}/chat/completions", self.config.base_url),
            headers: Vec::new(),
            secret_headers: self
                .config
                .api_key
                .iter()
                .map(|k| {
                    (
                        "authorization".to_string(),
                        Secret::new(format!("Bearer {}", k.expose())),
                    )
                })
                .collect(),
            body: self.encode_body(request, stream),
            stream,
            timeout: self.config.timeout,
        }
    }

    fn malformed(&self, detail: impl Into<String>, body: &str) -> LlmError {
        LlmError::MalformedResponse {
            provider: self.config.provider.clone(),
            detail: detail.into(),
            excerpt: excerpt(body),
        }
    }

    /// Decode a non-streaming response body.
    pub fn decode_body(&self, body: &str, requested_model: &str) -> Result<ChatResponse> {
        let v: Value = serde_json::from_str(body)
            .map_err(|e| self.malformed(format!("body is not JSON: {e}"), body))?;
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| self.malformed("no choices[0]", body))?;
        let msg = choice
            .get("message")
            .ok_or_else(|| self.malformed("no choices[0].message", body))?;
        let content = msg
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut tool_calls = Vec::new();
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                let f = c
                    .get("function")
                    .ok_or_else(|| self.malformed("tool call without function", body))?;
                let name = f
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.malformed("tool call without name", body))?;
                let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                tool_calls.push(ToolCall {
                    id: id.to_string(),
                    name: name.to_string(),
                    arguments: parse_arguments(args),
                });
            }
        }
        let stop_reason = map_finish(choice.get("finish_reason").and_then(Value::as_str));
        Ok(ChatResponse {
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(requested_model)
                .to_string(),
            message: Message::assistant_with_tools(content, tool_calls),
            usage: parse_usage(v.get("usage")),
            stop_reason,
        })
    }

    fn requested_model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        if request.model.is_empty() {
            &self.config.model
        } else {
            &request.model
        }
    }
}

/// Tool arguments arrive as a JSON string; empty means `{}`, unparsable text stays a string.
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn parse_usage(u: Option<&Value>) -> Usage {
    let get = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        input_tokens: get("prompt_tokens"),
        output_tokens: get("completion_tokens"),
    }
}

fn map_finish(reason: Option<&str>) -> StopReason {
    match reason {
        None | Some("stop") => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

fn encode_message(m: &Message) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Assistant => {
            let mut o = Map::new();
            o.insert("role".into(), json!("assistant"));
            o.insert(
                "content".into(),
                if m.content.is_empty() && !m.tool_calls.is_empty() {
                    Value::Null
                } else {
                    json!(m.content)
                },
            );
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let args = match &c.arguments {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": args}})
                    })
                    .collect();
                o.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(o)
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
            "content": m.content,
        }),
    }
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Folds `chat.completion.chunk` events into events and a final response.
#[derive(Default)]
struct StreamState {
    model: Option<String>,
    text: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
    error: Option<LlmError>,
}

impl StreamState {
    fn feed(&mut self, provider: &str, ev: &SseEvent, on_event: &mut dyn FnMut(&StreamEvent)) {
        if self.error.is_some() || self.done {
            return;
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(LlmError::MalformedResponse {
                    provider: provider.to_string(),
                    detail: format!("stream chunk is not JSON: {e}"),
                    excerpt: excerpt(data),
                });
                return;
            }
        };
        if let Some(err) = chunk.get("error") {
            self.error = Some(LlmError::Server {
                provider: provider.to_string(),
                status: 500,
                retry_after: None,
                message: format!("error inside stream: {err}"),
            });
            return;
        }
        if let Some(m) = chunk.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(parse_usage(Some(u)));
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(t) = delta.get("content").and_then(Value::as_str)
                && !t.is_empty()
            {
                self.text.push_str(t);
                on_event(&StreamEvent::TextDelta {
                    text: t.to_string(),
                });
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for c in calls {
                    let index = c
                        .get("index")
                        .and_then(Value::as_u64)
                        .map(|i| i as usize)
                        .unwrap_or(self.calls.len().saturating_sub(1));
                    while self.calls.len() <= index {
                        self.calls.push(PartialCall::default());
                    }
                    let id = c.get("id").and_then(Value::as_str).map(str::to_string);
                    let f = c.get("function");
                    let name = f
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let args = f
                        .and_then(|f| f.get("arguments"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let slot = &mut self.calls[index];
                    if let Some(id) = &id {
                        slot.id = id.clone();
                    }
                    if let Some(n) = &name {
                        slot.name.push_str(n);
                    }
                    slot.arguments.push_str(&args);
                    on_event(&StreamEvent::ToolCallDelta {
                        index,
                        id,
                        name,
                        arguments: args,
                    });
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
    }

    fn finish(
        self,
        provider: &str,
        requested_model: &str,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.done && self.finish.is_none() {
            return Err(LlmError::MalformedResponse {
                provider: provider.to_string(),
                detail: "stream ended before a finish_reason or [DONE]".into(),
                excerpt: excerpt(&self.text),
            });
        }
        let usage = self.usage.unwrap_or_default();
        let stop_reason = map_finish(self.finish.as_deref());
        let tool_calls = self
            .calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: parse_arguments(&c.arguments),
            })
            .collect();
        on_event(&StreamEvent::Done {
            usage,
            stop_reason: stop_reason.clone(),
        });
        Ok(ChatResponse {
            model: self.model.unwrap_or_else(|| requested_model.to_string()),
            message: Message::assistant_with_tools(self.text, tool_calls),
            usage,
            stop_reason,
        })
    }
}

impl ChatModel for OpenAiChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let wire = self.wire(request, false);
        let resp = self.transport.send(&wire, &mut |_| {})?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for_status(
                &self.config.provider,
                &resp,
                &self.secrets(),
            ));
        }
        self.decode_body(&resp.body, self.requested_model(request))
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        let wire = self.wire(request, true);
        let mut state = StreamState::default();
        let provider = self.config.provider.clone();
        let resp = self
            .transport
            .send(&wire, &mut |ev| state.feed(&provider, ev, on_event))?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for_status(&provider, &resp, &self.secrets()));
        }
        if resp.events.is_empty() && !resp.body.is_empty() {
            // The server ignored `stream: true` and answered in one piece.
            let r = self.decode_body(&resp.body, self.requested_model(request))?;
            crate::model::emit_response_events(&r, on_event);
            return Ok(r);
        }
        state.finish(&provider, self.requested_model(request), on_event)
    }
}
