//! HTTP API and dashboard over the journal.
//!
//! `recloop serve` runs [`serve`]: server-rendered pages (minijinja templates compiled into the
//! binary, htmx vendored under `static/`, charts as SVG drawn here) and a JSON API under
//! `/api/v1` described by `openapi.json`. The server holds no state of its own: every request
//! reads the journal (SQLite or PostgreSQL), so it works while `recloop run` is writing; pages
//! refresh themselves when the journal's newest event changes (server-sent events on
//! `/api/v1/stream`, polled every second).
//!
//! Safety: it binds to loopback by default. A token is always set — `RECLOOP_SERVE_TOKEN`, or
//! one generated at start and printed with a login address. On a non-loopback address the
//! token must come from `RECLOOP_SERVE_TOKEN` and is checked on every request; answering an
//! approval (the only write) needs it everywhere. The token is presented as
//! `Authorization: Bearer TOKEN`, or once as `?token=TOKEN`, which sets an HTTP-only cookie.
//! Strings that look like secrets are masked before anything is rendered or returned.

mod auth;
pub mod chart;
pub mod data;
pub mod error;
pub mod redact;
mod web;

pub use data::Source;
pub use error::{Result, ServerError};
pub use web::{AppState, api_routes, router};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Environment variable holding the access token.
pub const TOKEN_ENV: &str = "RECLOOP_SERVE_TOKEN";

/// The OpenAPI description of `/api/v1`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Settings of a server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to read.
    pub source: Source,
    /// Address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// The access token.
    pub token: String,
    /// Whether the token was generated at start (not from the environment).
    pub token_generated: bool,
    /// How often the live-update stream polls the journal.
    pub poll: Duration,
}

impl ServeConfig {
    /// Settings for `addr` with the token from `env_token` (normally `$RECLOOP_SERVE_TOKEN`):
    /// a non-loopback address needs one; on loopback a random one is generated when absent.
    pub fn new(source: Source, addr: SocketAddr, env_token: Option<String>) -> Result<ServeConfig> {
        let env_token = env_token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        if let Some(t) = &env_token
            && t.len() < 16
        {
            return Err(ServerError::Config(format!(
                "{TOKEN_ENV} is too short ({} characters; use at least 16)",
                t.len()
            )));
        }
        let (token, token_generated) = match env_token {
            Some(t) => (t, false),
            None if addr.ip().is_loopback() => (uuid::Uuid::new_v4().simple().to_string(), true),
            None => {
                return Err(ServerError::Config(format!(
                    "{addr} is not a loopback address: set {TOKEN_ENV} (at least 16 characters); \
                     every request must then carry it"
                )));
            }
        };
        Ok(ServeConfig {
            source,
            addr,
            token,
            token_generated,
            poll: Duration::from_secs(1),
        })
    }

    /// Whether every request (not only approvals) must carry the token.
    pub fn token_required_for_reads(&self) -> bool {
        !self.addr.ip().is_loopback()
    }
}

/// Open the journal for `serve`: `journal_url` if given, else the workspace's; the manifest is
/// read from the workspace when it has one. A missing SQLite journal is an error (the server
/// does not create one).
pub fn open_source(workspace: Option<&Path>, journal_url: Option<&str>) -> Result<Source> {
    let ws = workspace.unwrap_or(Path::new("."));
    let env_url = std::env::var(recloop_journal::JOURNAL_URL_ENV).ok();
    let url = journal_url.map(str::to_string).or(env_url);
    let journal = match &url {
        Some(u) => {
            let plain_path = !u.contains("://");
            if plain_path && !Path::new(u).exists() {
                return Err(ServerError::Config(format!("no journal at {u}")));
            }
            recloop_journal::Journal::open(u)?
        }
        None => {
            let db = ws.join(".recloop").join("journal.db");
            if !db.exists() {
                return Err(ServerError::Config(format!(
                    "no journal at {} (run `recloop run --workspace {}` first, or pass --journal URL)",
                    db.display(),
                    ws.display()
                )));
            }
            recloop_journal::Journal::for_workspace(ws, None)?
        }
    };
    let manifest_path = ws.join("recloop.toml");
    let manifest = if manifest_path.exists() {
        match recloop_core::Manifest::load(ws) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", manifest_path.display());
                None
            }
        }
    } else {
        None
    };
    Ok(Source { journal, manifest })
}

/// Bind and serve until the process is stopped. `on_bound` gets the bound address (useful
/// with port 0) before the first request is accepted.
pub async fn serve(config: ServeConfig, on_bound: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServerError::Io {
            what: format!("cannot bind {}", config.addr),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Io {
        what: "cannot read the bound address".into(),
        source,
    })?;
    on_bound(bound);
    let app = router(config)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| ServerError::Io {
            what: "server stopped".into(),
            source,
        })
}

/// [`serve`] on a runtime of its own, for blocking callers (the CLI).
pub fn serve_blocking(config: ServeConfig, on_bound: impl FnOnce(SocketAddr)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            what: "cannot start the server runtime".into(),
            source,
        })?;
    rt.block_on(serve(config, on_bound))
}
