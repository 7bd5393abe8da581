//! The router over HTTP requests (tower `oneshot`, no socket): every documented API route
//! answers, the OpenAPI file lists exactly the router's API routes, pages render what the
//! journal holds, bad paths and ids give 404 pages, the token is checked, approvals write the
//! same record as `recloop approve`, secrets are masked and journal text is escaped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use recloop_journal::fixtures::{loop_stream, one_of_each};
use recloop_journal::{Event, Journal, NewEvent};
use recloop_server::{ServeConfig, Source};
use std::collections::BTreeSet;
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789abcdef";
const SECRET: &str = "sk-live-abcdefghijklmnopqrstuvwxyz";

struct Fixture {
    _dir: tempfile::TempDir,
    journal: Journal,
}

fn journal() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("journal.db").display().to_string()).unwrap();
    fill(&j);
    Fixture {
        _dir: dir,
        journal: j,
    }
}

/// One run with one event of every kind (secrets in its settings, markup in a title, a pending
/// approval, a diff artifact), and a second run of 600 loop events.
fn fill(j: &Journal) {
    // a run whose settings carry secrets, with one of every event
    let mut events: Vec<NewEvent> = one_of_each("r1")
        .into_iter()
        .map(|e| match e {
            Event::RunStarted {
                seed,
                production_commit,
                baseline,
                ..
            } => Event::RunStarted {
                seed,
                production_commit,
                baseline,
                config: serde_json::json!({
                    "iterations": 3,
                    "llm": {"api_key": SECRET, "model": "m"},
                    "env": format!("OPENAI_API_KEY={SECRET}"),
                }),
            },
            other => other,
        })
        .map(|e| NewEvent::new("r1", 1, e))
        .collect();
    // a proposal whose title is markup
    let mut p = recloop_journal::fixtures::proposal(
        "p-x",
        "<script>alert(1)</script> blend",
        "hypothesis with a key OPENAI_API_KEY=sk-zzzzzzzzzzzzzzzzzzzzzzzz",
        "blend",
        "blend.weights",
    );
    p.evidence.push(recloop_core::EvidenceItem {
        source: recloop_core::EvidenceSource::Journal,
        reference: "p-1".into(),
        summary: "EASE helped before".into(),
    });
    events.push(NewEvent::new("r1", 2, Event::ProposalMade { proposal: p }));
    let diff = j
        .put_artifact(
            b"--- a/pipeline.toml\n+++ b/pipeline.toml\n@@ -1 +1 @@\n-weights = [1.0]\n+weights = [0.5] # PASSWORD=hunter2hunter2\n",
        )
        .unwrap();
    let mut cand = recloop_journal::fixtures::candidate("p-x", "c0", 0.38);
    cand.diff_hash = diff.to_string();
    events.push(NewEvent::new(
        "r1",
        2,
        Event::CandidateReady { candidate: cand },
    ));
    events.push(NewEvent::new(
        "r1",
        2,
        Event::ApprovalRequested {
            approval_id: "ap-1".into(),
            proposal_id: Some("p-x".into()),
            kind: recloop_core::ApprovalKind::OfflineOnly,
            question: "KEEP p-x decided offline only: merge it?".into(),
            evidence: serde_json::json!({"ndcg@10": 0.4, "token": "abc"}),
        },
    ));
    j.append_batch(events).unwrap();
    j.append_batch(loop_stream("r2", 3, 600)).unwrap();
}

fn app(f: &Fixture, addr: &str, token: Option<&str>) -> Router {
    let source = Source {
        journal: f.journal.clone(),
        manifest: None,
    };
    let config =
        ServeConfig::new(source, addr.parse().unwrap(), token.map(str::to_string)).expect("config");
    recloop_server::router(config).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let (s, _, b) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (s, b)
}

