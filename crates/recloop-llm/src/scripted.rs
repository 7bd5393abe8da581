//! A scripted model: a queue of prepared turns, for deterministic agent tests.

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, Message, StopReason, ToolCall, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

/// One prepared answer of a [`ScriptedModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ScriptedTurn {
    /// Answer with text.
    Text {
        /// The text.
        text: String,
    },
    /// Answer with a JSON value (as the text of the answer): structured output.
    Json {
        /// The value.
        value: Value,
    },
    /// Call tools: `(name, arguments)` pairs; ids are `call_<n>` numbered from 1 per model.
    ToolCalls {
        /// The calls.
        calls: Vec<(String, Value)>,
    },
    /// Answer with this text but stop as if the output-token limit was hit
    /// (`StopReason::MaxTokens`): a cut-off answer.
    Truncated {
        /// The partial text.
        text: String,
    },
    /// Fail as a provider would with this HTTP status (429 → rate limited, 5xx → server error,
    /// 401/403 → unauthorized, else bad request).
    Error {
        /// HTTP status to imitate.
        status: u16,
        /// Message.
        message: String,
    },
}

impl ScriptedTurn {
    /// A text turn.
    pub fn text(text: impl Into<String>) -> ScriptedTurn {
        ScriptedTurn::Text { text: text.into() }
    }

    /// A structured-output turn.
    pub fn json(value: Value) -> ScriptedTurn {
        ScriptedTurn::Json { value }
    }

    /// A turn calling one tool.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> ScriptedTurn {
        ScriptedTurn::ToolCalls {
            calls: vec![(name.into(), arguments)],
        }
    }

    /// A turn cut off at the output-token limit.
    pub fn truncated(text: impl Into<String>) -> ScriptedTurn {
        ScriptedTurn::Truncated { text: text.into() }
    }

    /// A failing turn.
    pub fn error(status: u16, message: impl Into<String>) -> ScriptedTurn {
        ScriptedTurn::Error {
            status,
            message: message.into(),
        }
    }
}

struct ScriptState {
    turns: VecDeque<ScriptedTurn>,
    requests: Vec<ChatRequest>,
    next_call_id: usize,
}

/// A model that answers from a queue of [`ScriptedTurn`]s and remembers every request it got.
///
/// Usage is estimated as characters / 4 so budgets behave as with a real model. When the queue
/// is empty, calls fail with [`LlmError::ScriptExhausted`].
pub struct ScriptedModel {
    name: String,
    available: usize,
    state: Mutex<ScriptState>,
}

impl ScriptedModel {
    /// A model named `scripted` with these turns.
    pub fn new(turns: impl IntoIterator<Item = ScriptedTurn>) -> ScriptedModel {
        ScriptedModel::named("scripted", turns)
    }

    /// A model with this name and these turns.
    pub fn named(name: &str, turns: impl IntoIterator<Item = ScriptedTurn>) -> ScriptedModel {
        let turns: VecDeque<ScriptedTurn> = turns.into_iter().collect();
        ScriptedModel {
            name: name.to_string(),
            available: turns.len(),
            state: Mutex::new(ScriptState {
                turns,
                requests: Vec::new(),
                next_call_id: 1,
            }),
        }
    }

