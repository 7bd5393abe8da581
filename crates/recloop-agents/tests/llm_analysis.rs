//! Brainstorm's analysis tools with a scripted model: `run_sql_query` answers from the journal
//! (read-only; a write comes back as a tool error), the query is journaled as an
//! `analysis.sql` note and shown as evidence to the next Brainstorm; `journal_search` answers;
//! the workspace's exposure and event logs are queried in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::analysis::{Analysis, NOTE_TOPIC};
use recloop_agents::brain::llm::{LlmBrain, Prices};
use recloop_agents::diff;
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_journal::{Event, EventFilter};
use recloop_llm::{ChatRequest, Message, Role, ScriptedModel, ScriptedTurn};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn proposal() -> serde_json::Value {
    json!({
        "title": "switch to EASE", "hypothesis": "an item-item linear model beats popularity",
        "mechanism": "closed-form item weights", "target_metric": "ndcg@10",
        "direction": "increase", "location": ["pipeline.toml"], "required_signals": [],
        "risks": ["latency"], "validation": "validation split", "maturity": "ready",
        "kind": "explore",
        "evidence": [{"source": "journal", "reference": "run_sql_query", "summary": "no experiment yet"}],
        "stage": "candidates", "lever": "candidates.ease",
        "score_parts": {"objective": 0.8, "business": 0.5, "feasibility": 0.9, "handoff": 0.9,
                        "evidence": 0.4, "risk": 0.2}
    })
}

fn develop_turns(ws: &Path) -> Vec<ScriptedTurn> {
    let old = std::fs::read_to_string(ws.join("pipeline.toml")).unwrap();
    let new = old.replace(
        "kind = \"mostpop\"",
        "kind = \"ease\"\nparams = { lambda = 200.0 }",
    );
    vec![
        ScriptedTurn::tool_call(
            "apply_diff",
            json!({"diff": diff::make("pipeline.toml", &old, &new)}),
        ),
        ScriptedTurn::json(json!({"summary": "EASE", "files_changed": ["pipeline.toml"]})),
    ]
}

/// The answer to the newest tool call in `req`.
fn last_tool_answer(req: &ChatRequest) -> &Message {
    let m = req.messages.last().unwrap();
    assert_eq!(m.role, Role::Tool, "{m:?}");
    m
}

const COUNT_SQL: &str = "SELECT count(*) AS n FROM events WHERE type = 'run_started'";

