//! `recloop serve` end to end in a real browser: a real `recloop run` (built-in brain, synthetic
//! workspace that decides offline, so its first KEEP waits for a person: exit code 4) writes the
//! journal; `recloop serve` shows it; headless Chromium, driven through chromedriver by
//! fantoccini, opens every page, checks its content, clicks Approve on the pending approval,
//! and sees the run continue after `recloop run` is invoked again. Screenshots are saved under
//! `target/serve-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test is skipped with a
//! message, except under CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-test-token-0123456789";

/// Whether a test may run; see `recloop-agents/tests/common::require`.
fn require(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI requires {what}: {how}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: this test needs {what}; {how} (under CI, with `CI` set, it fails instead)"
    );
    false
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Kills the child when dropped (the test's own processes only).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn recloop(ws: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(args)
        .arg("--workspace")
        .arg(ws)
        .env_remove("RECLOOP_JOURNAL_URL")
        .output()
        .expect("run recloop")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot {}", path.display());
}

async fn page_text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_approves_and_the_run_continues() {
    let driver = which("chromedriver");
    let chromium = which("chromium");
    if !require(
        driver.is_some() && chromium.is_some(),
        "chromium and chromedriver",
        "apt-get install -y chromium chromium-driver",
    ) {
        return;
    }

    // 1. a real run that stops at its first KEEP, waiting for a person (earlier questions — a
    // guardrail past its attention level — are rejected on the command line, and the run resumed)
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path().join("ws");
    recloop_agents::example::synthetic_example(&ws, 300, 200).unwrap();
    let journal = recloop_journal::Journal::for_workspace(&ws, None).unwrap();
    let mut pending = Vec::new();
    for _ in 0..4 {
        let out = recloop(
            &ws,
            &[
                "run",
                "--iterations",
                "4",
                "--brain",
                "builtin",
                "--unattended",
                "wait",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(4),
            "the run waits for an approval: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pending = recloop_agents::approvals::list(&journal)
            .unwrap()
            .into_iter()
            .filter(|a| a.answer.is_none())
            .collect();
        assert_eq!(pending.len(), 1, "{pending:?}");
        if matches!(
            pending[0].kind,
            recloop_core::ApprovalKind::OfflineOnly | recloop_core::ApprovalKind::Keep
        ) {
            break;
        }
        let out = recloop(
            &ws,
            &[
                "reject",
                &pending[0].id,
                "--why",
                "the test waits for a KEEP",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }
    assert!(
        matches!(
            pending[0].kind,
            recloop_core::ApprovalKind::OfflineOnly | recloop_core::ApprovalKind::Keep
        ),
        "no KEEP asked for a person: {pending:?}"
    );
    let approval = pending[0].clone();
    let run_id = approval.run_id.clone();
    let seq_before = journal.event_count().unwrap();

    // 2. recloop serve on a free port
    let mut serve = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workspace"])
        .arg(&ws)
        .env("RECLOOP_SERVE_TOKEN", TOKEN)
        .env_remove("RECLOOP_JOURNAL_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start recloop serve");
    let stdout = serve.stdout.take().unwrap();
    let _serve = Guard(serve);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let base = first
        .trim()
        .strip_prefix("recloop serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim_end_matches('/')
        .to_string();

    // 3. chromedriver and headless chromium
    let port = free_port();
    let driver = Guard(
        Command::new(driver.unwrap())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium.unwrap(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1400",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        match ClientBuilder::rustls()
            .expect("tls")
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("cannot reach chromedriver: {e}"),
        }
    };

    // 4. every page
    c.goto(&format!("{base}/?token={TOKEN}")).await.unwrap();
    let text = page_text(&c).await;
    assert!(text.contains(&run_id), "{text}");
    assert!(text.contains("waiting for approval"), "{text}");
    assert!(
        c.find(Locator::Css("svg.chart")).await.is_ok(),
        "chart drawn"
    );
    assert!(c.find(Locator::Css("svg.chart circle.keep")).await.is_ok() || text.contains("KEEP"));
    shot(&c, "01-runs").await;

    c.goto(&format!("{base}/runs/{run_id}")).await.unwrap();
    let text = page_text(&c).await;
    assert!(
        text.contains("Iterations") && text.contains("Production metrics"),
        "{text}"
    );
    shot(&c, "02-run").await;

    c.goto(&format!("{base}/experiments")).await.unwrap();
    let text = page_text(&c).await;
    assert!(text.contains("experiments match"), "{text}");
    shot(&c, "03-experiments").await;

    let pid = approval
        .proposal_id
        .clone()
        .expect("the approval names its experiment");
    c.goto(&format!("{base}/experiments/{pid}")).await.unwrap();
    let text = page_text(&c).await;
    for want in [
        "Hypothesis",
        "Score S",
        "Gates",
        "Offline metrics vs production",
        "Lineage",
    ] {
        assert!(text.contains(want), "experiment page lacks {want}: {text}");
    }
    shot(&c, "04-experiment").await;

    c.goto(&format!("{base}/knowledge")).await.unwrap();
    let text = page_text(&c).await;
    assert!(
        text.contains("Lessons") && text.contains("Failure assets"),
        "{text}"
    );
    shot(&c, "05-knowledge").await;

    c.goto(&format!("{base}/harness")).await.unwrap();
    let text = page_text(&c).await;
    assert!(text.contains("version 1"), "{text}");
    shot(&c, "06-harness").await;

    c.goto(&format!("{base}/nope")).await.unwrap();
    let body = c.source().await.unwrap();
    assert!(body.contains("404"), "{body}");

    // 5. approve in the browser
    c.goto(&format!("{base}/approvals")).await.unwrap();
    let text = page_text(&c).await;
    assert!(text.contains(&approval.id), "{text}");
    shot(&c, "07-approvals-pending").await;
    // an attribute selector: approval ids may hold characters CSS `#id` does not (`ndcg@10`)
    c.find(Locator::Css(&format!(
        "[id=\"approval-{}\"] button.approve",
        approval.id
    )))
    .await
    .expect("approve button")
    .click()
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("answered=")
    {
        assert!(Instant::now() < deadline, "no redirect after approving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = page_text(&c).await;
    assert!(text.contains("Answered"), "{text}");
    assert!(
        text.contains("Nothing is waiting") || !text.contains("Pending\n"),
        "{text}"
    );
    shot(&c, "08-approvals-answered").await;
    let answer = recloop_agents::approvals::recorded_answer(&journal, &approval.id)
        .unwrap()
        .expect("the approval is answered in the journal");
    assert!(answer.approved && answer.by.is_person());

    // 6. the run continues (re-invoking `recloop run` resumes it) and the dashboard sees it
    c.goto(&format!("{base}/")).await.unwrap();
    let out = recloop(
        &ws,
        &[
            "run",
            "--iterations",
            "4",
            "--brain",
            "builtin",
            "--unattended",
            "wait",
        ],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(4)),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        journal.event_count().unwrap() > seq_before,
        "the run wrote more events"
    );
    let merged = journal
        .events(&recloop_journal::EventFilter {
            proposal_id: Some(pid.clone()),
            types: vec!["merged_into_production".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(merged.len(), 1, "the approved KEEP was merged");
    // live update: the open page refreshes itself from the stream (no reload)
    let deadline = Instant::now() + Duration::from_secs(15);
    let latest = journal.event_count().unwrap();
    loop {
        let live = c
            .find(Locator::Id("live"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if live.contains(&format!("#{latest}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no live update: {live}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let text = page_text(&c).await;
    assert!(!text.contains(&format!("{} —", approval.id)), "{text}");
    shot(&c, "09-runs-after-resume").await;
    c.goto(&format!("{base}/experiments/{pid}")).await.unwrap();
    let text = page_text(&c).await;
    assert!(text.contains("Merged as"), "{text}");
    shot(&c, "10-experiment-merged").await;

    c.close().await.unwrap();
    drop(driver);
}
