//! The HTTP layer under the providers: a request/response pair that can be sent for real
//! ([`HttpTransport`]), recorded or replayed ([`crate::cassette`]), with Server-Sent Events.

use crate::error::{LlmError, Result};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A secret value (API key) that never shows up in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself (only for building the HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One HTTP request to a provider.
#[derive(Debug, Clone)]
pub struct WireRequest {
    /// Provider name for errors (`openai`, `anthropic`, ...).
    pub provider: String,
    /// Full URL.
    pub url: String,
    /// Non-secret headers.
    pub headers: Vec<(String, String)>,
    /// Secret headers (`Authorization`, `x-api-key`): sent, never recorded or printed.
    pub secret_headers: Vec<(String, Secret)>,
    /// JSON body (POST).
    pub body: Value,
    /// True when the response is an SSE stream.
    pub stream: bool,
    /// Time limit for the whole exchange, body included.
    pub timeout: Duration,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseEvent {
    /// Event name (`message` when the server sent none).
    pub event: String,
    /// Data payload.
    pub data: String,
}

/// A provider's HTTP answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireResponse {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` header value, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// Body text (non-streaming answers and error bodies).
    #[serde(default)]
    pub body: String,
    /// SSE events (streaming answers with a 2xx status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SseEvent>,
}

/// Sends [`WireRequest`]s. HTTP error statuses are returned as responses, not errors; only
/// failures to get a response at all (connection, timeout, broken stream) are errors.
pub trait Transport: Send + Sync {
    /// Send `request`; for streams, call `on_event` for each event as it arrives (also collected
    /// in the returned response).
    fn send(
        &self,
        request: &WireRequest,
        on_event: &mut dyn FnMut(&SseEvent),
    ) -> Result<WireResponse>;
}

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("recloop-llm-http")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Transport {
            provider: "http".into(),
            message: format!("cannot start the HTTP runtime: {e}"),
        })
}

/// Real HTTP over `reqwest` (rustls), run on a private background runtime so callers stay
/// synchronous.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport with a fresh connection pool.
    pub fn new() -> Result<HttpTransport> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("recloop-llm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Transport {
                provider: "http".into(),
                message: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(HttpTransport { client })
    }
}

enum Msg {
    Event(SseEvent),
    Done(Result<WireResponse>),
}

fn map_reqwest(provider: &str, timeout: Duration, e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout {
            provider: provider.to_string(),
            after: timeout,
        }
    } else {
        // Strip the URL's query (none carries secrets here, but be strict).
        LlmError::Transport {
            provider: provider.to_string(),
            message: e.without_url().to_string(),
        }
    }
}

async fn exchange(
    client: reqwest::Client,
    req: WireRequest,
    tx: std::sync::mpsc::Sender<Msg>,
) -> Result<WireResponse> {
    let provider = req.provider.clone();
    let mut builder = client
        .post(&req.url)
        .timeout(req.timeout)
        .header("content-type", "application/json")
        .body(req.body.to_string());
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    for (k, v) in &req.secret_headers {
        builder = builder.header(k.as_str(), v.expose());
    }
    let resp = builder
        .send()
        .await
        .map_err(|e| map_reqwest(&provider, req.timeout, e))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut out = WireResponse {
        status,
        retry_after,
        body: String::new(),
        events: Vec::new(),
    };
    if req.stream && (200..300).contains(&status) && is_sse {
        let mut events = resp.bytes_stream().eventsource();
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    let e = SseEvent {
                        event: ev.event,
                        data: ev.data,
                    };
                    let _ = tx.send(Msg::Event(e.clone()));
                    out.events.push(e);
                }
                Err(eventsource_stream::EventStreamError::Transport(e)) => {
                    return Err(map_reqwest(&provider, req.timeout, e));
                }
                Err(e) => {
                    return Err(LlmError::MalformedResponse {
                        provider,
                        detail: format!("broken event stream: {e}"),
                        excerpt: String::new(),
                    });
                }
            }
        }
    } else {
        out.body = resp
            .text()
            .await
            .map_err(|e| map_reqwest(&provider, req.timeout, e))?;
    }
    Ok(out)
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: &WireRequest,
        on_event: &mut dyn FnMut(&SseEvent),
    ) -> Result<WireResponse> {
        let rt = runtime()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let client = self.client.clone();
        let req = request.clone();
        rt.spawn(async move {
            let done = tx.clone();
            let r = exchange(client, req, tx).await;
            let _ = done.send(Msg::Done(r));
        });
        for msg in rx {
            match msg {
                Msg::Event(e) => on_event(&e),
                Msg::Done(r) => return r,
            }
        }
        Err(LlmError::Transport {
            provider: request.provider.clone(),
            message: "HTTP worker stopped without an answer".into(),
        })
    }
}

/// Parse a `Retry-After` value: delay-seconds (integer or decimal) or an HTTP date (delay until
/// then from `now`; dates in the past mean no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let target: SystemTime = date.with_timezone(&chrono::Utc).into();
    Some(target.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Replace every occurrence of each secret in `text`.
pub fn scrub_text(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "[REDACTED]");
        }
    }
    out
}

/// Turn a non-2xx response into the matching typed error (message taken from the usual
/// `{"error": {"message": ...}}` body, secrets scrubbed).
pub fn error_for_status(provider: &str, resp: &WireResponse, secrets: &[Secret]) -> LlmError {
    let message = serde_json::from_str::<Value>(&resp.body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            Some(
                e.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string()),
            )
        })
        .unwrap_or_else(|| resp.body.chars().take(300).collect());
    let message = scrub_text(&message, secrets);
    let retry_after = resp
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let provider = provider.to_string();
    let status = resp.status;
    match status {
        401 | 403 => LlmError::Unauthorized {
            provider,
            status,
            message,
        },
        429 => LlmError::RateLimited {
            provider,
            retry_after,
            message,
        },
        408 | 500..=599 => LlmError::Server {
            provider,
            status,
            retry_after,
            message,
        },
        _ => LlmError::BadRequest {
            provider,
            status,
            message,
        },
    }
}

/// First characters of a body, for error messages.
pub fn excerpt(text: &str) -> String {
    text.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        // 2023-11-14T22:13:20Z is 1_700_000_000; ten seconds later:
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn statuses_map_to_typed_errors_and_scrub_keys() {
        let key = Secret::new("sk-test-1234567890");
        let resp = |status: u16, body: &str| WireResponse {
            status,
            retry_after: Some("3".into()),
            body: body.into(),
            events: vec![],
        };
        let e = error_for_status(
            "openai",
            &resp(
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-test-1234567890"}}"#,
            ),
            std::slice::from_ref(&key),
        );
        assert!(matches!(e, LlmError::Unauthorized { .. }));
        assert!(!e.to_string().contains("sk-test-1234567890"), "{e}");
        let e = error_for_status("openai", &resp(429, "{}"), &[]);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(matches!(
            error_for_status("a", &resp(529, "overloaded"), &[]),
            LlmError::Server { status: 529, .. }
        ));
        assert!(matches!(
            error_for_status("a", &resp(422, "bad"), &[]),
            LlmError::BadRequest { .. }
        ));
    }

    #[test]
    fn secrets_hide_from_debug() {
        let s = Secret::new("sk-abc");
        assert!(!format!("{s:?}").contains("sk-abc"));
    }
}
