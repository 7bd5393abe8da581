//! The one trait every model implements, and blanket implementations for shared handles.

use crate::error::Result;
use crate::types::{ChatRequest, ChatResponse, StreamEvent};
use std::sync::Arc;

/// A chat model: a provider client, a wrapper adding reliability or budgets, a scripted test
/// double, or a local GGUF model.
///
/// The interface is synchronous so agents can call it from plain code; HTTP providers run their
/// I/O on a private background runtime. Do not call it from inside an async task without
/// `tokio::task::spawn_blocking` (it blocks the calling thread until the answer is complete).
pub trait ChatModel: Send + Sync {
    /// A stable name for logs, budgets and cache keys, e.g. `openai:gpt-4o-mini`.
    fn name(&self) -> &str;

    /// Send one request and wait for the complete answer.
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;

    /// Send one request, reporting incremental events to `on_event` as they arrive, and return
    /// the complete answer. The last event is always [`StreamEvent::Done`].
    ///
    /// The default implementation calls [`ChatModel::chat`] and replays the answer as events.
    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        let response = self.chat(request)?;
        emit_response_events(&response, on_event);
        Ok(response)
    }
}

/// Report a complete answer as the events a stream of it would have produced.
pub fn emit_response_events(response: &ChatResponse, on_event: &mut dyn FnMut(&StreamEvent)) {
    if !response.message.content.is_empty() {
        on_event(&StreamEvent::TextDelta {
            text: response.message.content.clone(),
        });
    }
    for (index, call) in response.message.tool_calls.iter().enumerate() {
        on_event(&StreamEvent::ToolCallDelta {
            index,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments: call.arguments.to_string(),
        });
    }
    on_event(&StreamEvent::Done {
        usage: response.usage,
        stop_reason: response.stop_reason.clone(),
    });
}

/// A shared, type-erased model handle (what the router hands out).
pub type SharedModel = Arc<dyn ChatModel>;

impl<M: ChatModel + ?Sized> ChatModel for Arc<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        (**self).chat(request)
    }
    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        (**self).chat_stream(request, on_event)
    }
}

impl<M: ChatModel + ?Sized> ChatModel for Box<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        (**self).chat(request)
    }
    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        (**self).chat_stream(request, on_event)
    }
}

impl<M: ChatModel + ?Sized> ChatModel for &M {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        (**self).chat(request)
    }
    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        (**self).chat_stream(request, on_event)
    }
}
