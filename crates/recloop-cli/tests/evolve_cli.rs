//! `recloop evolve` end to end through the workspace's `[llm]` roles (file-scripted models), then
//! `recloop journal show develop@2` shows the admitted version's parent, gain, diagnosis and diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_core::{Gate, TrajectoryStep};
use recloop_journal::{Event, Journal, NewEvent};
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn recloop(ws: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(args)
        .arg("--workspace")
        .arg(ws)
        .output()
        .expect("spawn recloop");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn answer(file: &str) -> serde_json::Value {
    json!({"type": "json", "value": {"summary": "raise the EASE weight", "files_changed": [file]}})
}

#[test]
fn evolve_admits_a_repair_and_journal_show_explains_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    recloop_agents::example::synthetic_example(ws, 60, 40).unwrap();
    recloop_agents::harness::install_defaults(ws).unwrap();
    let instructions = recloop_agents::harness::harness_dir(ws, "develop").join("instructions.md");
    let original = std::fs::read_to_string(&instructions).unwrap();
    let rule = "4. Touch editable paths only. Protected paths are rejected.\n";
    let defective = original.replace(rule, "");
    assert_ne!(defective, original);
    std::fs::write(&instructions, &defective).unwrap();

    // 4 develop trajectories, two of which failed the editable_paths gate: 3 replayed, 1 held out
    let j = Journal::for_workspace(ws, None).unwrap();
    for i in 1..=4u32 {
        let pid = format!("p-{i}");
        j.append(NewEvent::new(
            "run-1",
            i,
            Event::TrajectoryStep {
                proposal_id: Some(pid.clone()),
                step: TrajectoryStep {
                    agent: "develop".into(),
                    input: format!("SYSTEM\n---\nImplement {pid}."),
                    tool_calls: vec![],
                    output: "{}".into(),
                    tokens_in: 1,
                    tokens_out: 1,
                    cost_usd: 0.0,
                    duration_ms: 1,
                },
            },
        ))
        .unwrap();
        if i % 2 == 1 {
            j.append(NewEvent::new(
                "run-1",
                i,
                Event::GateFailed {
                    proposal_id: pid,
                    candidate_id: format!("c-{i}"),
                    gate: Gate::EditablePaths,
                    round: 0,
                    detail: "eval/eval.toml is protected".into(),
                },
            ))
            .unwrap();
        }
    }
    drop(j);

    // develop's scripted replays, in call order: the incumbent on 3 tasks × 3 seeds (one in
    // three touches eval/), the candidate (clean), then the held-out task before and after
    let mut develop = Vec::new();
    for k in 0..9 {
        develop.push(answer(if k % 3 == 0 {
            "eval/eval.toml"
        } else {
            "pipeline.toml"
        }));
    }
    for _ in 0..9 {
        develop.push(answer("pipeline.toml"));
    }
    for k in 0..3 {
        develop.push(answer(if k == 0 {
            "eval/eval.toml"
        } else {
            "pipeline.toml"
        }));
    }
    for _ in 0..3 {
        develop.push(answer("pipeline.toml"));
    }
    let repair = recloop_agents::diff::make("instructions.md", &defective, &original);
    let evolve = json!([
        {"type": "json", "value": {
            "score": 3.0,
            "loss_report": "A third of the replays write eval/eval.toml.",
            "diagnosis": [{"category": "missing_constraint",
                           "finding": "nothing forbids protected paths",
                           "evidence": ["develop:run-1:1 protected_paths failed"]}]}},
        {"type": "json", "value": {"edits": [
            {"category": "missing_constraint", "rationale": "restore the rule",
             "plan": ["instructions.md"], "diff": repair}]}}
    ]);
    std::fs::write(ws.join("develop.json"), json!(develop).to_string()).unwrap();
    std::fs::write(ws.join("evolve.json"), evolve.to_string()).unwrap();
    let manifest = ws.join("recloop.toml");
    let mut m = std::fs::read_to_string(&manifest).unwrap();
    m.push_str(
        "\n[llm]\nprovider = \"scripted\"\nmodel = \"evolve.json\"\n\n[llm.roles]\n\
         develop = [\"scripted:develop.json\"]\nevolve = [\"scripted:evolve.json\"]\n",
    );
    std::fs::write(&manifest, m).unwrap();

    let (ok, out) = recloop(ws, &["evolve", "--agent", "develop", "--rounds", "1"]);
    assert!(ok, "{out}");
    // incumbent: failed tasks score 5·2/4 = 2.5 on a hit, the other 5·2/3; one hit per task
    let old = ((2.5 + 5.0 + 5.0) / 3.0 * 2.0 + (5.0 * 2.0 / 3.0 + 5.0 + 5.0) / 3.0) / 3.0;
    assert!(
        out.contains(&format!(
            "v2 [missing_constraint] ADMITTED: mean gain {:+.3}",
            5.0 - old
        )),
        "{out}"
    );
    assert!(out.contains("held-out (1 tasks): 4.444 -> 5.000"), "{out}");
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);

    let (ok, show) = recloop(ws, &["journal", "show", "develop@2"]);
    assert!(ok, "{show}");
    for want in [
        "harness develop v2 (parent v1) admitted",
        "gain +",
        "verifier protected_paths: pass rate 0.667 -> 1.000",
        "[missing_constraint] nothing forbids protected paths",
        "+4. Touch editable paths only.",
    ] {
        assert!(show.contains(want), "missing {want:?} in\n{show}");
    }
    // the next call continues after the journal's last round; the same scripted edit no longer
    // applies to v2, so the safety check refuses it and v2 stays in use
    let (ok, out) = recloop(ws, &["evolve", "--agent", "develop"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 round(s) of develop already in the journal"),
        "{out}"
    );
    assert!(
        out.contains("evolve develop round 2: incumbent v2"),
        "{out}"
    );
    assert!(
        out.contains("v3 [missing_constraint] refused: parse safety check"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);
}
