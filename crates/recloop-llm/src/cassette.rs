//! Record/replay of provider HTTP exchanges as cassettes (JSON files in a directory).
//!
//! A cassette holds the request (URL path and JSON body, normalised: keys sorted, secrets
//! scrubbed) and the response (status, `Retry-After`, body or SSE events). Its file name is
//! `<provider>-<hash of the request>-<n>.json`, where `n` counts identical requests in one
//! process (so a 500 followed by a 200 for the same request replays in order; past the last
//! recording the last one repeats). Headers are never recorded, so `Authorization` and
//! `x-api-key` cannot leak; every key value is also scrubbed from bodies, and a cassette that
//! would still contain a key is refused.
//!
//! The mode comes from `RECLOOP_LLM`: `live` (default), `record`, or `replay` (no network; an
//! unrecorded request is an error naming the request).

use crate::error::{LlmError, Result};
use crate::wire::{Secret, SseEvent, Transport, WireRequest, WireResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Environment variable selecting the mode.
pub const MODE_ENV: &str = "RECLOOP_LLM";

/// How provider calls are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmMode {
    /// Real network calls, nothing recorded.
    Live,
    /// Real network calls, each exchange written to a cassette.
    Record,
    /// No network: answers come from cassettes only.
    Replay,
}

impl LlmMode {
    /// Parse `live` | `record` | `replay` (empty means live).
    pub fn parse(value: &str) -> Result<LlmMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "live" => Ok(LlmMode::Live),
            "record" => Ok(LlmMode::Record),
            "replay" => Ok(LlmMode::Replay),
            other => Err(LlmError::Config {
                field: MODE_ENV.into(),
                reason: format!("{other:?} is not one of \"live\", \"record\", \"replay\""),
            }),
        }
    }

    /// The mode from `RECLOOP_LLM`.
    pub fn from_env() -> Result<LlmMode> {
        LlmMode::parse(&std::env::var(MODE_ENV).unwrap_or_default())
    }
}

/// Sort object keys recursively so equal JSON has one spelling.
pub fn normalize_json(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), normalize_json(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize_json).collect()),
        other => other.clone(),
    }
}