    /// Load turns from a JSON file holding an array of turns, e.g.
    /// `[{"type": "text", "text": "hi"}, {"type": "json", "value": {"ok": true}}]`.
    pub fn from_file(path: &Path) -> Result<ScriptedModel> {
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let turns: Vec<ScriptedTurn> =
            serde_json::from_str(&text).map_err(|e| LlmError::Config {
                field: path.display().to_string(),
                reason: format!(
                    "not a JSON array of scripted turns (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ),
            })?;
        Ok(ScriptedModel::named(
            &format!("scripted:{}", path.display()),
            turns,
        ))
    }

    /// Append a turn to the queue.
    pub fn push(&self, turn: ScriptedTurn) {
        if let Ok(mut s) = self.state.lock() {
            s.turns.push_back(turn);
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Turns not yet consumed.
    pub fn remaining(&self) -> usize {
        self.state.lock().map(|s| s.turns.len()).unwrap_or(0)
    }
}

/// Rough token count of a text: characters / 4, rounded up (the estimate budgets use).
pub fn estimate_text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn scripted_error(model: &str, status: u16, message: String) -> LlmError {
    let provider = model.to_string();
    match status {
        401 | 403 => LlmError::Unauthorized {
            provider,
            status,
            message,
        },
        429 => LlmError::RateLimited {
            provider,
            retry_after: None,
            message,
        },
        500..=599 => LlmError::Server {
            provider,
            status,
            retry_after: None,
            message,
        },
        _ => LlmError::BadRequest {
            provider,
            status,
            message,
        },
    }
}

impl ChatModel for ScriptedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| LlmError::Local("scripted model state poisoned".into()))?;
        state.requests.push(request.clone());
        let call = state.requests.len();
        let turn = state.turns.pop_front().ok_or(LlmError::ScriptExhausted {
            call,
            available: self.available,
        })?;
        let (message, stop_reason) = match turn {
            ScriptedTurn::Text { text } => (Message::assistant(text), StopReason::EndTurn),
            ScriptedTurn::Truncated { text } => (Message::assistant(text), StopReason::MaxTokens),
            ScriptedTurn::Json { value } => {
                (Message::assistant(value.to_string()), StopReason::EndTurn)
            }
            ScriptedTurn::ToolCalls { calls } => {
                let mut tool_calls = Vec::new();
                for (name, arguments) in calls {
                    let id = format!("call_{}", state.next_call_id);
                    state.next_call_id += 1;
                    tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments,
                    });
                }
                (
                    Message::assistant_with_tools("", tool_calls),
                    StopReason::ToolUse,
                )
            }
            ScriptedTurn::Error { status, message } => {
                return Err(scripted_error(&self.name, status, message));
            }
        };
        let prompt = serde_json::to_string(&request.messages).unwrap_or_default();
        let output = serde_json::to_string(&message).unwrap_or_default();
        Ok(ChatResponse {
            model: if request.model.is_empty() {
                self.name.clone()
            } else {
                request.model.clone()
            },
            message,
            usage: Usage {
                input_tokens: estimate_text_tokens(&prompt),
                output_tokens: estimate_text_tokens(&output),
            },
            stop_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_in_order_and_records_requests() {
        let m = ScriptedModel::new([
            ScriptedTurn::text("hello"),
            ScriptedTurn::tool_call("read_file", json!({"path": "a"})),
            ScriptedTurn::json(json!({"ok": true})),
        ]);
        let req = ChatRequest::simple(None, "hi");
        assert_eq!(m.chat(&req).unwrap().text(), "hello");
        let r = m.chat(&req).unwrap();
        assert_eq!(r.stop_reason, StopReason::ToolUse);
        assert_eq!(r.tool_calls()[0].id, "call_1");
        assert_eq!(r.tool_calls()[0].arguments, json!({"path": "a"}));
        assert_eq!(m.chat(&req).unwrap().text(), r#"{"ok":true}"#);
        let err = m.chat(&req).unwrap_err();
        assert!(matches!(
            err,
            LlmError::ScriptExhausted {
                call: 4,
                available: 3
            }
        ));
        assert_eq!(m.requests().len(), 4);
    }

    #[test]
    fn scripted_errors_are_typed() {
        let m = ScriptedModel::new([ScriptedTurn::error(429, "slow down")]);
        let err = m.chat(&ChatRequest::simple(None, "x")).unwrap_err();
        assert!(err.is_retryable());
        assert!(matches!(err, LlmError::RateLimited { .. }));
    }

    #[test]
    fn loads_turns_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("script.json");
        std::fs::write(
            &p,
            r#"[{"type":"text","text":"a"},{"type":"tool_calls","calls":[["t",{"x":1}]]}]"#,
        )
        .unwrap();
        let m = ScriptedModel::from_file(&p).unwrap();
        assert_eq!(m.remaining(), 2);
        std::fs::write(&p, r#"[{"type":"nope"}]"#).unwrap();
        let err = ScriptedModel::from_file(&p).err().unwrap().to_string();
        assert!(err.contains("script.json"), "{err}");
    }
}
