//! The provider-neutral chat vocabulary: messages, tools, requests, responses, stream events.
//!
//! Every provider translates these types to and from its own wire format; agents only ever see
//! these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or agent) asking.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering one `ToolCall` by id.
    Tool,
}

/// A tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id; the matching tool result must carry it.
    pub id: String,
    /// Name of the tool.
    pub name: String,
    /// Arguments as JSON (providers that send a string are parsed; unparsable text is kept as a
    /// JSON string so the tool loop can answer with an error).
    pub arguments: Value,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text content (may be empty for an assistant turn that only calls tools).
    #[serde(default)]
    pub content: String,
    /// Tool calls made in this assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: true when the content describes an error instead of a result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl Message {
    fn plain(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::plain(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::plain(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::plain(Role::Assistant, content)
    }

    /// An assistant message that calls tools.
    pub fn assistant_with_tools(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Message {
        Message {
            tool_calls,
            ..Message::plain(Role::Assistant, content)
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            tool_call_id: Some(call_id.into()),
            ..Message::plain(Role::Tool, content)
        }
    }

    /// An error answer to the tool call `call_id` (the tool was not run or failed).
    pub fn tool_error(call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            is_error: true,
            ..Message::tool_result(call_id, content)
        }
    }
}

/// A tool the model may call, described by a JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Name (letters, digits, `_`, `-`).
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// How the model may use the tools offered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "name")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// A JSON Schema the answer must satisfy (structured output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// Short name of the schema (`[a-zA-Z0-9_-]`), sent to providers that want one.
    pub name: String,
    /// The schema itself.
    pub schema: Value,
    /// Ask the provider for strict schema adherence where supported.
    #[serde(default)]
    pub strict: bool,
}

/// How a provider honours [`ChatRequest::response_format`]: declared by its configuration
/// (`[llm] structured_output`), never guessed from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredMode {
    /// The provider enforces the schema natively (OpenAI `response_format: json_schema`,
    /// Anthropic's forced tool, a local model's grammar).
    #[default]
    JsonSchema,
    /// The provider has no JSON mode: no `response_format` is sent; the schema is written into
    /// the prompt and the repair round catches what the model gets wrong.
    Prompt,
}

impl StructuredMode {
    /// The manifest spelling (`json_schema` | `prompt`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StructuredMode::JsonSchema => "json_schema",
            StructuredMode::Prompt => "prompt",
        }
    }
}

impl std::str::FromStr for StructuredMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json_schema" => Ok(StructuredMode::JsonSchema),
            "prompt" => Ok(StructuredMode::Prompt),
            other => Err(format!(
                "{other:?} is not one of \"json_schema\", \"prompt\""
            )),
        }
    }
}

/// One request to a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name; empty means "the client's configured model".
    #[serde(default)]
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools offered to the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// How tools may be used.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// When set, the answer must be JSON valid against this schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<JsonSchemaFormat>,
    /// Upper bound on generated tokens; `None` uses [`DEFAULT_MAX_TOKENS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Sampling seed where the provider supports one (also part of the response-cache key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Output-token limit used when a request does not set `max_tokens` (Anthropic requires one;
/// budgets use it as the worst-case output size).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

impl ChatRequest {
    /// A request with these messages and everything else default.
    pub fn new(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: String::new(),
            messages,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            response_format: None,
            max_tokens: None,
            temperature: None,
            seed: None,
        }
    }

    /// A request with an optional system prompt and one user message.
    pub fn simple(system: Option<&str>, user: &str) -> ChatRequest {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::system(s));
        }
        messages.push(Message::user(user));
        ChatRequest::new(messages)
    }

    /// Builder: set the output-token limit.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> ChatRequest {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Builder: set the model.
    pub fn with_model(mut self, model: impl Into<String>) -> ChatRequest {
        self.model = model.into();
        self
    }

    /// Builder: offer tools.
    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> ChatRequest {
        self.tools = tools;
        self
    }

    /// Builder: require JSON output valid against `schema`.
    pub fn with_schema(mut self, name: &str, schema: Value) -> ChatRequest {
        self.response_format = Some(JsonSchemaFormat {
            name: name.to_string(),
            schema,
            strict: false,
        });
        self
    }

    /// Builder: set the seed.
    pub fn with_seed(mut self, seed: u64) -> ChatRequest {
        self.seed = Some(seed);
        self
    }

    /// Builder: set the temperature.
    pub fn with_temperature(mut self, temperature: f64) -> ChatRequest {
        self.temperature = Some(temperature);
        self
    }

    /// The effective output-token limit.
    pub fn max_tokens_or_default(&self) -> u32 {
        self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)
    }
}

/// Tokens consumed by one call (or summed over many).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Add another usage to this one.
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end of the answer.
    #[default]
    EndTurn,
    /// The output-token limit was hit.
    MaxTokens,
    /// The model wants tool results.
    ToolUse,
    /// A stop sequence matched.
    StopSequence,
    /// The provider filtered the content.
    ContentFilter,
    /// Anything else, verbatim.
    Other(String),
}

/// The answer of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Model that answered (as reported by the provider, else as requested).
    pub model: String,
    /// The assistant message (text and/or tool calls).
    pub message: Message,
    /// Token usage of this call.
    pub usage: Usage,
    /// Why generation stopped.
    pub stop_reason: StopReason,
}

impl ChatResponse {
    /// The text of the answer.
    pub fn text(&self) -> &str {
        &self.message.content
    }

    /// The tool calls of the answer.
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.message.tool_calls
    }
}

/// An incremental event of a streamed answer (what a UI or a journal tails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum StreamEvent {
    /// More answer text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A piece of a tool call; `id` and `name` arrive with the first piece of each call.
    ToolCallDelta {
        /// Position of the call within the answer.
        index: usize,
        /// Call id, when known.
        id: Option<String>,
        /// Tool name, when known.
        name: Option<String>,
        /// More argument JSON text.
        arguments: String,
    },
    /// The answer is complete.
    Done {
        /// Token usage of the call.
        usage: Usage,
        /// Why generation stopped.
        stop_reason: StopReason,
    },
}