#[tokio::test]
async fn openapi_lists_exactly_the_api_routes_and_each_answers() {
    let doc: serde_json::Value = serde_json::from_str(recloop_server::OPENAPI_JSON).unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = recloop_server::api_routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed, "openapi.json and the router disagree");

    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    for (method, path) in &routed {
        if method != "get" || path.ends_with("/stream") {
            continue;
        }
        let url = path.replace("{run_id}", "r2").replace("{id}", "r2-p1");
        let (status, body) = get(&app, &url).await;
        assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
        if !url.ends_with(".svg") {
            serde_json::from_str::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("GET {url} is not JSON ({e}): {body}"));
        }
    }
    // the stream answers with server-sent events (its body never ends: headers only)
    let resp = app
        .clone()
        .oneshot(Request::get("/api/v1/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // the first event carries the newest sequence number at once
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    let latest = f.journal.event_count().unwrap();
    assert!(
        text.contains("event: journal") && text.contains(&format!("data: {latest}")),
        "{text}"
    );
}

#[tokio::test]
async fn pages_render_what_the_journal_holds() {
    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    let (s, runs) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK, "{runs}");
    assert!(runs.contains("r1") && runs.contains("r2"), "{runs}");
    assert!(runs.contains("<svg"), "the chart is drawn");
    assert!(runs.contains("Waiting for a person"), "r1 has ap-1 pending");
    let (s, run) = get(&app, "/runs/r2").await;
    assert_eq!(s, StatusCode::OK);
    assert!(run.contains("Iterations"));
    let (s, list) = get(&app, "/experiments?run=r2&limit=5").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list.contains("r2-p1") || list.contains("/experiments/r2-p"),
        "{list}"
    );
    let (s, exp) = get(&app, "/experiments/p-1").await;
    assert_eq!(s, StatusCode::OK, "{exp}");
    for want in [
        "Tune EASE regularisation",
        "unknown field `lamda`",
        "Score S",
        "Lineage",
        "Verdict",
    ] {
        assert!(exp.contains(want), "experiment page lacks {want:?}");
    }
    let (s, exp) = get(&app, "/experiments/p-x").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        exp.contains("&lt;script&gt;alert(1)"),
        "markup in a title is escaped"
    );
    assert!(!exp.contains("<script>alert(1)"));
    assert!(
        exp.contains("EASE helped before"),
        "evidence with its source"
    );
    assert!(
        exp.contains("<span class=\"add\">+weights = [0.5]"),
        "the diff is shown"
    );
    assert!(!exp.contains("hunter2"), "a password in the diff is masked");
    let (s, k) = get(&app, "/knowledge?lever=model.ease.lambda").await;
    assert_eq!(s, StatusCode::OK);
    assert!(k.contains("Lessons") && k.contains("Failure assets"));
    let (s, h) = get(&app, "/harness").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.contains("version"), "{h}");
    let (s, a) = get(&app, "/approvals").await;
    assert_eq!(s, StatusCode::OK);
    assert!(a.contains("ap-1") && a.contains("merge it?"));
    assert!(
        a.contains("disabled"),
        "no token presented: the buttons are off"
    );
    assert!(a.contains("needs the server"), "{a}");
}

