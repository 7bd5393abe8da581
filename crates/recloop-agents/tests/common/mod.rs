//! Shared fixtures: small synthetic pipeline workspaces.
#![allow(dead_code)]

use recloop_agents::example::synthetic_example;
use recloop_core::{Gate, TrajectoryStep};
use recloop_journal::{Event, EventFilter, Journal, NewEvent};
use std::path::Path;

/// A synthetic built-in pipeline workspace (git repo, MostPop production) in a temp dir.
pub fn synthetic_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    synthetic_example(dir.path(), 300, 200).unwrap();
    dir
}

/// Approvals answered by a script that approves everything (recorded as a policy, not a
/// person): the synthetic test workspaces decide offline (`[online] platform = "none"`), so
/// every KEEP asks.
pub fn approving() -> recloop_agents::approvals::Approvals {
    recloop_agents::approvals::Approvals {
        prompter: Some(recloop_agents::approvals::ScriptedPrompter::approve_all()),
        unattended: recloop_agents::approvals::Unattended::Wait,
    }
}

/// Whether a test may run: `true` when `available`; otherwise the test is skipped with a message
/// saying what is missing and how to enable it — except under CI (`CI` set), where a missing
/// requirement fails the test.
pub fn require(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI requires {what}: {how}");
    }
    // written to the process's stderr, not through `eprintln!`, so that the test harness's
    // output capture does not swallow it
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: this test needs {what}; {how} (under CI, with `CI` set, it fails instead)"
    );
    false
}

/// True when commands can run confined (bubblewrap, or the built-in namespace sandbox).
pub fn sandbox_available() -> bool {
    recloop_agents::sandbox::Backend::detect().is_ok()
}

/// Whether a test on examples/python-mf may run: numpy and a sandbox, each skipped (or failed
/// under CI) with its own message by [`require`].
pub fn python_workspace_runs() -> bool {
    require(
        numpy_available(),
        "python3 with numpy (examples/python-mf is a Python workspace)",
        "install it with `apt-get install -y python3-numpy` or `python3 -m pip install numpy`",
    ) && require(
        sandbox_available(),
        "a sandbox that can confine commands (an external workspace's commands run code it does not trust)",
        "install bubblewrap (`apt-get install -y bubblewrap`) or enable unprivileged user namespaces",
    )
}

/// True when `python3 -c "import numpy"` works.
pub fn numpy_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The journal of a workspace.
pub fn journal(ws: &Path) -> Journal {
    Journal::for_workspace(ws, None).unwrap()
}

fn strip_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| {
                !(k.ends_with("_s")
                    || k.ends_with("_ms")
                    || k.starts_with("latency")
                    || k == "duration_ms")
            });
            for x in m.values_mut() {
                strip_timings(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_timings),
        serde_json::Value::String(text) => *text = mask_timings_in_text(text),
        _ => {}
    }
}

fn is_timing_key(word: &str) -> bool {
    word.ends_with("_s") || word.ends_with("_ms") || word.starts_with("latency")
}

/// Texts quote timings too ("latency_p99_ms 0.0078 -> 0.0116"): the numbers after a timing
/// key become `T`.
fn mask_timings_in_text(text: &str) -> String {
    let mut out = Vec::new();
    let mut mask = 0;
    for word in text.split(' ') {
        if mask > 0 && word != "->" {
            let tail = word.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.eE".contains(c));
            out.push(format!("T{tail}"));
            mask -= 1;
            continue;
        }
        if word == "->" {
            out.push(word.to_string());
            continue;
        }
        out.push(word.to_string());
        if is_timing_key(word.trim_end_matches(':')) {
            mask = 2;
        }
    }
    out.join(" ")
}

/// The journal as comparable lines: `key type json`, sorted by key, run-resumed events dropped,
/// timings stripped and the workspace path replaced.
pub fn canonical(ws: &Path) -> Vec<String> {
    let j = journal(ws);
    let root = ws.canonicalize().unwrap().display().to_string();
    let mut out: Vec<String> = j
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| !matches!(e.event, Event::RunResumed { .. }))
        .map(|e| {
            let mut v = serde_json::to_value(&e.event).unwrap();
            strip_timings(&mut v);
            let text = v
                .to_string()
                .replace(&root, "WS")
                .replace(&ws.display().to_string(), "WS");
            format!(
                "{} {} {} {}",
                e.idempotency_key.clone().unwrap_or_default(),
                e.event.type_name(),
                e.parent.map(|p| p.to_string()).unwrap_or_default(),
                text
            )
        })
        .collect();
    out.sort();
    out
}

/// Run `opts` to the end on one workspace from `make`; then, for each step count in `stops`,
/// stop a run on a fresh workspace after that many steps (as a kill would), resume it, and
/// require a journal identical to the uninterrupted one.
pub fn assert_resumes_identically(
    make: impl Fn() -> tempfile::TempDir,
    opts: &recloop_agents::orchestrator::RunOptions,
    stops: &[usize],
) {
    use recloop_agents::orchestrator::{RunOptions, run};
    let a = make();
    run(a.path(), opts).unwrap();
    let uninterrupted = canonical(a.path());
    for &stop in stops {
        let b = make();
        let err = run(
            b.path(),
            &RunOptions {
                stop_after_steps: Some(stop),
                ..opts.clone()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
        let s = run(b.path(), opts).unwrap();
        assert_eq!(s.run_id, "run-1");
        let resumed = canonical(b.path());
        assert_eq!(uninterrupted.len(), resumed.len(), "stop after {stop}");
        for (x, y) in uninterrupted.iter().zip(&resumed) {
            assert_eq!(x, y, "stop after {stop}");
        }
    }
}

/// 8 develop trajectories, every other one followed by an `editable_paths` gate failure.
pub fn seed_develop_trajectories(ws: &Path) {
    let j = journal(ws);
    let mut batch = Vec::new();
    for i in 1..=8u32 {
        let pid = format!("p-{i}");
        batch.push(NewEvent::new(
            "run-1",
            i,
            Event::TrajectoryStep {
                proposal_id: Some(pid.clone()),
                step: TrajectoryStep {
                    agent: "develop".into(),
                    input: format!(
                        "SYSTEM PROMPT\n---\nImplement proposal {pid}: raise the EASE blend \
                         weight by 0.{i} in pipeline.toml."
                    ),
                    tool_calls: vec![],
                    output: "{\"summary\": \"done\", \"files_changed\": [\"eval/eval.toml\"]}"
                        .into(),
                    tokens_in: 10,
                    tokens_out: 10,
                    cost_usd: 0.0,
                    duration_ms: 1,
                },
            },
        ));
        if i % 2 == 1 {
            batch.push(NewEvent::new(
                "run-1",
                i,
                Event::GateFailed {
                    proposal_id: pid.clone(),
                    candidate_id: format!("c-{i}"),
                    gate: Gate::EditablePaths,
                    round: 0,
                    detail: "eval/eval.toml: protected or not editable".into(),
                },
            ));
        }
    }
    j.append_batch(batch).unwrap();
}
