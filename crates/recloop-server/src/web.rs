//! The router: pages, the JSON API under `/api/v1`, the live-update stream and static files.

use crate::auth::{self, Authed};
use crate::data::{KnowledgeQuery, Source};
use crate::error::{Result, ServerError};
use crate::{ServeConfig, chart, redact};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{Uri, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use minijinja::Environment;
use recloop_core::Decision;
use recloop_journal::ExperimentQuery;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Shared, read-only state of the handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    token: String,
    token_generated: bool,
    reads_need_token: bool,
    poll: Duration,
    env: Environment<'static>,
}

impl AppState {
    pub(crate) fn token(&self) -> &str {
        &self.inner.token
    }

    pub(crate) fn reads_need_token(&self) -> bool {
        self.inner.reads_need_token
    }

    fn source(&self) -> Source {
        self.inner.source.clone()
    }
}

/// HTML-escape `s` (for the few strings formatted outside templates).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    (
        "experiments.html",
        include_str!("../templates/experiments.html"),
    ),
    (
        "experiment.html",
        include_str!("../templates/experiment.html"),
    ),
    (
        "knowledge.html",
        include_str!("../templates/knowledge.html"),
    ),
    ("harness.html", include_str!("../templates/harness.html")),
    (
        "approvals.html",
        include_str!("../templates/approvals.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
];

const HTMX: &str = include_str!("../static/htmx.min.js");
const CSS: &str = include_str!("../static/style.css");

fn num(v: Option<f64>, digits: Option<usize>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.*}", digits.unwrap_or(4)),
        Some(x) => x.to_string(),
        None => "—".into(),
    }
}

fn signed(v: Option<f64>, digits: Option<usize>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:+.*}", digits.unwrap_or(4)),
        Some(x) => x.to_string(),
        None => "—".into(),
    }
}

fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    for (name, text) in TEMPLATES {
        env.add_template(name, text)?;
    }
    env.add_filter("num", num);
    env.add_filter("signed", signed);
    env.add_filter("pct", |v: Option<f64>| match v {
        Some(x) if x.is_finite() => format!("{:.1}%", x * 100.0),
        _ => "—".into(),
    });
    env.add_filter("lines", |s: String| -> Vec<String> {
        s.lines().map(str::to_string).collect()
    });
    env.add_filter("pretty", |v: minijinja::Value| {
        serde_json::to_value(&v)
            .ok()
            .and_then(|j| serde_json::to_string_pretty(&j).ok())
            .unwrap_or_default()
    });
    Ok(env)
}

/// Run a blocking journal read on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("reader stopped: {e}")))?
}

/// Serialise `data` and mask secrets in it.
fn redacted<T: serde::Serialize>(data: &T) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(data)
        .map_err(|e| ServerError::Internal(format!("cannot serialise: {e}")))?;
    redact::value(&mut v);
    Ok(v)
}

// ----- errors -----------------------------------------------------------------------------------

/// An error shown as an HTML page.
struct PageError(ServerError);

impl From<ServerError> for PageError {
    fn from(e: ServerError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        }
        let message = redact::text(&self.0.to_string());
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>recloop: {code}</title>\
             <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><nav><a href=\"/\">recloop</a></nav>\
             <main><h1>{code} {reason}</h1><p class=\"error\">{msg}</p><p><a href=\"/\">Runs</a></p></main></body></html>",
            code = status.as_u16(),
            reason = status.canonical_reason().unwrap_or("error"),
            msg = escape(&message)
        );
        (status, Html(body)).into_response()
    }
}

/// An error returned as JSON.
struct ApiError(ServerError);

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        }
        (
            status,
            Json(serde_json::json!({"error": {
                "status": status.as_u16(),
                "message": redact::text(&self.0.to_string()),
            }})),
        )
            .into_response()
    }
}

type PageResult = std::result::Result<Html<String>, PageError>;
type ApiResult = std::result::Result<Json<serde_json::Value>, ApiError>;

// ----- paging parameters ------------------------------------------------------------------------

