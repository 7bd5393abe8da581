//! Tools the model may call, a registry that validates calls, and the tool loop.

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::structured::{LengthPolicy, Schema};
use crate::types::{ChatRequest, ChatResponse, Message, ToolCall, ToolDefinition, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a tool failed; the message is shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl From<String> for ToolError {
    fn from(s: String) -> ToolError {
        ToolError(s)
    }
}

impl From<&str> for ToolError {
    fn from(s: &str) -> ToolError {
        ToolError(s.to_string())
    }
}

/// Something the model can ask us to do.
pub trait Tool: Send + Sync {
    /// Unique name (`[a-zA-Z0-9_-]`).
    fn name(&self) -> &str;
    /// What the tool does, for the model.
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn schema(&self) -> Value;
    /// Run the tool; arguments were already validated against [`Tool::schema`].
    fn call(&self, args: Value) -> std::result::Result<Value, ToolError>;
}

type ToolFn = dyn Fn(Value) -> std::result::Result<Value, ToolError> + Send + Sync;

/// A tool made from a closure.
pub struct FnTool {
    name: String,
    description: String,
    schema: Value,
    f: Box<ToolFn>,
}

impl FnTool {
    /// A tool named `name` running `f`.
    pub fn new(
        name: &str,
        description: &str,
        schema: Value,
        f: impl Fn(Value) -> std::result::Result<Value, ToolError> + Send + Sync + 'static,
    ) -> FnTool {
        FnTool {
            name: name.to_string(),
            description: description.to_string(),
            schema,
            f: Box::new(f),
        }
    }
}

impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn schema(&self) -> Value {
        self.schema.clone()
    }
    fn call(&self, args: Value) -> std::result::Result<Value, ToolError> {
        (self.f)(args)
    }
}

/// What happened to one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum ToolOutcome {
    /// The tool ran and returned this value.
    Ok(Value),
    /// The tool ran and failed with this message.
    Failed(String),
    /// The call was refused without running anything (unknown tool or invalid arguments).
    Rejected(String),
}

impl ToolOutcome {
    /// The text sent back to the model and whether it is an error.
    pub fn to_message_content(&self) -> (String, bool) {
        match self {
            ToolOutcome::Ok(Value::String(s)) => (s.clone(), false),
            ToolOutcome::Ok(v) => (v.to_string(), false),
            ToolOutcome::Failed(m) => (format!("error: {m}"), true),
            ToolOutcome::Rejected(m) => (format!("error: {m}"), true),
        }
    }
}

/// Registered tools with their compiled argument schemas.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, (Arc<dyn Tool>, Schema)>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// Add a tool; fails on a duplicate name or an invalid schema.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<()> {
        let name = tool.name().to_string();
        if self.tools.contains_key(&name) {
            return Err(LlmError::Config {
                field: format!("tool {name}"),
                reason: "registered twice".into(),
            });
        }
        let schema = Schema::compile(&name, &tool.schema())?;
        self.tools.insert(name, (tool, schema));
        Ok(())
    }

    /// Builder form of [`ToolRegistry::register`].
    pub fn with(mut self, tool: impl Tool + 'static) -> Result<ToolRegistry> {
        self.register(Arc::new(tool))?;
        Ok(self)
    }

    /// Names of the registered tools, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    /// Definitions to send with a request.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools
            .values()
            .map(|(t, s)| ToolDefinition {
                name: t.name().to_string(),
                description: t.description().to_string(),
                parameters: s.raw().clone(),
            })
            .collect()
    }

    /// Validate and run one call. Unknown tools and invalid arguments are rejected without
    /// running anything.
    pub fn execute(&self, call: &ToolCall) -> ToolOutcome {
        let Some((tool, schema)) = self.tools.get(&call.name) else {
            return ToolOutcome::Rejected(format!(
                "unknown tool {:?}; available tools: {}",
                call.name,
                self.names().join(", ")
            ));
        };
        if let Value::String(raw) = &call.arguments {
            return ToolOutcome::Rejected(format!(
                "arguments of {} are not a JSON object: {:?}",
                call.name,
                raw.chars().take(200).collect::<String>()
            ));
        }
        if let Err(e) = schema.check(&call.arguments) {
            return ToolOutcome::Rejected(format!(
                "arguments of {} do not match its schema: {e}",
                call.name
            ));
        }
        match tool.call(call.arguments.clone()) {
            Ok(v) => ToolOutcome::Ok(v),
            Err(e) => ToolOutcome::Failed(e.0),
        }
    }
}

/// One tool call of a tool loop and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Turn (1-based) in which the model made the call.
    pub turn: usize,
    /// The call.
    pub call: ToolCall,
    /// What happened.
    pub outcome: ToolOutcome,
}

/// The result of [`run_with_tools`].
#[derive(Debug, Clone)]
pub struct ToolRun {
    /// The final answer (no more tool calls).
    pub response: ChatResponse,
    /// The whole conversation, including tool results and the final answer.
    pub messages: Vec<Message>,
    /// Every tool call with its outcome, in order.
    pub calls: Vec<ToolCallRecord>,
    /// Usage summed over all turns.
    pub usage: Usage,
    /// Model calls made.
    pub turns: usize,
}

