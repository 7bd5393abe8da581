//! Shared helpers for the mock-server tests.
#![allow(dead_code)]

use recloop_llm::{HttpTransport, Transport};
use serde_json::Value;
use std::sync::Arc;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A mock server with its own runtime (our client is synchronous and blocks the caller).
pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub mock: MockServer,
}

impl Server {
    pub fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mock = rt.block_on(MockServer::start());
        Server { rt, mock }
    }

    pub fn uri(&self) -> String {
        self.mock.uri()
    }

    pub fn mount(&self, m: Mock) {
        self.rt.block_on(m.mount(&self.mock));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.mock.received_requests())
            .unwrap_or_default()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

pub fn http() -> Arc<dyn Transport> {
    Arc::new(HttpTransport::new().unwrap())
}

/// An SSE body from `(event name, data)` pairs (`None`: no event line).
pub fn sse(events: &[(Option<&str>, String)]) -> ResponseTemplate {
    let mut body = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            body.push_str(&format!("event: {n}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

pub fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}
