//! SGPO-II: merged changes (a journal KEEP and the workspace's git history, filtered as AgentX
//! does) become requirement-only replay tasks for Develop with the merged patch hidden; the coding
//! rubric scores them; an edit that makes Develop change every file the requirement needs is
//! admitted with the measured gain, and the held-out score rises.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::evolve::{self, Evidence, EvolveModels, EvolveOptions, history};
use recloop_agents::harness;
use recloop_journal::{Event, NewEvent, fixtures};
use recloop_llm::{
    ChatModel, ChatRequest, ChatResponse, Message, ScriptedModel, ScriptedTurn, StopReason, Usage,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

const RULE: &str =
    "8. Change every file the requirement needs, scripts as well as configuration.\n";

fn respond(name: &str, text: String) -> recloop_llm::Result<ChatResponse> {
    Ok(ChatResponse {
        model: name.into(),
        message: Message::assistant(text),
        usage: Usage {
            input_tokens: 50,
            output_tokens: 10,
        },
        stop_reason: StopReason::EndTurn,
    })
}

/// Paths (`*.toml`, `*.rhai`) named in `text`.
fn paths_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '`')
        .map(|w| w.trim_end_matches(['.', ':', ')']))
        .filter(|w| w.ends_with(".toml") || w.ends_with(".rhai"))
        .map(str::to_string)
        .collect()
}

/// Develop in the replays: it implements the requirement in the files it names, but without
/// [`RULE`] it changes only the first one. It fails the test if the merged patch leaks into
/// its input.
struct DevelopSim;

impl ChatModel for DevelopSim {
    fn name(&self) -> &str {
        "develop-sim"
    }
    fn chat(&self, request: &ChatRequest) -> recloop_llm::Result<ChatResponse> {
        let system = &request.messages[0].content;
        let user = &request.messages[1].content;
        let req = user
            .split("# Requirement\n")
            .nth(1)
            .and_then(|r| r.split("\n# Editable files").next())
            .expect("a requirement-only task");
        let mut files = paths_in(req);
        // the lines this change added (`marker-N`) are nowhere in what Develop sees
        for f in &files {
            if let Some(n) = f
                .strip_prefix("scripts/rank/boost_")
                .and_then(|x| x.strip_suffix(".rhai"))
            {
                assert!(
                    !user.contains(&format!("marker-{n}")),
                    "the merged patch leaked: {user}"
                );
            }
        }
        if !system.contains(RULE.trim_end()) {
            files.truncate(1);
        }
        respond(
            "develop-sim",
            json!({"summary": "implement the requirement", "files_changed": files}).to_string(),
        )
    }
}

/// The grader: semantic correctness and requirement coverage 5 when the answer changes every
/// file of the merged patch, else 3; safety 5, style 4.
struct GraderSim;

impl ChatModel for GraderSim {
    fn name(&self) -> &str {
        "grader-sim"
    }
    fn chat(&self, request: &ChatRequest) -> recloop_llm::Result<ChatResponse> {
        let p = &request.messages[0].content;
        let merged = p
            .split("# Merged change (hidden from the developer)\n")
            .nth(1)
            .and_then(|s| s.split("\n# Candidate answer\n").next())
            .expect("the grader sees the merged change");
        let hidden: BTreeSet<String> = merged
            .lines()
            .filter_map(|l| l.strip_prefix("+++ b/"))
            .map(str::to_string)
            .collect();
        let answer = p
            .split("\n# Candidate answer\n")
            .nth(1)
            .and_then(|s| s.split("\n\nScore 1-5").next())
            .expect("the grader sees the answer");
        let v: serde_json::Value = serde_json::from_str(answer).expect("answer JSON");
        let touched = history::touched_files(&v);
        let full = hidden.is_subset(&touched);
        let s = if full { 5 } else { 3 };
        respond(
            "grader-sim",
            json!({"semantic_correctness": s, "requirement_coverage": s,
                   "default_safety": 5, "style_consistency": 4, "rationale": "sim"})
            .to_string(),
        )
    }
}

