//! The token check, run before every handler.
//!
//! The token comes as `Authorization: Bearer TOKEN`, as the `recloop_token` cookie, or once as
//! `?token=TOKEN` (a GET with a valid one is redirected to the same address without it and sets
//! the cookie: HTTP-only, `SameSite=Strict`). Reads need it only off loopback; every write
//! (POST) needs it always, and a POST whose `Origin` is another host is refused.

use crate::web::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// Name of the cookie that carries the token.
pub const COOKIE: &str = "recloop_token";

/// Whether the request carried the valid token (an extension handlers read).
#[derive(Clone, Copy, Debug)]
pub struct Authed(pub bool);

fn eq_constant_time(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
}

/// The query without `token=…`, and the token if there was one.
fn split_token(query: &str) -> (String, Option<String>) {
    let mut rest = Vec::new();
    let mut token = None;
    for part in query.split('&').filter(|p| !p.is_empty()) {
        match part.strip_prefix("token=") {
            Some(t) => token = Some(t.to_string()),
            None => rest.push(part),
        }
    }
    (rest.join("&"), token)
}

fn refuse(path: &str, status: StatusCode, message: &str) -> Response {
    if path.starts_with("/api/") {
        (
            status,
            axum::Json(
                serde_json::json!({"error": {"status": status.as_u16(), "message": message}}),
            ),
        )
            .into_response()
    } else {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>recloop: {}</title></head>\
             <body><h1>{}</h1><p>{}</p></body></html>",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error"),
            crate::web::escape(message)
        );
        (status, axum::response::Html(body)).into_response()
    }
}

/// Check the token; see the module documentation.
pub async fn check(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = state.token();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let (rest, in_query) = split_token(&query);
    if let Some(t) = in_query {
        if !eq_constant_time(&t, token) {
            return refuse(
                &path,
                StatusCode::UNAUTHORIZED,
                "the token in the address is not valid",
            );
        }
        if req.method() == Method::GET {
            let target = if rest.is_empty() {
                path.clone()
            } else {
                format!("{path}?{rest}")
            };
            let mut resp = Redirect::to(&target).into_response();
            if let Ok(v) = format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/").parse() {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            return resp;
        }
    }
    let valid = presented(req.headers()).is_some_and(|t| eq_constant_time(&t, token))
        || split_token(&query).1.is_some();
    if state.reads_need_token() && !valid {
        return refuse(
            &path,
            StatusCode::UNAUTHORIZED,
            "this server is reachable from the network: every request needs the token \
             (Authorization: Bearer $RECLOOP_SERVE_TOKEN, or open the address with ?token=…)",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if !valid {
            return refuse(
                &path,
                StatusCode::UNAUTHORIZED,
                "answering an approval needs the token: open the address `recloop serve` printed \
                 (it carries ?token=…), or send Authorization: Bearer $RECLOOP_SERVE_TOKEN",
            );
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        if let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        {
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            if host.as_deref() != Some(origin_host) {
                return refuse(&path, StatusCode::FORBIDDEN, "cross-origin request refused");
            }
        }
    }
    req.extensions_mut().insert(Authed(valid));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_split_from_the_query() {
        assert_eq!(
            split_token("a=1&token=xyz&b=2"),
            ("a=1&b=2".to_string(), Some("xyz".to_string()))
        );
        assert_eq!(split_token(""), (String::new(), None));
        assert!(eq_constant_time("abc", "abc"));
        assert!(!eq_constant_time("abc", "abd"));
        assert!(!eq_constant_time("abc", "abcd"));
    }
}