/// Query parameters of paged lists, as strings so a malformed number gives a clear 400.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    limit: Option<String>,
    offset: Option<String>,
    run: Option<String>,
    status: Option<String>,
    decision: Option<String>,
    after_seq: Option<String>,
}

fn number(v: &Option<String>, name: &str, default: usize) -> Result<usize> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| ServerError::BadRequest(format!("{name}={s} is not a whole number"))),
    }
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl ListParams {
    fn experiment_query(&self) -> Result<ExperimentQuery> {
        let decision = match text(&self.decision).map(|d| d.to_ascii_uppercase()) {
            None => None,
            Some(d) => Some(match d.as_str() {
                "KEEP" => Decision::Keep,
                "EXTEND" => Decision::Extend,
                "DISCARD" => Decision::Discard,
                other => {
                    return Err(ServerError::BadRequest(format!(
                        "decision={other} is not KEEP, EXTEND or DISCARD"
                    )));
                }
            }),
        };
        Ok(ExperimentQuery {
            run_id: text(&self.run),
            status: text(&self.status),
            decision,
            base_commit: None,
            limit: Some(number(&self.limit, "limit", 50)?.clamp(1, 1000)),
            offset: number(&self.offset, "offset", 0)?,
            newest_first: true,
        })
    }
}

// ----- rendering --------------------------------------------------------------------------------

fn render(
    state: &AppState,
    name: &str,
    page: &str,
    uri: &Uri,
    authed: bool,
    data: serde_json::Value,
    extra: minijinja::Value,
) -> PageResult {
    let tmpl = state
        .inner
        .env
        .get_template(name)
        .map_err(ServerError::from)?;
    let html = tmpl
        .render(minijinja::context! {
            page => page,
            self_url => uri.to_string(),
            authed => authed,
            token_generated => state.inner.token_generated,
            data => sv(&data),
            extra => extra,
        })
        .map_err(ServerError::from)?;
    Ok(Html(html))
}

fn sv<T: serde::Serialize>(t: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(t))
}

fn safe(s: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(s)
}

// ----- pages ------------------------------------------------------------------------------------

async fn runs_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let data = blocking(move || src.runs()).await?;
    let charts: HashMap<String, minijinja::Value> = data
        .runs
        .iter()
        .map(|r| {
            (
                r.run_id.clone(),
                safe(chart::line_chart(&r.chart, &data.metrics.primary, 640, 200)),
            )
        })
        .collect();
    let v = redacted(&data)?;
    render(&st, "runs.html", "runs", &uri, authed, v, sv(&charts))
}

async fn run_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    Path(run_id): Path<String>,
    Query(p): Query<ListParams>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let limit = number(&p.limit, "limit", 50)?.clamp(1, 1000);
    let offset = number(&p.offset, "offset", 0)?;
    let data = blocking(move || src.run(&run_id, limit, offset)).await?;
    let svg = safe(chart::line_chart(
        &data.run.chart,
        &data.metrics.primary,
        900,
        260,
    ));
    let v = redacted(&data)?;
    render(&st, "run.html", "runs", &uri, authed, v, svg)
}

async fn experiments_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    Query(p): Query<ListParams>,
    uri: Uri,
) -> PageResult {
    let q = p.experiment_query()?;
    let src = st.source();
    let data = blocking(move || src.experiments(&q)).await?;
    let v = redacted(&data)?;
    render(
        &st,
        "experiments.html",
        "experiments",
        &uri,
        authed,
        v,
        minijinja::Value::UNDEFINED,
    )
}

async fn experiment_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    Path(id): Path<String>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let data = blocking(move || src.experiment(&id)).await?;
    let v = redacted(&data)?;
    render(
        &st,
        "experiment.html",
        "experiments",
        &uri,
        authed,
        v,
        minijinja::Value::UNDEFINED,
    )
}

async fn knowledge_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    Query(q): Query<KnowledgeQuery>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let data = blocking(move || src.knowledge(&q)).await?;
    let v = redacted(&data)?;
    render(
        &st,
        "knowledge.html",
        "knowledge",
        &uri,
        authed,
        v,
        minijinja::Value::UNDEFINED,
    )
}

