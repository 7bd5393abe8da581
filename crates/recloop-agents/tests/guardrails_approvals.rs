//! Guardrails decide and approvals wait, through the whole loop with a scripted LLM brain:
//! a change past a hard guardrail is never kept (and leaves a failure asset naming the
//! guardrail, the values and the limit); a change past an attention level stops the run at a
//! pending approval, which `approve` lets through and `reject` discards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::approvals::{self, Approvals, ScriptedPrompter, Unattended};
use recloop_agents::brain::llm::{LlmBrain, Prices};
use recloop_agents::diff;
use recloop_agents::evaluator::{EvalError, OfflineEvaluator, Split};
use recloop_agents::orchestrator::{RunOptions, run};
use recloop_core::{Approver, Decision, MetricValues};
use recloop_journal::{Event, EventFilter, EventRecord};
use recloop_llm::{ScriptedModel, ScriptedTurn};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Production (MostPop) and the candidate (EASE) measured from the pipeline file: the candidate
/// is better on NDCG@10 and has latency `candidate_latency` (production: 0.062 ms).
struct ByPipeline {
    candidate_latency: f64,
}

impl OfflineEvaluator for ByPipeline {
    fn evaluate(&self, dir: &Path, split: Split) -> Result<MetricValues, EvalError> {
        let spec = std::fs::read_to_string(dir.join("pipeline.toml"))
            .map_err(|e| EvalError::Other(e.to_string()))?;
        let ease = spec.contains("kind = \"ease\"");
        let holdout = if split == Split::Holdout { 0.01 } else { 0.0 };
        let (ndcg, latency) = if ease {
            (0.40 + holdout, self.candidate_latency)
        } else {
            (0.30 + holdout, 0.062)
        };
        Ok([
            ("ndcg@10".to_string(), ndcg),
            ("latency_p99_ms".to_string(), latency),
            ("coverage@10".to_string(), 0.30),
        ]
        .into_iter()
        .collect())
    }
}

/// A synthetic pipeline workspace that decides offline, with a relative latency guardrail in
/// place of the example's absolute budget.
fn workspace() -> tempfile::TempDir {
    let ws = common::synthetic_workspace();
    let path = ws.path().join("recloop.toml");
    let old = std::fs::read_to_string(&path).unwrap();
    let m = old.replace(
        "{ name = \"latency_p99_ms\", direction = \"decrease\", max = 5.0 }",
        "{ name = \"latency_p99_ms\", direction = \"decrease\", attention = 0.05, hard = 0.20 }",
    );
    assert_ne!(m, old, "the example declares a latency budget");
    std::fs::write(&path, m).unwrap();
    recloop_agents::git::git(ws.path(), &["commit", "-qam", "latency guardrail"]).unwrap();
    ws
}

fn proposal() -> serde_json::Value {
    json!({
        "title": "switch to EASE", "hypothesis": "an item-item linear model beats popularity",
        "mechanism": "closed-form item weights", "target_metric": "ndcg@10",
        "direction": "increase", "location": ["pipeline.toml"], "required_signals": [],
        "risks": ["latency"], "validation": "validation split", "maturity": "ready",
        "kind": "explore", "evidence": [], "stage": "candidates", "lever": "candidates.ease",
        "score_parts": {"objective": 0.8, "business": 0.5, "feasibility": 0.9, "handoff": 0.9,
                        "evidence": 0.4, "risk": 0.2}
    })
}

/// The develop turns: switch the pipeline to EASE.
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

fn options(turns: Vec<ScriptedTurn>, latency: f64, approvals: Approvals) -> RunOptions {
    RunOptions {
        iterations: Some(1),
        brain: Some(Arc::new(LlmBrain::new(
            Arc::new(ScriptedModel::new(turns)),
            Prices::FREE,
        ))),
        evaluator: Some(Arc::new(ByPipeline {
            candidate_latency: latency,
        })),
        approvals,
        ..Default::default()
    }
}

fn events(ws: &Path) -> Vec<EventRecord> {
    common::journal(ws).events(&EventFilter::default()).unwrap()
}