#[test]
fn brainstorm_queries_the_journal_and_the_analysis_is_evidence_next_time() {
    let ws = common::synthetic_workspace();
    let mut turns = vec![
        ScriptedTurn::tool_call("run_sql_query", json!({"sql": COUNT_SQL})),
        ScriptedTurn::tool_call("run_sql_query", json!({"sql": "DELETE FROM events"})),
        ScriptedTurn::tool_call(
            "run_sql_query",
            json!({"sql": "SELECT count(*) FROM exposures", "database": "logs"}),
        ),
        ScriptedTurn::tool_call("journal_search", json!({"text": "popularity"})),
        ScriptedTurn::json(json!({"proposals": [proposal()]})),
    ];
    turns.extend(develop_turns(ws.path()));
    let model = Arc::new(ScriptedModel::new(turns));
    let opts = RunOptions {
        iterations: Some(1),
        brain: Some(Arc::new(LlmBrain::new(model.clone(), Prices::FREE))),
        approvals: common::approving(),
        ..Default::default()
    };
    run(ws.path(), &opts).unwrap();
    let requests = model.requests();
    let offered: Vec<&str> = requests[0].tools.iter().map(|t| t.name.as_str()).collect();
    assert!(
        offered.contains(&"run_sql_query") && offered.contains(&"journal_search"),
        "{offered:?}"
    );
    // the query's table reached the model
    let table = last_tool_answer(&requests[1]);
    assert!(!table.is_error, "{table:?}");
    assert_eq!(table.content, "n\n1\n(1 row)");
    // a write is a tool error, and the journal is untouched
    let refused = last_tool_answer(&requests[2]);
    assert!(refused.is_error, "{refused:?}");
    assert!(refused.content.contains("read-only"), "{}", refused.content);
    // no logs in this workspace: the error says which tables exist
    let no_logs = last_tool_answer(&requests[3]);
    assert!(no_logs.is_error, "{no_logs:?}");
    assert!(
        no_logs.content.contains("no logs") && no_logs.content.contains("v_experiments"),
        "{}",
        no_logs.content
    );
    let search = last_tool_answer(&requests[4]);
    assert!(!search.is_error, "{search:?}");

    let journal = common::journal(ws.path());
    journal.verify().unwrap();
    let events = journal.events(&EventFilter::default()).unwrap();
    assert!(events.iter().any(|e| e.event.type_name() == "run_started"));
    let notes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Note { topic, text, data } if topic == NOTE_TOPIC => Some((text, data)),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "only the successful query is journaled: {notes:?}"
    );
    assert_eq!(notes[0].0, COUNT_SQL);
    assert_eq!(notes[0].1["rows"], 1);
    assert_eq!(notes[0].1["summary"], "1 row; first: n=1");
    // the brainstorm's trajectory records the calls, the failed ones with their errors
    let calls: Vec<serde_json::Value> = events
        .iter()
        .find_map(|e| match &e.event {
            Event::TrajectoryStep { step, .. } if step.agent == "brainstorm" => {
                Some(step.tool_calls.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0]["ok"], true);
    assert_eq!(calls[1]["ok"], false);

    // the next run's Brainstorm sees the analysis as evidence (its repeat proposal is rejected
    // by admission, so nothing more is asked of the model)
    let again = Arc::new(ScriptedModel::new([
        ScriptedTurn::tool_call("journal_search", json!({"text": "EASE popularity"})),
        ScriptedTurn::json(json!({"proposals": [proposal()]})),
    ]));
    let opts = RunOptions {
        iterations: Some(1),
        brain: Some(Arc::new(LlmBrain::new(again.clone(), Prices::FREE))),
        approvals: common::approving(),
        ..Default::default()
    };
    run(ws.path(), &opts).unwrap();
    let prompt = &again.requests()[0].messages[1].content;
    let section = prompt
        .split("## Recent analyses (run_sql_query)\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no analyses in the evidence:\n{prompt}"));
    assert!(
        section.contains(COUNT_SQL) && section.contains("1 row; first: n=1"),
        "{section}"
    );
    // journal_search finds the first run's hypothesis
    let hits = last_tool_answer(&again.requests()[1]).content.clone();
    eprintln!("evidence section:\n{section}\njournal_search answer:\n{hits}");
    assert!(
        hits.contains("hypothesis:") && hits.contains("switch to EASE"),
        "{hits}"
    );
}

#[test]
fn the_workspace_logs_are_queried_in_memory() {
    let ws = common::synthetic_workspace();
    let mut w = recloop_logs::LogWriter::csv(ws.path().join("logs")).unwrap();
    for unit in 0..10u64 {
        let arm = if unit % 2 == 0 {
            "control"
        } else {
            "treatment"
        };
        w.exposure(unit, "exp-1", arm, 100 + unit as i64, 0)
            .unwrap();
        w.event(unit, 200, 0, "watch_time", unit as f64).unwrap();
    }
    w.finish().unwrap();
    let file = ws.path().join("recloop.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    doc["online"]["logs"] = toml_edit::value("logs");
    std::fs::write(&file, doc.to_string()).unwrap();
    let manifest = recloop_core::Manifest::load(&file).unwrap();
    let tools = Analysis::new(common::journal(ws.path()), &manifest, ws.path());
    let q = |sql: &str| tools.run_sql_query(sql, "logs");
    assert_eq!(
        q("SELECT arm, count(*) AS units FROM exposures GROUP BY arm ORDER BY arm").unwrap(),
        "arm | units\ncontrol | 5\ntreatment | 5\n(2 rows)"
    );
    assert_eq!(
        q(
            "SELECT x.arm, sum(e.value) AS watch FROM exposures x JOIN events e USING (unit_id) \
           GROUP BY x.arm ORDER BY x.arm"
        )
        .unwrap(),
        "arm | watch\ncontrol | 20\ntreatment | 25\n(2 rows)"
    );
    let e = q("DROP TABLE events").unwrap_err();
    assert!(
        e.contains("read-only") && e.contains("exposures (10 rows)"),
        "{e}"
    );
    let e = tools.run_sql_query("SELECT 1", "warehouse").unwrap_err();
    assert!(e.contains("unknown database"), "{e}");
    // the journal is still the default database
    assert_eq!(
        tools
            .run_sql_query("SELECT count(*) AS n FROM v_experiments", "")
            .unwrap(),
        "n\n0\n(1 row)"
    );
}