fn git(ws: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(ws)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn commit(ws: &Path, msg: &str, files: &[(&str, String)]) -> String {
    for (p, text) in files {
        let path = ws.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-qm", msg]);
    git(ws, &["rev-parse", "HEAD"])
}

fn lines(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("// {prefix} {i}\n")).collect()
}

/// A feature commit: 6 lines appended to pipeline.toml (comments) and a new 6-line script.
fn feature(ws: &Path, n: u32) -> String {
    let pipeline = std::fs::read_to_string(ws.join("pipeline.toml")).unwrap();
    let script = format!("scripts/rank/boost_{n}.rhai");
    commit(
        ws,
        &format!("Feature {n}: boost fresh items\n\nAdd boost {n} in pipeline.toml and {script}."),
        &[
            (
                "pipeline.toml",
                format!(
                    "{pipeline}{}",
                    lines(&format!("# marker-{n}"), 6).replace("//", "")
                ),
            ),
            (script.as_str(), lines(&format!("marker-{n} boost"), 6)),
        ],
    )
}

#[test]
fn merged_changes_become_hidden_patch_tasks_and_the_coding_rubric_admits_a_repair() {
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    let manifest = recloop_core::Manifest::load(ws).unwrap();
    assert!(manifest.is_editable("scripts/rank/boost_1.rhai"));
    // recloop's own state is never part of the history
    let exclude = ws.join(".git/info/exclude");
    let mut ex = std::fs::read_to_string(&exclude).unwrap_or_default();
    ex.push_str("\n.recloop/\n");
    std::fs::write(&exclude, ex).unwrap();
    harness::install_defaults(ws).unwrap();
    // Develop's harness lacks RULE (the defect SGPO-II should repair)
    let instructions = harness::harness_dir(ws, "develop").join("instructions.md");
    let original = std::fs::read_to_string(&instructions).unwrap();
    assert!(!original.contains(RULE.trim_end()));

    let mut kept = vec![feature(ws, 1)];
    let revert = commit(
        ws,
        "Revert \"Feature 1: boost fresh items\"",
        &[("scripts/rank/boost_1.rhai", lines("undone", 12))],
    );
    kept.push(feature(ws, 2));
    let pipeline = std::fs::read_to_string(ws.join("pipeline.toml")).unwrap();
    let reformat = commit(
        ws,
        "Tidy pipeline.toml",
        &[(
            "pipeline.toml",
            pipeline.lines().map(|l| format!("{l}   \n")).collect(),
        )],
    );
    kept.push(feature(ws, 3));
    let bump = commit(
        ws,
        "Pin numpy",
        &[(
            "requirements.txt",
            lines("numpy==2.", 12).replace("// ", ""),
        )],
    );
    let tiny = commit(
        ws,
        "Typo",
        &[(
            "scripts/rank/boost_3.rhai",
            lines("marker-3 boost", 5) + "// x\n",
        )],
    );
    let huge = commit(
        ws,
        "Vendor a table",
        &[("scripts/table.rhai", lines("row", 5_001))],
    );
    kept.push(feature(ws, 4));
    // feature 5 is also a KEEP in the journal: its requirement is the proposal's text
    let base5 = git(ws, &["rev-parse", "HEAD"]);
    let keep5 = feature(ws, 5);
    let j = common::journal(ws);
    let mut p = fixtures::proposal(
        "p-5",
        "Boost fresh items (5)",
        "Fresh items are under-ranked; boost them in pipeline.toml and scripts/rank/boost_5.rhai.",
        "ranking",
        "boost",
    );
    p.location = vec!["LEAKED-LOCATION".into()];
    j.append_batch(vec![
        NewEvent::new("run-1", 1, Event::ProposalMade { proposal: p }),
        NewEvent::new(
            "run-1",
            1,
            Event::WorktreeCreated {
                proposal_id: "p-5".into(),
                candidate_id: "c-5".into(),
                path: "wt".into(),
                branch: "cand/p-5".into(),
                base_commit: base5,
            },
        ),
        NewEvent::new(
            "run-1",
            1,
            Event::MergedIntoProduction {
                proposal_id: "p-5".into(),
                candidate_id: "c-5".into(),
                commit: keep5.clone(),
                metrics: Default::default(),
            },
        ),
    ])
    .unwrap();

    // the scan: what survives the filters, and why the rest does not
    let h = harness::Harness::load(ws, "develop").unwrap();
    let events = j.events(&recloop_journal::EventFilter::default()).unwrap();
    let scan = history::build_tasks(ws, &events, &manifest, &h.contract().unwrap(), 12).unwrap();
    let reason = |sha: &str| {
        scan.skipped
            .iter()
            .find(|(id, _)| id == &format!("git:{}", &sha[..12]))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{sha} not skipped: {:?}", scan.skipped))
    };
    assert_eq!(reason(&revert), "revert");
    assert_eq!(reason(&reformat), "reformat");
    assert_eq!(reason(&bump), "dependency bump");
    assert!(reason(&tiny).contains("under 10"), "{}", reason(&tiny));
    assert!(reason(&huge).contains("over 5000"), "{}", reason(&huge));
    // the KEEP first, then the commits newest first (the root commit has no base)
    let ids: Vec<&str> = scan.tasks.iter().map(|t| t.id.as_str()).collect();
    let want_git: Vec<String> = kept
        .iter()
        .rev()
        .map(|s| format!("develop:git:{}", &s[..12]))
        .collect();
    assert_eq!(ids[0], "develop:keep:p-5", "{ids:?}");
    assert_eq!(
        ids[1..],
        want_git.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    let t5 = &scan.tasks[0];
    assert!(t5.input.contains("Fresh items are under-ranked"));
    assert!(
        !t5.input.contains("LEAKED-LOCATION"),
        "the proposal's location gives the answer away"
    );
    assert!(!t5.input.contains("marker-5"), "the merged patch is hidden");
    let hidden = t5.hidden.as_ref().unwrap();
    assert!(hidden.patch.contains("marker-5"));
    assert_eq!(hidden.files, ["pipeline.toml", "scripts/rank/boost_5.rhai"]);
    assert_eq!(
        t5.commit.as_deref(),
        Some(git(ws, &["rev-parse", &format!("{keep5}^")]).as_str())
    );

    // a round on the history: the first five tasks (the KEEP and features 4, 3, 2, 1; the fourth,
    // feature 2, is held out)
    let diagnosis = json!({
        "score": 3.4, "loss_report": "only pipeline.toml is changed; the scripts are left out",
        "diagnosis": [{"category": "missing_constraint",
                       "finding": "nothing asks to change every file the requirement needs",
                       "evidence": ["develop:keep:p-5 failed coding_pass: files 4"]}]
    });
    let repair =
        recloop_agents::diff::make("instructions.md", &original, &format!("{original}{RULE}"));
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(diagnosis),
        ScriptedTurn::json(json!({"edits": [{"category": "missing_constraint",
            "rationale": "require every needed file", "plan": ["instructions.md"],
            "diff": repair}]})),
    ]));
    let models = EvolveModels {
        agent: Arc::new(DevelopSim),
        evaluator: scripted.clone(),
        refiner: scripted.clone(),
        grader: Some(Arc::new(GraderSim)),
        ledger: None,
    };
    let opts = EvolveOptions {
        evidence: Evidence::History,
        max_tasks: 5,
        ..EvolveOptions::new("develop")
    };
    let summary = evolve::evolve(ws, &opts, &models).unwrap();
    let round = &summary.rounds[0];
    println!("{round}");
    assert_eq!(scripted.remaining(), 0);
    assert_eq!(round.evidence, Evidence::History);
    assert_eq!(round.tasks.len(), 4);
    assert_eq!(round.held_out, [want_git[2].clone()]);
    // the rubric's numbers, by hand: without the rule, semantic 3, requirement 3, files 4
    // (1 of 2 files: F1 2/3), safety 5, style 4 → 1.2 + 0.75 + 0.8 + 0.5 + 0.2 = 3.45, no pass;
    // with it 2 + 1.25 + 1 + 0.5 + 0.2 = 4.95, a pass
    assert!(
        (round.incumbent_score - 3.45).abs() < 1e-9,
        "{}",
        round.incumbent_score
    );
    let c = &round.candidates[0];
    assert!(c.admitted, "{c:?}");
    let paired = c.paired.as_ref().unwrap();
    assert!((paired.mean_gain - 1.5).abs() < 1e-9, "{paired:?}");
    assert_eq!(paired.old_pass[&evolve::tasks::Verifier::CodingPass], 0.0);
    assert_eq!(paired.new_pass[&evolve::tasks::Verifier::CodingPass], 1.0);
    assert!((round.held_out_before.unwrap() - 3.45).abs() < 1e-9);
    assert!((round.held_out_after.unwrap() - 4.95).abs() < 1e-9);
    println!(
        "HELD-OUT develop (SGPO-II, merged changes; defect: no every-file rule): {} tasks, \
         coding rubric {:.3} -> {:.3} (1-5 weighted)",
        round.held_out.len(),
        round.held_out_before.unwrap(),
        round.held_out_after.unwrap()
    );
    assert!(
        std::fs::read_to_string(&instructions)
            .unwrap()
            .contains(RULE.trim_end())
    );
    // trajectories remain the default evidence; history is for develop only
    let err = evolve::evolve(
        ws,
        &EvolveOptions {
            evidence: Evidence::History,
            ..EvolveOptions::new("brainstorm")
        },
        &models,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("develop"), "{err}");
}
