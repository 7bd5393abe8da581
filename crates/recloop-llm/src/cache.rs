//! Response cache keyed by (model, request, seed): replaying a whole run costs nothing.
//!
//! Entries are JSON files `<sha256>.json` in a directory. The key hashes the model name and the
//! normalised request (which contains the seed). Cached answers bypass budgets (they cost
//! nothing). In strict mode a miss is an error instead of a live call.

use crate::cassette::normalize_json;
use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, StreamEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Serialize, Deserialize)]
struct Entry {
    model: String,
    request: ChatRequest,
    response: ChatResponse,
}

/// A model with a response cache in front of it.
pub struct CachedModel<M> {
    inner: Option<M>,
    dir: PathBuf,
    name: String,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<M: ChatModel> CachedModel<M> {
    /// Cache `inner`'s answers in `dir`.
    pub fn new(inner: M, dir: &Path) -> CachedModel<M> {
        let name = inner.name().to_string();
        CachedModel {
            inner: Some(inner),
            dir: dir.to_path_buf(),
            name,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl CachedModel<crate::scripted::ScriptedModel> {
    /// A strict cache with no model behind it: answers only from `dir`, under `name`.
    pub fn strict(name: &str, dir: &Path) -> CachedModel<crate::scripted::ScriptedModel> {
        CachedModel {
            inner: None,
            dir: dir.to_path_buf(),
            name: name.to_string(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

/// The cache key of `request` on `model`.
pub fn cache_key(model: &str, request: &ChatRequest) -> String {
    let req = serde_json::to_value(request).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update(b"\n");
    h.update(normalize_json(&req).to_string().as_bytes());
    hex::encode(h.finalize())
}

impl<M: ChatModel> CachedModel<M> {
    fn lookup(&self, key: &str) -> Result<Option<ChatResponse>> {
        let path = self.dir.join(format!("{key}.json"));
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|source| LlmError::Io {
            path: path.clone(),
            source,
        })?;
        let entry: Entry = serde_json::from_str(&text).map_err(|e| LlmError::Cassette {
            path,
            reason: format!("unreadable cache entry: {e}"),
        })?;
        Ok(Some(entry.response))
    }

    fn store(&self, key: &str, request: &ChatRequest, response: &ChatResponse) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|source| LlmError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(format!("{key}.json"));
        let entry = Entry {
            model: self.name.clone(),
            request: request.clone(),
            response: response.clone(),
        };
        let text = serde_json::to_string_pretty(&entry).map_err(|e| LlmError::Cassette {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| LlmError::Io { path, source })
    }

    fn get_or_call(
        &self,
        request: &ChatRequest,
        call: impl FnOnce(&M) -> Result<ChatResponse>,
    ) -> Result<(ChatResponse, bool)> {
        let key = cache_key(&self.name, request);
        if let Some(r) = self.lookup(&key)? {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((r, true));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Some(inner) = &self.inner else {
            return Err(LlmError::CacheMiss {
                path: self.dir.clone(),
                model: self.name.clone(),
                key,
            });
        };
        let r = call(inner)?;
        self.store(&key, request, &r)?;
        Ok((r, false))
    }
}

impl<M: ChatModel> ChatModel for CachedModel<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.get_or_call(request, |m| m.chat(request))
            .map(|(r, _)| r)
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        let mut streamed = false;
        let (r, hit) = self.get_or_call(request, |m| {
            streamed = true;
            m.chat_stream(request, on_event)
        })?;
        if hit || !streamed {
            crate::model::emit_response_events(&r, on_event);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{ScriptedModel, ScriptedTurn};

    #[test]
    fn second_identical_request_is_served_from_cache_and_seed_matters() {
        let dir = tempfile::tempdir().unwrap();
        let m = CachedModel::new(
            ScriptedModel::new([ScriptedTurn::text("one"), ScriptedTurn::text("two")]),
            dir.path(),
        );
        let req = ChatRequest::simple(None, "q").with_seed(1);
        assert_eq!(m.chat(&req).unwrap().text(), "one");
        assert_eq!(m.chat(&req).unwrap().text(), "one");
        assert_eq!(m.stats(), (1, 1));
        let other_seed = ChatRequest::simple(None, "q").with_seed(2);
        assert_eq!(m.chat(&other_seed).unwrap().text(), "two");
        // A strict cache replays what was stored and refuses the rest.
        let strict = CachedModel::strict("scripted", dir.path());
        assert_eq!(strict.chat(&req).unwrap().text(), "one");
        let err = strict.chat(&ChatRequest::simple(None, "new")).unwrap_err();
        assert!(matches!(err, LlmError::CacheMiss { .. }), "{err}");
    }
}