#[tokio::test]
async fn bad_paths_and_ids_are_404_pages_and_bad_numbers_400() {
    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    for path in [
        "/nope",
        "/experiments/does-not-exist",
        "/runs/no-such-run",
        "/experiments/%3Cscript%3E",
        "/static/../../etc/passwd",
    ] {
        let (s, body) = get(&app, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("<html"), "{path} gives an HTML page");
        assert!(!body.contains("<script>"), "{path}: {body}");
    }
    for path in [
        "/api/v1/nope",
        "/api/v1/experiments/nope",
        "/api/v1/runs/nope",
    ] {
        let (s, body) = get(&app, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["status"], 404);
    }
    let (s, body) = get(&app, "/experiments?limit=abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = get(&app, "/api/v1/experiments?decision=MAYBE").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn secrets_are_masked_everywhere() {
    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    for path in [
        "/",
        "/runs/r1",
        "/approvals",
        "/experiments/p-x",
        "/api/v1/runs",
        "/api/v1/runs/r1",
        "/api/v1/events?limit=1000",
        "/api/v1/approvals",
        "/api/v1/experiments/p-x",
    ] {
        let (s, body) = get(&app, path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(!body.contains("sk-live"), "{path} shows the api key");
        assert!(!body.contains("sk-zzzz"), "{path} shows the key in text");
    }
    let (_, events) = get(&app, "/api/v1/events?limit=5").await;
    assert!(events.contains("[redacted]"), "{events}");
}

#[tokio::test]
async fn approving_needs_the_token_and_writes_the_cli_record() {
    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    let post = |auth: Option<&str>, body: &str| {
        let mut r = Request::post("/api/v1/approvals/ap-1")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, format!("Bearer {a}"));
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    let (s, _, _) = send(&app, post(None, r#"{"approved":true}"#)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no token");
    let (s, _, _) = send(
        &app,
        post(Some("wrong-token-0123456789"), r#"{"approved":true}"#),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "wrong token");
    // a form post without the cookie is refused too
    let (s, _, _) = send(
        &app,
        Request::post("/approvals/ap-1/approve")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(""))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // a cross-origin post with the cookie is refused
    let (s, _, _) = send(
        &app,
        Request::post("/approvals/ap-1/approve")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, "http://evil.example")
            .header(header::COOKIE, format!("recloop_token={TOKEN}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(""))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // rejecting needs a reason
    let (s, _, body) = send(&app, post(Some(TOKEN), r#"{"approved":false}"#)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _, body) = send(&app, post(Some(TOKEN), r#"{"approved":true}"#)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // the same record `recloop approve` writes
    let all = recloop_agents::approvals::list(&f.journal).unwrap();
    let a = all.iter().find(|a| a.id == "ap-1").unwrap();
    let (approved, by, _) = a.answer.clone().expect("answered");
    assert!(approved);
    assert!(by.contains("dashboard"), "{by}");
    let answered = recloop_agents::approvals::recorded_answer(&f.journal, "ap-1")
        .unwrap()
        .unwrap();
    assert!(answered.by.is_person());
    // answering twice is a conflict, an unknown id a 404
    let (s, _, _) = send(&app, post(Some(TOKEN), r#"{"approved":true}"#)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = send(
        &app,
        Request::post("/api/v1/approvals/nope")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"approved":true}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_in_the_address_sets_a_cookie_and_the_form_approves() {
    let f = journal();
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    let (s, h, _) = send(
        &app,
        Request::get(format!("/approvals?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(s.is_redirection(), "{s}");
    assert_eq!(h[header::LOCATION], "/approvals");
    let cookie = h[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().unwrap().to_string();
    let (s, body) = {
        let (s, _, b) = send(
            &app,
            Request::get("/approvals")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        (s, b)
    };
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("disabled"), "buttons are on with the cookie");
    let (s, h, _) = send(
        &app,
        Request::post("/approvals/ap-1/reject")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("reason=too+risky"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/approvals?answered=ap-1");
    let a = recloop_agents::approvals::recorded_answer(&f.journal, "ap-1")
        .unwrap()
        .unwrap();
    assert!(!a.approved);
    assert_eq!(a.reason, "too risky");
    // a wrong token in the address is refused
    let (s, _) = get(&app, "/?token=wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn off_loopback_every_request_needs_the_token() {
    let f = journal();
    let source = Source {
        journal: f.journal.clone(),
        manifest: None,
    };
    let err = ServeConfig::new(source.clone(), "0.0.0.0:8080".parse().unwrap(), None);
    assert!(err.is_err(), "a non-loopback address needs a token");
    let err = ServeConfig::new(
        source,
        "0.0.0.0:8080".parse().unwrap(),
        Some("short".into()),
    );
    assert!(err.is_err(), "a short token is refused");
    let app = app(&f, "0.0.0.0:8080", Some(TOKEN));
    let (s, _) = get(&app, "/").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get(&app, "/api/v1/runs").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(
        &app,
        Request::get("/api/v1/runs")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // loopback without a configured token: one is generated, reads are open
    let source = Source {
        journal: f.journal.clone(),
        manifest: None,
    };
    let c = ServeConfig::new(source, "127.0.0.1:0".parse().unwrap(), None).unwrap();
    assert!(c.token_generated && c.token.len() >= 16);
    let app = recloop_server::router(c).unwrap();
    let (s, _) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK);
}

/// The same pages and API on a PostgreSQL journal (`RECLOOP_TEST_POSTGRES_URL`; skipped with a
/// message when unset, except under CI).
#[tokio::test]
async fn pages_and_api_on_postgres() {
    let base = match std::env::var("RECLOOP_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI requires RECLOOP_TEST_POSTGRES_URL (source .ci/postgres.sh && start_postgres)"
                );
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: this test needs PostgreSQL; set RECLOOP_TEST_POSTGRES_URL (under CI, with `CI` set, it fails instead)"
            );
            return;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema=srv_{}_{nanos}", std::process::id());
    let j = tokio::task::spawn_blocking(move || {
        let j = Journal::open(&url).unwrap();
        fill(&j);
        j
    })
    .await
    .unwrap();
    let f = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        journal: j,
    };
    let app = app(&f, "127.0.0.1:8080", Some(TOKEN));
    for path in [
        "/",
        "/runs/r2",
        "/experiments?run=r2&offset=10",
        "/experiments/p-1",
        "/experiments/p-x",
        "/knowledge?lever=model.ease.lambda",
        "/harness",
        "/approvals",
        "/api/v1/runs",
        "/api/v1/experiments?decision=KEEP",
        "/api/v1/events?after_seq=10&limit=5",
    ] {
        let (s, body) = get(&app, path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains("sk-live"), "{path}");
    }
    let (_, body) = get(&app, "/api/v1/experiments?run=r2&limit=5").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    assert!(v["page"]["total"].as_u64().unwrap() > 5);
}