/// Let the model call the registry's tools until it answers without tool calls, for at most
/// `max_turns` model calls. The registry's definitions are added to the request's tools.
/// Unknown tools and arguments failing a tool's schema are answered with an error result and not
/// executed; tool failures are reported to the model as error results too.
pub fn run_with_tools(
    model: &dyn ChatModel,
    request: &ChatRequest,
    registry: &ToolRegistry,
    max_turns: usize,
) -> Result<ToolRun> {
    let mut req = request.clone();
    for def in registry.definitions() {
        if !req.tools.iter().any(|t| t.name == def.name) {
            req.tools.push(def);
        }
    }
    let mut usage = Usage::default();
    let mut calls = Vec::new();
    for turn in 1..=max_turns {
        // An answer cut off at its output-token limit is asked again with a larger limit
        // (truncated tool arguments are never run).
        let done = crate::structured::complete(model, &req, &LengthPolicy::default())?;
        usage.add(done.usage);
        let response = done.response;
        req.messages.push(response.message.clone());
        if response.message.tool_calls.is_empty() {
            return Ok(ToolRun {
                response,
                messages: req.messages,
                calls,
                usage,
                turns: turn,
            });
        }
        for call in &response.message.tool_calls {
            let outcome = registry.execute(call);
            let (content, is_error) = outcome.to_message_content();
            tracing::debug!(tool = %call.name, is_error, "tool call");
            req.messages.push(if is_error {
                Message::tool_error(&call.id, content)
            } else {
                Message::tool_result(&call.id, content)
            });
            calls.push(ToolCallRecord {
                turn,
                call: call.clone(),
                outcome,
            });
        }
    }
    Err(LlmError::MaxTurns { max_turns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{ScriptedModel, ScriptedTurn};
    use crate::types::Role;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn adder(counter: Arc<AtomicUsize>) -> FnTool {
        FnTool::new(
            "add",
            "Add two integers.",
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
            move |args| {
                counter.fetch_add(1, Ordering::SeqCst);
                let a = args["a"].as_i64().ok_or("a missing")?;
                let b = args["b"].as_i64().ok_or("b missing")?;
                if a < 0 {
                    return Err("negative numbers are not supported".into());
                }
                Ok(json!(a + b))
            },
        )
    }

    #[test]
    fn tool_loop_runs_valid_calls_and_rejects_bad_ones() {
        let counter = Arc::new(AtomicUsize::new(0));
        let registry = ToolRegistry::new().with(adder(counter.clone())).unwrap();
        let model = ScriptedModel::new([
            ScriptedTurn::tool_call("add", json!({"a": 2, "b": 3})),
            ScriptedTurn::tool_call("mul", json!({"a": 2, "b": 3})),
            ScriptedTurn::tool_call("add", json!({"a": "two", "b": 3})),
            ScriptedTurn::tool_call("add", json!({"a": -1, "b": 3})),
            ScriptedTurn::text("5"),
        ]);
        let run = run_with_tools(
            &model,
            &ChatRequest::simple(Some("sys"), "2+3?"),
            &registry,
            8,
        )
        .unwrap();
        assert_eq!(run.response.text(), "5");
        assert_eq!(run.turns, 5);
        assert_eq!(
            counter.load(Ordering::SeqCst),
            2,
            "only schema-valid calls run"
        );
        assert_eq!(run.calls[0].outcome, ToolOutcome::Ok(json!(5)));
        assert!(
            matches!(&run.calls[1].outcome, ToolOutcome::Rejected(m) if m.contains("unknown tool \"mul\"") && m.contains("add"))
        );
        assert!(
            matches!(&run.calls[2].outcome, ToolOutcome::Rejected(m) if m.contains("/a")),
            "{:?}",
            run.calls[2].outcome
        );
        assert!(matches!(&run.calls[3].outcome, ToolOutcome::Failed(m) if m.contains("negative")));
        // The model saw the tool definitions and the results, linked by id.
        let last_req = model.requests().pop().unwrap();
        assert_eq!(last_req.tools.len(), 1);
        let tool_msgs: Vec<&Message> = last_req
            .messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .collect();
        assert_eq!(tool_msgs.len(), 4);
        assert_eq!(tool_msgs[0].tool_call_id.as_deref(), Some("call_1"));
        assert!(!tool_msgs[0].is_error);
        assert!(tool_msgs[1].is_error);
    }

    #[test]
    fn tool_loop_stops_at_max_turns() {
        let registry = ToolRegistry::new()
            .with(adder(Arc::new(AtomicUsize::new(0))))
            .unwrap();
        let model = ScriptedModel::new(
            (0..5).map(|_| ScriptedTurn::tool_call("add", json!({"a": 1, "b": 1}))),
        );
        let err =
            run_with_tools(&model, &ChatRequest::simple(None, "loop"), &registry, 3).unwrap_err();
        assert!(matches!(err, LlmError::MaxTurns { max_turns: 3 }));
    }

    #[test]
    fn duplicate_and_invalid_tools_are_refused() {
        let c = Arc::new(AtomicUsize::new(0));
        let reg = ToolRegistry::new().with(adder(c.clone())).unwrap();
        assert!(reg.with(adder(c)).is_err());
        let bad = FnTool::new("bad", "", json!({"type": 5}), |_| Ok(Value::Null));
        assert!(ToolRegistry::new().with(bad).is_err());
    }
}
