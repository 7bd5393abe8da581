//! The reward persona with the built-in brain, end to end through the binary: `recloop sim logs`
//! writes production logs, the persona asks them (through `run_sql_query`) whether liked items
//! predict return, proposes to learn from liked interactions (`[positives]`), the proxy judges it
//! offline and the simulator's A/B keeps it; the same with the logs kept in PostgreSQL. Without
//! logs it proposes nothing and says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_core::EvidenceSource;
use recloop_journal::{Event, EventFilter, Journal};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_recloop");

fn recloop(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recloop {args:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// The MovieLens example on synthetic data (simulator platform), EASE in production, and only
/// the reward persona.
fn reward_workspace(root: &Path) -> std::path::PathBuf {
    recloop(
        root,
        &[
            "init",
            "--example",
            "movielens",
            "--dataset",
            "synthetic",
            "ws",
        ],
    );
    let ws = root.join("ws");
    std::fs::write(
        ws.join("pipeline.toml"),
        "[[models]]\nname = \"ease\"\nkind = \"ease\"\n",
    )
    .unwrap();
    let manifest = std::fs::read_to_string(ws.join("recloop.toml")).unwrap();
    let only_reward = manifest.replace(
        "[[personas]]\nname = \"optimizer\"\n\n[[personas]]\nname = \"architecture\"\n\n",
        "",
    );
    assert_ne!(manifest, only_reward, "the example's personas changed");
    std::fs::write(ws.join("recloop.toml"), only_reward).unwrap();
    git(
        &ws,
        &[
            "commit",
            "-qam",
            "EASE in production; the reward persona only",
        ],
    );
    ws
}

fn events(ws: &Path) -> Vec<Event> {
    Journal::for_workspace(ws, None)
        .unwrap()
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

#[test]
fn the_reward_persona_finds_a_signal_in_the_logs_and_ships_a_positives_change() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = reward_workspace(tmp.path());
    let wrote = recloop(&ws, &["sim", "logs"]);
    assert!(
        String::from_utf8_lossy(&wrote.stdout).contains(".recloop/logs/production"),
        "{}",
        String::from_utf8_lossy(&wrote.stdout)
    );
    run_and_check_the_reward_change_is_kept(&ws);
}

/// The same with the logs kept in PostgreSQL (`RECLOOP_TEST_POSTGRES_URL`; skipped with a
/// message when unset, except under CI, where it fails): `[online] logs` names the database,
/// `recloop sim logs` writes the tables there, and the persona's `run_sql_query` reads them in
/// place.
#[test]
fn the_reward_persona_reads_logs_kept_in_postgresql() {
    let Some(base) = common::pg_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ws = reward_workspace(tmp.path());
    let schema = common::fresh_schema("rlogs");
    let sep = if base.contains('?') { '&' } else { '?' };
    let manifest = std::fs::read_to_string(ws.join("recloop.toml")).unwrap();
    let in_postgres = manifest.replace(
        "logs = \".recloop/logs/production\"",
        &format!("logs = \"{base}{sep}schema={schema}\""),
    );
    assert_ne!(manifest, in_postgres, "the example's [online] logs changed");
    std::fs::write(ws.join("recloop.toml"), in_postgres).unwrap();
    git(&ws, &["commit", "-qam", "logs in PostgreSQL"]);
    let wrote = recloop(&ws, &["sim", "logs"]);
    let said = String::from_utf8_lossy(&wrote.stdout);
    assert!(
        said.contains(&format!("{schema}.exposures")) && said.contains(&format!("{schema}.events")),
        "{said}"
    );
    assert!(!ws.join(".recloop/logs/production").exists());
    run_and_check_the_reward_change_is_kept(&ws);
}

/// Three iterations of the reward persona: its question to the logs is journaled, every
/// proposal cites the answer, and a stricter positives threshold is kept and merged.
fn run_and_check_the_reward_change_is_kept(ws: &Path) {
    recloop(
        ws,
        &[
            "run",
            "--iterations",
            "3",
            "--seed",
            "5",
            "--unattended",
            "reject",
        ],
    );
    let all = events(ws);
    // the persona's question to the logs is journaled as an analysis
    let sql = recloop_agents::brain::builtin::RETURN_AFTER_LIKE_SQL;
    assert!(
        all.iter()
            .any(|e| matches!(e, Event::Note { topic, text, data }
            if topic == "analysis.sql" && text == sql && data["database"] == "logs")),
        "no analysis.sql note"
    );
    let proposals: Vec<&recloop_core::Proposal> = all
        .iter()
        .filter_map(|e| match e {
            Event::ProposalMade { proposal } => Some(proposal),
            _ => None,
        })
        .collect();
    assert!(!proposals.is_empty());
    for p in &proposals {
        assert_eq!(p.persona, "reward", "{}", p.id);
        assert!(p.lever.starts_with("positives."), "{}: {}", p.id, p.lever);
        assert_eq!(p.target_metric, "mean_rating@10", "{}", p.id);
        // every proposal cites what the logs said
        let cited = p
            .evidence
            .iter()
            .find(|e| e.source == EvidenceSource::Sql)
            .unwrap_or_else(|| panic!("{} cites no SQL: {:?}", p.id, p.evidence));
        assert_eq!(cited.reference, sql);
        assert!(
            cited.summary.contains("returned within 7 days"),
            "{}",
            cited.summary
        );
    }
    // a stricter positives threshold went online and was kept
    let kept: Vec<&String> = all
        .iter()
        .filter_map(|e| match e {
            Event::Verdict {
                proposal_id,
                experiment_id: Some(_),
                verdict,
                ..
            } if verdict.decision == recloop_core::Decision::Keep => Some(proposal_id),
            _ => None,
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let merged = Command::new("git")
        .args(["show", "main:pipeline.toml"])
        .current_dir(ws)
        .output()
        .unwrap();
    let production = String::from_utf8_lossy(&merged.stdout);
    assert!(
        production.contains("[positives]") && production.contains("min_rating = "),
        "{production}"
    );
}

#[test]
fn without_logs_the_reward_persona_proposes_nothing_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = reward_workspace(tmp.path());
    recloop(&ws, &["run", "--iterations", "1"]);
    let all = events(&ws);
    assert!(
        !all.iter().any(|e| matches!(e, Event::ProposalMade { .. })),
        "a proposal without evidence"
    );
    let said = all
        .iter()
        .find_map(|e| match e {
            Event::TrajectoryStep { step, .. } if step.agent == "brainstorm" => {
                Some(step.input.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        said.contains("reward persona") && said.contains("recloop sim logs"),
        "{said}"
    );
}