async fn harness_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let data = blocking(move || src.harness()).await?;
    let v = redacted(&data)?;
    render(
        &st,
        "harness.html",
        "harness",
        &uri,
        authed,
        v,
        minijinja::Value::UNDEFINED,
    )
}

#[derive(Debug, Default, Deserialize)]
struct AnsweredParam {
    answered: Option<String>,
}

async fn approvals_page(
    State(st): State<AppState>,
    Extension(Authed(authed)): Extension<Authed>,
    Query(a): Query<AnsweredParam>,
    uri: Uri,
) -> PageResult {
    let src = st.source();
    let data = blocking(move || src.approvals()).await?;
    let v = redacted(&data)?;
    render(
        &st,
        "approvals.html",
        "approvals",
        &uri,
        authed,
        v,
        sv(&a.answered),
    )
}

#[derive(Debug, Default, Deserialize)]
struct AnswerForm {
    #[serde(default)]
    reason: String,
}

async fn answer_form(
    st: AppState,
    id: String,
    approved: bool,
    reason: String,
) -> std::result::Result<Response, PageError> {
    let src = st.source();
    let id2 = id.clone();
    blocking(move || src.answer(&id2, approved, &reason, "dashboard")).await?;
    let target = format!("/approvals?answered={}", urlencode(&id));
    Ok(Redirect::to(&target).into_response())
}

async fn approve_form(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Form(f): Form<AnswerForm>,
) -> std::result::Result<Response, PageError> {
    answer_form(st, id, true, f.reason).await
}

async fn reject_form(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Form(f): Form<AnswerForm>,
) -> std::result::Result<Response, PageError> {
    answer_form(st, id, false, f.reason).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn not_found(uri: Uri) -> Response {
    let e = ServerError::NotFound(format!("no page at {}", uri.path()));
    if uri.path().starts_with("/api/") {
        ApiError(e).into_response()
    } else {
        PageError(e).into_response()
    }
}

async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

// ----- API --------------------------------------------------------------------------------------

async fn api_status(State(st): State<AppState>) -> ApiResult {
    let src = st.source();
    let location = src.journal.location().to_string();
    let seq = blocking(move || src.latest_seq()).await?;
    Ok(Json(redacted(&serde_json::json!({
        "latest_seq": seq,
        "journal": location,
        "version": env!("CARGO_PKG_VERSION"),
    }))?))
}

async fn api_runs(State(st): State<AppState>) -> ApiResult {
    let src = st.source();
    Ok(Json(redacted(&blocking(move || src.runs()).await?)?))
}

async fn api_run(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult {
    let src = st.source();
    let limit = number(&p.limit, "limit", 50)?.clamp(1, 1000);
    let offset = number(&p.offset, "offset", 0)?;
    Ok(Json(redacted(
        &blocking(move || src.run(&run_id, limit, offset)).await?,
    )?))
}

async fn api_run_chart(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let src = st.source();
    let data = blocking(move || src.run(&run_id, 1, 0)).await?;
    let svg = chart::line_chart(&data.run.chart, &data.metrics.primary, 900, 260);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn api_experiments(State(st): State<AppState>, Query(p): Query<ListParams>) -> ApiResult {
    let q = p.experiment_query()?;
    let src = st.source();
    Ok(Json(redacted(
        &blocking(move || src.experiments(&q)).await?,
    )?))
}

async fn api_experiment(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let src = st.source();
    Ok(Json(redacted(
        &blocking(move || src.experiment(&id)).await?,
    )?))
}

async fn api_knowledge(State(st): State<AppState>, Query(q): Query<KnowledgeQuery>) -> ApiResult {
    let src = st.source();
    Ok(Json(redacted(&blocking(move || src.knowledge(&q)).await?)?))
}

async fn api_harness(State(st): State<AppState>) -> ApiResult {
    let src = st.source();
    Ok(Json(redacted(&blocking(move || src.harness()).await?)?))
}

async fn api_approvals(State(st): State<AppState>) -> ApiResult {
    let src = st.source();
    Ok(Json(redacted(&blocking(move || src.approvals()).await?)?))
}

#[derive(Debug, Deserialize)]
struct AnswerBody {
    approved: bool,
    #[serde(default)]
    reason: String,
}

async fn api_answer(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: std::result::Result<Json<AnswerBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) = body.map_err(|e| ServerError::BadRequest(e.body_text()))?;
    let src = st.source();
    let a = blocking(move || src.answer(&id, b.approved, &b.reason, "dashboard API")).await?;
    Ok(Json(redacted(&a)?))
}

async fn api_events(State(st): State<AppState>, Query(p): Query<ListParams>) -> ApiResult {
    let after = number(&p.after_seq, "after_seq", 0)? as u64;
    let limit = number(&p.limit, "limit", 100)?;
    let run = text(&p.run);
    let src = st.source();
    let events = blocking(move || src.events(after, limit, run)).await?;
    let next = events.last().map(|e| e.seq);
    Ok(Json(redacted(&serde_json::json!({
        "events": events,
        "next_after_seq": next,
    }))?))
}

async fn api_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI_JSON,
    )
        .into_response()
}