fn verdicts(ev: &[EventRecord]) -> Vec<recloop_core::Verdict> {
    ev.iter()
        .filter_map(|e| match &e.event {
            Event::Verdict { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .collect()
}

fn merged(ev: &[EventRecord]) -> bool {
    ev.iter()
        .any(|e| matches!(e.event, Event::MergedIntoProduction { .. }))
}

#[test]
fn a_change_past_a_hard_guardrail_is_never_kept_and_leaves_a_failure_asset() {
    let ws = workspace();
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    // +1,350 % latency; every approval would be granted, so only the guardrail can stop it
    let s = run(ws.path(), &options(turns, 0.9, common::approving())).unwrap();
    println!("{s}");
    let ev = events(ws.path());
    let v = verdicts(&ev);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].decision, Decision::Discard);
    assert!(
        v[0].reason.contains("latency_p99_ms")
            && v[0].reason.contains("0.0620 -> 0.9000")
            && v[0].reason.contains("hard limit: at most 20% worse"),
        "{}",
        v[0].reason
    );
    assert!(!merged(&ev));
    assert_eq!(s.kept(), 0);
    let failure = ev.iter().find_map(|e| match &e.event {
        Event::KnowledgeAssetWritten { asset } if asset.id.starts_with("failure-") => {
            Some(asset.body.clone())
        }
        _ => None,
    });
    let body = failure.expect("a failure asset");
    assert!(
        body.contains("latency_p99_ms") && body.contains("hard limit"),
        "{body}"
    );
}

#[test]
fn attention_waits_for_a_person_and_approve_lets_it_through() {
    let ws = workspace();
    let nobody = Approvals {
        prompter: None,
        unattended: Unattended::Wait,
    };
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    // +9.7 % latency: past attention (5 %), within hard (20 %)
    let s = run(ws.path(), &options(turns, 0.068, nobody.clone())).unwrap();
    assert_eq!(s.outcome, "waiting_for_approval", "{s}");
    assert_eq!(s.pending_approvals.len(), 1, "{s}");
    let id = s.pending_approvals[0].0.clone();
    assert!(id.ends_with("-guardrail-latency_p99_ms"), "{id}");
    let j = common::journal(ws.path());
    let pending = approvals::list(&j).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].answer.is_none());
    assert!(
        verdicts(&events(ws.path())).is_empty(),
        "no verdict before the answer"
    );
    // the same run continues, answered: the recorded candidate is reused (no develop turns),
    // then the offline-only KEEP asks too
    approvals::answer(&j, &id, true, "", Approver::Person { via: "test".into() }).unwrap();
    let s = run(ws.path(), &options(vec![], 0.068, nobody.clone())).unwrap();
    assert_eq!(s.outcome, "waiting_for_approval", "{s}");
    let keep = s.pending_approvals[0].0.clone();
    assert!(keep.ends_with("-offline-keep"), "{keep}");
    approvals::answer(&j, &keep, true, "", Approver::Person { via: "test".into() }).unwrap();
    let s = run(ws.path(), &options(vec![], 0.068, nobody)).unwrap();
    println!("{s}");
    assert_eq!(s.outcome, "completed");
    assert_eq!(s.run_id, "run-1", "one run, continued");
    let ev = events(ws.path());
    let v = verdicts(&ev);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].decision, Decision::Keep);
    assert!(
        v[0].caveats
            .iter()
            .any(|c| c.contains("attention level") && c.contains("approved by a person (test)")),
        "{:?}",
        v[0].caveats
    );
    assert!(
        v[0].caveats.iter().any(|c| c.contains("offline only")),
        "{:?}",
        v[0].caveats
    );
    assert!(merged(&ev));
    // Q_code records the person's intervention
    let answered = approvals::answered_by_a_person(&ev);
    assert!(answered.iter().any(|p| id.starts_with(p.as_str())));
}

#[test]
fn reject_discards_with_the_reason_and_a_policy_is_never_called_a_person() {
    let ws = workspace();
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    let nobody = Approvals::default();
    let s = run(ws.path(), &options(turns, 0.068, nobody.clone())).unwrap();
    let id = s.pending_approvals[0].0.clone();
    let j = common::journal(ws.path());
    let by = Approver::Person { via: "cli".into() };
    assert!(
        approvals::answer(&j, &id, false, " ", by.clone())
            .unwrap_err()
            .to_string()
            .contains("needs a reason")
    );
    approvals::answer(
        &j,
        &id,
        false,
        "p99 budget is tight this quarter",
        by.clone(),
    )
    .unwrap();
    assert!(
        approvals::answer(&j, &id, true, "", by)
            .unwrap_err()
            .to_string()
            .contains("already answered")
    );
    let s = run(ws.path(), &options(vec![], 0.068, nobody)).unwrap();
    assert_eq!(s.outcome, "completed", "{s}");
    let ev = events(ws.path());
    let v = verdicts(&ev);
    assert_eq!(v[0].decision, Decision::Discard);
    assert!(
        v[0].reason
            .contains("declined by a person (cli): p99 budget is tight"),
        "{}",
        v[0].reason
    );
    assert!(!merged(&ev));

    // the unattended reject policy declines without a person, and says so
    let ws = workspace();
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    let policy = Approvals {
        prompter: None,
        unattended: Unattended::Reject,
    };
    run(ws.path(), &options(turns, 0.068, policy)).unwrap();
    let ev = events(ws.path());
    let v = verdicts(&ev);
    assert_eq!(v[0].decision, Decision::Discard);
    assert!(
        v[0].reason.contains("no person was asked"),
        "{}",
        v[0].reason
    );
    assert!(approvals::answered_by_a_person(&ev).is_empty());
}