/// Replace every secret inside every string (and key) of `value`.
pub fn scrub_json(value: &Value, secrets: &[Secret]) -> Value {
    let scrub = |s: &str| crate::wire::scrub_text(s, secrets);
    match value {
        Value::String(s) => Value::String(scrub(s)),
        Value::Array(a) => Value::Array(a.iter().map(|v| scrub_json(v, secrets)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (scrub(k), scrub_json(v, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The path of a URL (`https://host:port/v1/x?q` → `/v1/x`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/");
    path.split('?').next().unwrap_or(path).to_string()
}

/// The recorded request of a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CassetteRequest {
    /// HTTP method.
    pub method: String,
    /// URL path (host and port are not part of the match).
    pub path: String,
    /// Normalised, scrubbed JSON body.
    pub body: Value,
}

/// One cassette file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    /// Format version (1).
    pub recloop_cassette: u32,
    /// Provider name.
    pub provider: String,
    /// The request.
    pub request: CassetteRequest,
    /// The response.
    pub response: WireResponse,
}

/// Where a key lives: the variable name (for messages) and its value.
#[derive(Debug, Clone)]
pub struct NamedSecret {
    /// Environment variable.
    pub var: String,
    /// Its value.
    pub value: Secret,
}

/// Fail when `text` contains any of the secrets.
pub fn ensure_no_secret(path: &Path, text: &str, secrets: &[NamedSecret]) -> Result<()> {
    for s in secrets {
        let v = s.value.expose();
        if !v.is_empty() && text.contains(v) {
            return Err(LlmError::SecretInCassette {
                path: path.to_path_buf(),
                var: s.var.clone(),
            });
        }
    }
    Ok(())
}

/// A transport that records to or replays from a cassette directory.
pub struct CassetteTransport {
    dir: PathBuf,
    inner: Option<Arc<dyn Transport>>,
    secrets: Vec<NamedSecret>,
    counters: Mutex<HashMap<String, usize>>,
}

impl CassetteTransport {
    /// Record exchanges made through `inner` into `dir`, scrubbing `secrets`.
    pub fn record(
        dir: &Path,
        inner: Arc<dyn Transport>,
        secrets: Vec<NamedSecret>,
    ) -> CassetteTransport {
        CassetteTransport {
            dir: dir.to_path_buf(),
            inner: Some(inner),
            secrets,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Replay from `dir` without network.
    pub fn replay(dir: &Path) -> CassetteTransport {
        CassetteTransport {
            dir: dir.to_path_buf(),
            inner: None,
            secrets: Vec::new(),
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn plain_secrets(&self) -> Vec<Secret> {
        self.secrets.iter().map(|s| s.value.clone()).collect()
    }

    fn cassette_request(&self, request: &WireRequest) -> CassetteRequest {
        CassetteRequest {
            method: "POST".into(),
            path: url_path(&request.url),
            body: normalize_json(&scrub_json(&request.body, &self.plain_secrets())),
        }
    }

    fn key(provider: &str, req: &CassetteRequest) -> String {
        let mut h = Sha256::new();
        h.update(req.method.as_bytes());
        h.update(b" ");
        h.update(req.path.as_bytes());
        h.update(b"\n");
        h.update(req.body.to_string().as_bytes());
        let digest = hex::encode(h.finalize());
        format!("{}-{}", sanitize(provider), &digest[..16])
    }

    fn next_index(&self, key: &str) -> usize {
        let Ok(mut c) = self.counters.lock() else {
            return 0;
        };
        let n = c.entry(key.to_string()).or_insert(0);
        let i = *n;
        *n += 1;
        i
    }

    fn path_for(&self, key: &str, n: usize) -> PathBuf {
        self.dir.join(format!("{key}-{n}.json"))
    }

    fn write(&self, path: &Path, cassette: &Cassette) -> Result<()> {
        let text = serde_json::to_string_pretty(cassette).map_err(|e| LlmError::Cassette {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        ensure_no_secret(path, &text, &self.secrets)?;
        std::fs::create_dir_all(&self.dir).map_err(|source| LlmError::Io {
            path: self.dir.clone(),
            source,
        })?;
        std::fs::write(path, text).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn read(path: &Path) -> Result<Cassette> {
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| LlmError::Cassette {
            path: path.to_path_buf(),
            reason: format!("not a cassette (line {}): {e}", e.line()),
        })
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Transport for CassetteTransport {
    fn send(
        &self,
        request: &WireRequest,
        on_event: &mut dyn FnMut(&SseEvent),
    ) -> Result<WireResponse> {
        let creq = self.cassette_request(request);
        let key = Self::key(&request.provider, &creq);
        let n = self.next_index(&key);
        match &self.inner {
            Some(inner) => {
                let resp = inner.send(request, on_event)?;
                let secrets = self.plain_secrets();
                let scrubbed = WireResponse {
                    status: resp.status,
                    retry_after: resp.retry_after.clone(),
                    body: crate::wire::scrub_text(&resp.body, &secrets),
                    events: resp
                        .events
                        .iter()
                        .map(|e| SseEvent {
                            event: e.event.clone(),
                            data: crate::wire::scrub_text(&e.data, &secrets),
                        })
                        .collect(),
                };
                let cassette = Cassette {
                    recloop_cassette: 1,
                    provider: request.provider.clone(),
                    request: creq,
                    response: scrubbed,
                };
                self.write(&self.path_for(&key, n), &cassette)?;
                Ok(resp)
            }
            None => {
                // Replay: the n-th recording, or the last one when fewer were recorded.
                let mut index = n;
                let path = loop {
                    let p = self.path_for(&key, index);
                    if p.exists() {
                        break Some(p);
                    }
                    if index == 0 {
                        break None;
                    }
                    index -= 1;
                };
                let Some(path) = path else {
                    let body = creq.body.to_string();
                    let shown: String = body.chars().take(600).collect();
                    return Err(LlmError::Unrecorded {
                        method: creq.method,
                        url: request.url.clone(),
                        expected: self.path_for(&key, 0),
                        body: if body.len() > shown.len() {
                            format!("{shown}…")
                        } else {
                            shown
                        },
                    });
                };
                let cassette = Self::read(&path)?;
                if cassette.request != creq {
                    return Err(LlmError::Cassette {
                        path,
                        reason: "recorded request differs from this request (hash collision?)"
                            .into(),
                    });
                }
                for e in &cassette.response.events {
                    on_event(e);
                }
                Ok(cassette.response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalisation_sorts_keys_and_scrubs_secrets() {
        let a = json!({"b": 1, "a": {"y": "key sk-XYZ123456", "x": [ {"d":1, "c":2} ]}});
        let n = normalize_json(&scrub_json(&a, &[Secret::new("sk-XYZ123456")]));
        assert_eq!(
            n.to_string(),
            r#"{"a":{"x":[{"c":2,"d":1}],"y":"key [REDACTED]"},"b":1}"#
        );
    }

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("http://127.0.0.1:4242/v1/messages"),
            "/v1/messages"
        );
        assert_eq!(url_path("https://api.x.com/v1/chat?x=1"), "/v1/chat");
        assert_eq!(url_path("https://api.x.com"), "/");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(LlmMode::parse("").unwrap(), LlmMode::Live);
        assert_eq!(LlmMode::parse("Replay").unwrap(), LlmMode::Replay);
        assert!(LlmMode::parse("tape").is_err());
    }

    #[test]
    fn secret_check_refuses() {
        let s = vec![NamedSecret {
            var: "OPENAI_API_KEY".into(),
            value: Secret::new("sk-live-abcdef"),
        }];
        assert!(ensure_no_secret(Path::new("c.json"), "nothing here", &s).is_ok());
        let err = ensure_no_secret(Path::new("c.json"), "x sk-live-abcdef y", &s).unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
        assert!(!err.to_string().contains("sk-live-abcdef"));
    }
}