/// Server-sent events: `journal` with the newest sequence number, sent at once and whenever it
/// changes (the journal is polled); pages refresh their content on it.
async fn api_stream(
    State(st): State<AppState>,
) -> Sse<impl futures::Stream<Item = std::result::Result<SseEvent, std::convert::Infallible>>> {
    let poll = st.inner.poll;
    let stream = futures::stream::unfold((st, None::<u64>), move |(st, last)| async move {
        loop {
            if last.is_some() {
                tokio::time::sleep(poll).await;
            }
            let src = st.source();
            match blocking(move || src.latest_seq()).await {
                Ok(seq) if Some(seq) != last => {
                    let ev = SseEvent::default().event("journal").data(seq.to_string());
                    return Some((Ok(ev), (st, Some(seq))));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("live updates: {e}");
                    if last.is_none() {
                        tokio::time::sleep(poll).await;
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The JSON API: (method, path, handler). The router is built from this table and the test
/// checks it against `openapi.json`.
pub fn api_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/api/v1/status", get(api_status)),
        ("get", "/api/v1/runs", get(api_runs)),
        ("get", "/api/v1/runs/{run_id}", get(api_run)),
        ("get", "/api/v1/runs/{run_id}/chart.svg", get(api_run_chart)),
        ("get", "/api/v1/experiments", get(api_experiments)),
        ("get", "/api/v1/experiments/{id}", get(api_experiment)),
        ("get", "/api/v1/knowledge", get(api_knowledge)),
        ("get", "/api/v1/harness", get(api_harness)),
        ("get", "/api/v1/approvals", get(api_approvals)),
        ("post", "/api/v1/approvals/{id}", post(api_answer)),
        ("get", "/api/v1/events", get(api_events)),
        ("get", "/api/v1/stream", get(api_stream)),
        ("get", "/api/v1/openapi.json", get(api_openapi)),
    ]
}

/// The whole application for `config`.
pub fn router(config: ServeConfig) -> Result<Router> {
    let state = AppState {
        inner: Arc::new(Inner {
            reads_need_token: config.token_required_for_reads(),
            source: config.source,
            token: config.token,
            token_generated: config.token_generated,
            poll: config.poll,
            env: environment()?,
        }),
    };
    let mut app = Router::new()
        .route("/", get(runs_page))
        .route("/runs", get(|| async { Redirect::permanent("/") }))
        .route("/runs/{run_id}", get(run_page))
        .route("/experiments", get(experiments_page))
        .route("/experiments/{id}", get(experiment_page))
        .route("/knowledge", get(knowledge_page))
        .route("/harness", get(harness_page))
        .route("/approvals", get(approvals_page))
        .route("/approvals/{id}/approve", post(approve_form))
        .route("/approvals/{id}/reject", post(reject_form))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/style.css", get(css));
    for (_, path, handler) in api_routes() {
        app = app.route(path, handler);
    }
    Ok(app
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ))
        .with_state(state))
}