#[test]
fn a_scripted_prompter_is_asked_with_the_evidence() {
    let ws = workspace();
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    let prompter = Arc::new(ScriptedPrompter::new(&[true, false], None));
    let a = Approvals {
        prompter: Some(prompter.clone()),
        unattended: Unattended::Wait,
    };
    run(ws.path(), &options(turns, 0.068, a)).unwrap();
    let asked = prompter.asked();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].evidence["check"]["name"], "latency_p99_ms");
    assert_eq!(asked[0].evidence["check"]["level"], "attention");
    assert_eq!(asked[1].kind, recloop_core::ApprovalKind::OfflineOnly);
    let v = verdicts(&events(ws.path()));
    assert_eq!(v[0].decision, Decision::Discard, "the KEEP was declined");
}

#[test]
fn budget_exhaustion_ends_the_run_cleanly_with_its_outcome() {
    let ws = workspace();
    let mut turns = vec![ScriptedTurn::json(json!({"proposals": [proposal()]}))];
    turns.extend(develop_turns(ws.path()));
    // $1 per million tokens and a budget of a millionth of a dollar: the first call spends it
    let brain = LlmBrain::new(
        Arc::new(ScriptedModel::new(turns)),
        Prices {
            input: 1.0,
            output: 1.0,
        },
    )
    .with_budget(Some(1e-6));
    let opts = RunOptions {
        brain: Some(Arc::new(brain)),
        ..options(vec![], 0.068, common::approving())
    };
    let s = run(ws.path(), &opts).unwrap();
    assert_eq!(s.outcome, "budget_exhausted", "{s}");
    let ev = events(ws.path());
    let finished = ev.iter().find_map(|e| match &e.event {
        Event::RunFinished { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert_eq!(finished, Some(recloop_journal::RunOutcome::BudgetExhausted));
    assert!(
        ev.iter().any(|e| matches!(
            &e.event,
            Event::StageFailed {
                class: recloop_core::ErrorClass::Budget,
                ..
            }
        )),
        "the budget that ran out is journaled in its own class"
    );
    // nothing was judged, and nothing was put in the avoid set
    assert!(verdicts(&ev).is_empty());
    assert!(
        !ev.iter().any(|e| matches!(
            e.event,
            Event::ProposalRejected { .. } | Event::GateFailed { .. }
        )),
        "a budget is not a verdict on the idea"
    );
}

#[test]
fn a_dollar_budget_on_an_unpriced_model_is_refused_at_start() {
    let ws = workspace();
    let path = ws.path().join("recloop.toml");
    let m = std::fs::read_to_string(&path).unwrap()
        + "\n[llm]\nprovider = \"openai-compatible\"\nmodel = \"team-finetune-7b\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";
    std::fs::write(&path, m).unwrap();
    let err = recloop_agents::stages::brain_with_budget(ws.path(), "auto", Some(5.0))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("team-finetune-7b") && err.contains("[llm.prices.\"team-finetune-7b\"]"),
        "{err}"
    );
    // priced in the manifest, it is accepted
    let m = std::fs::read_to_string(&path).unwrap()
        + "\n[llm.prices.\"team-finetune-7b\"]\ninput_per_mtok = 0.2\noutput_per_mtok = 0.4\n";
    std::fs::write(&path, m).unwrap();
    assert!(recloop_agents::stages::brain_with_budget(ws.path(), "auto", Some(5.0)).is_ok());
}

#[test]
fn backlog_proposals_are_recorded_and_shown_not_dropped() {
    let ws = workspace();
    let mut later = proposal();
    later["title"] = json!("learn a reward model from long-term retention");
    later["hypothesis"] = json!("watch time is a proxy that drifts from retention");
    later["mechanism"] = json!("a second objective trained on delayed labels");
    later["lever"] = json!("reward.model");
    later["maturity"] = json!("backlog");
    let mut turns = vec![ScriptedTurn::json(
        json!({"proposals": [proposal(), later]}),
    )];
    turns.extend(develop_turns(ws.path()));
    let s = run(ws.path(), &options(turns, 0.062, common::approving())).unwrap();
    let backlog: Vec<_> = s
        .tried
        .iter()
        .filter(|t| t.outcome.starts_with("BACKLOG"))
        .collect();
    assert_eq!(backlog.len(), 1, "{s}");
    assert!(backlog[0].title.contains("reward model"), "{s}");
    assert!(
        s.to_string().contains("BACKLOG (recorded, not developed)"),
        "{s}"
    );
}
