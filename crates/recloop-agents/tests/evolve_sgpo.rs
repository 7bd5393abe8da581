//! SGPO on a scripted model: an injected harness defect (Develop's rule against protected paths
//! deleted) is diagnosed, repaired by an admitted edit with a measured gain, and harmful or
//! no-gain edits are refused or archived.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use recloop_agents::evolve::{self, EvolveModels, EvolveOptions, replay, versions};
use recloop_agents::harness::{self, Harness};
use recloop_core::TrajectoryStep;
use recloop_journal::{Event, NewEvent};
use recloop_llm::{
    ChatModel, ChatRequest, ChatResponse, Message, ScriptedModel, ScriptedTurn, StopReason, Usage,
};
use serde_json::json;
use std::sync::Arc;

const RULE: &str = "4. Touch editable paths only. Protected paths are rejected.\n";

/// Develop's model in the replays: without the rule in its system prompt it touches the
/// protected `eval/eval.toml` whenever `seed % 3 != 0`; with the rule it never does.
struct DevelopSim;

fn touches_protected(system: &str, seed: u64) -> bool {
    !system.contains("Touch editable paths only") && !seed.is_multiple_of(3)
}

impl ChatModel for DevelopSim {
    fn name(&self) -> &str {
        "develop-sim"
    }
    fn chat(&self, request: &ChatRequest) -> recloop_llm::Result<ChatResponse> {
        let system = &request.messages[0].content;
        let seed = request.seed.expect("replays send a seed");
        let file = if touches_protected(system, seed) {
            "eval/eval.toml"
        } else {
            "pipeline.toml"
        };
        let answer = json!({"summary": "raise the EASE blend weight", "files_changed": [file]});
        Ok(ChatResponse {
            model: "develop-sim".into(),
            message: Message::assistant(answer.to_string()),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 20,
            },
            stop_reason: StopReason::EndTurn,
        })
    }
}

fn harness_files(ws: &std::path::Path) -> Harness {
    Harness::load(ws, "develop").unwrap()
}

/// The rubric score of one replay, recomputed here from the rubric's definition: verifiers
/// schema, protected_paths, diff_parses weigh 1 each, protected_paths 2 when the original failed
/// at the editable_paths gate; only protected_paths can fail for this model.
fn expected_score(failed_task: bool, protected_hit: bool) -> f64 {
    let w = if failed_task { 2.0 } else { 1.0 };
    let total = 2.0 + w;
    if protected_hit {
        5.0 * 2.0 / total
    } else {
        5.0
    }
}

/// Develop's simulated model in the replays; `scripted` plays the evaluator and the refiner.
fn develop_sim_models(scripted: &Arc<ScriptedModel>) -> EvolveModels {
    EvolveModels {
        agent: Arc::new(DevelopSim),
        evaluator: scripted.clone(),
        refiner: scripted.clone(),
        grader: None,
        ledger: None,
    }
}

/// A workspace whose Develop harness lost its rule against protected paths, with 8 develop
/// trajectories in the journal.
struct Defective {
    tmp: tempfile::TempDir,
    instructions: std::path::PathBuf,
    original: String,
    defective: String,
}

fn defective_develop() -> Defective {
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    harness::install_defaults(ws).unwrap();
    // inject the defect: Develop's rule against protected paths is deleted
    let instructions = harness::harness_dir(ws, "develop").join("instructions.md");
    let original = std::fs::read_to_string(&instructions).unwrap();
    assert!(original.contains(RULE), "the default harness has the rule");
    let defective = original.replace(RULE, "");
    std::fs::write(&instructions, &defective).unwrap();
    common::seed_develop_trajectories(ws);
    Defective {
        tmp,
        instructions,
        original,
        defective,
    }
}

#[test]
fn a_deleted_rule_is_diagnosed_repaired_and_admitted_while_bad_edits_are_not() {
    let Defective {
        tmp,
        instructions,
        original,
        defective,
    } = defective_develop();
    let ws = tmp.path();
    let h = harness_files(ws);

    let repair = recloop_agents::diff::make("instructions.md", &defective, &original);
    let no_gain = recloop_agents::diff::make(
        "instructions.md",
        &defective,
        &defective.replace(
            "7. Finish",
            "7. Keep the summary to one sentence.\n8. Finish",
        ),
    );
    let contract = h.file("contract.schema.json");
    let harmful = recloop_agents::diff::make(
        "contract.schema.json",
        contract,
        &contract.replace(
            r#""required": ["summary", "files_changed"]"#,
            r#""required": ["summary"]"#,
        ),
    );
    let diagnosis = json!({
        "score": 2.0,
        "loss_report": "Replays write eval/eval.toml, a protected path; the instructions never forbid it.",
        "diagnosis": [{
            "category": "missing_constraint",
            "finding": "no rule restricts changes to editable paths",
            "evidence": ["develop:run-1:1 failed protected_paths: eval/eval.toml", "instructions.md:3-4"]
        }]
    });
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(diagnosis.clone()),
        ScriptedTurn::json(json!({"edits": [
            {"category": "broken_contract", "rationale": "files_changed is redundant",
             "plan": ["contract.schema.json"], "diff": harmful},
            {"category": "missing_constraint", "rationale": "shorter summaries",
             "plan": ["instructions.md"], "diff": no_gain},
            {"category": "missing_constraint", "rationale": "restore the editable-paths rule",
             "plan": ["instructions.md"], "diff": repair},
        ]})),
    ]));
    let models = develop_sim_models(&scripted);
    let opts = EvolveOptions::new("develop");
    let summary = evolve::evolve(ws, &opts, &models).unwrap();
    assert_eq!(summary.rounds_before, 0);
    let round = &summary.rounds[0];
    println!("{round}");
    assert_eq!(round.tasks.len(), 6);
    assert_eq!(round.held_out.len(), 2);
    assert_eq!(round.diagnosis[0].category, "missing_constraint");

    // the gain is what the rubric says it must be, recomputed task by task from the seeds
    let j = common::journal(ws);
    let vs = versions::list(&j, "develop").unwrap();
    let numbers: Vec<(u32, bool)> = vs.iter().map(|v| (v.version, v.admitted)).collect();
    assert_eq!(numbers, vec![(1, true), (2, false), (3, false), (4, true)]);
    let base = opts.seed + 1;
    let mut old_sum = 0.0;
    let defective_h = versions::harness_of("develop", &vs[0]);
    let system = defective_h.system_prompt();
    let mut hits = 0;
    // odd proposals failed at the editable_paths gate
    let failed_task = |task: &str| {
        let seq: u64 = task.rsplit(':').next().unwrap().parse().unwrap();
        let e = j.event(seq).unwrap().unwrap();
        let pid = e.event.proposal_id().unwrap().to_string();
        pid.trim_start_matches("p-").parse::<u32>().unwrap() % 2 == 1
    };
    for task in &round.tasks {
        let failed = failed_task(task);
        let mut m = 0.0;
        for k in 0..3 {
            let hit = touches_protected(&system, replay::seed(task, k, base));
            hits += u32::from(hit);
            m += expected_score(failed, hit) / 3.0;
        }
        old_sum += m;
    }
    assert!(hits > 0, "the defect shows in some replays");
    let expected_old = old_sum / 6.0;
    let expected_gain = 5.0 - expected_old;

    let admitted = &vs[3];
    assert_eq!(admitted.parent_version, Some(1));
    assert!(
        admitted.diff.contains(&format!("+{}", RULE.trim_end())),
        "{}",
        admitted.diff
    );
    assert!(admitted.diagnosis.contains("missing_constraint"));
    let gain = admitted.evidence["paired"]["mean_gain"].as_f64().unwrap();
    assert!(
        (gain - expected_gain).abs() < 1e-9,
        "{gain} vs {expected_gain}"
    );
    assert!(gain > 0.05);
    assert_eq!(
        admitted.evidence["paired"]["new_pass"]["protected_paths"].as_f64(),
        Some(1.0),
        "the repaired harness never touches a protected path"
    );
    assert!(
        admitted.evidence["paired"]["old_pass"]["protected_paths"]
            .as_f64()
            .unwrap()
            < 1.0
    );
    assert_eq!(round.admitted_version, Some(4));
    // held-out tasks (never shown to the evaluator or refiner): the defect is gone there too
    let mut held_before = 0.0;
    for task in &round.held_out {
        for k in 0..3 {
            let hit = touches_protected(&system, replay::seed(task, k, base));
            held_before += expected_score(failed_task(task), hit) / 3.0;
        }
    }
    held_before /= round.held_out.len() as f64;
    assert!((round.held_out_before.unwrap() - held_before).abs() < 1e-9);
    assert_eq!(round.held_out_after, Some(5.0));
    println!(
        "HELD-OUT develop (SGPO-I, trajectories; defect: editable-paths rule deleted): {} tasks, \
         rubric {:.3} -> {:.3} (0-5)",
        round.held_out.len(),
        held_before,
        5.0
    );

    // the harmful edit was refused by the safety check; the no-gain edit archived with its gain
    assert_eq!(vs[1].evidence["refused"]["check"], "contract");
    assert!(
        vs[1].evidence["paired"].is_null(),
        "refused edits are never replayed"
    );
    assert_eq!(vs[2].evidence["paired"]["mean_gain"].as_f64(), Some(0.0));
    assert!(
        vs[2].evidence["reason"]
            .as_str()
            .unwrap()
            .contains("does not exceed")
    );
    // the admitted files are the ones in use
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);
    assert_eq!(
        versions::in_use(&j, &harness_files(ws)).unwrap().ok(),
        Some(4),
        "a run now uses v4 and records no new version"
    );

    // round 2 (resumed from the journal): the refiner sees the archive; an edit of a rubric is
    // refused and a no-gain edit archived; nothing is admitted
    let rubric = recloop_agents::diff::make("rubric.md", "weights\n", "no weights\n");
    let no_gain2 = recloop_agents::diff::make(
        "tools.md",
        h.file("tools.md"),
        &format!("{}- Prefer short diffs.\n", h.file("tools.md")),
    );
    scripted.push(ScriptedTurn::json(json!({
        "score": 4.5, "loss_report": "Replays pass.", "diagnosis": []
    })));
    scripted.push(ScriptedTurn::json(json!({"edits": [
        {"category": "weak_evidence", "rationale": "relax the rubric", "plan": ["rubric.md"], "diff": rubric},
        {"category": "tool_misuse", "rationale": "short diffs", "plan": ["tools.md"], "diff": no_gain2},
    ]})));
    let again = evolve::evolve(ws, &opts, &models).unwrap();
    assert_eq!(again.rounds_before, 1);
    let r2 = &again.rounds[0];
    assert_eq!((r2.round, r2.incumbent_version), (2, 4));
    assert_eq!(r2.incumbent_score, 5.0);
    assert_eq!(r2.admitted_version, None);
    assert_eq!(
        r2.candidates[0].refused.as_ref().unwrap().check,
        "protected"
    );
    assert!(!r2.candidates[1].admitted && r2.candidates[1].paired.is_some());
    let requests = scripted.requests();
    assert_eq!(requests.len(), 4);
    let refiner_prompt = &requests[3].messages[1].content;
    assert!(
        refiner_prompt.contains("Keep the summary to one sentence")
            && refiner_prompt.contains("measured gain +0.000"),
        "{refiner_prompt}"
    );
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);
    let finished: Vec<u32> = j
        .events(&recloop_journal::EventFilter::default())
        .unwrap()
        .iter()
        .filter_map(|e| match &e.event {
            Event::EvolveRoundFinished { round, .. } => Some(*round),
            _ => None,
        })
        .collect();
    assert_eq!(finished, vec![1, 2]);
}

#[test]
fn a_replayed_snapshot_is_an_alternative_parent_whose_descendant_must_beat_the_incumbent() {
    let Defective {
        tmp,
        instructions,
        defective,
        ..
    } = defective_develop();
    let ws = tmp.path();
    // round 1: a valid edit without gain (archived, but replayed: an elite of its category)
    let shorter = defective.replace(
        "7. Finish",
        "7. Keep the summary to one sentence.\n8. Finish",
    );
    let no_gain = recloop_agents::diff::make("instructions.md", &defective, &shorter);
    // round 2: the repair written against that snapshot, and one naming no known parent
    let repaired_shorter = shorter.replace(
        "Keep the summary to one sentence.\n",
        &format!("Keep the summary to one sentence.\n{RULE}"),
    );
    let on_elite = recloop_agents::diff::make("instructions.md", &shorter, &repaired_shorter);
    let gradient = json!({
        "score": 2.0,
        "loss_report": "Replays write eval/eval.toml, a protected path.",
        "diagnosis": [{"category": "missing_constraint",
                       "finding": "no rule restricts changes to editable paths",
                       "evidence": ["instructions.md"]}]
    });
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(gradient.clone()),
        ScriptedTurn::json(json!({"edits": [
            {"category": "weak_evidence", "rationale": "shorter summaries",
             "plan": ["instructions.md"], "diff": no_gain},
        ]})),
        ScriptedTurn::json(gradient),
        ScriptedTurn::json(json!({"edits": [
            {"category": "missing_constraint", "rationale": "build on a version that never was",
             "plan": ["instructions.md"], "diff": on_elite.clone(), "parent": 9},
            {"category": "missing_constraint", "rationale": "restore the rule on v2",
             "plan": ["instructions.md"], "diff": on_elite, "parent": 2},
        ]})),
    ]));
    let models = develop_sim_models(&scripted);
    let opts = EvolveOptions {
        rounds: 2,
        ..EvolveOptions::new("develop")
    };
    let summary = evolve::evolve(ws, &opts, &models).unwrap();
    let (first, second) = (&summary.rounds[0], &summary.rounds[1]);
    assert_eq!(first.admitted_version, None, "{first}");
    assert!(first.candidates[0].paired.is_some(), "replayed: {first}");
    // the refiner of round 2 was shown v2 as an alternative parent, with its files
    let asked = scripted.requests();
    let refiner_prompt = &asked[3].messages[1].content;
    assert!(
        refiner_prompt.contains("# Alternative parents")
            && refiner_prompt.contains("## v2 [weak_evidence]")
            && refiner_prompt.contains("### v2 instructions.md"),
        "{refiner_prompt}"
    );
    let unknown = &second.candidates[0];
    assert_eq!(
        unknown.refused.as_ref().unwrap().check,
        "parent",
        "{second}"
    );
    assert!(
        unknown.reason.contains("v9 is not an alternative parent"),
        "{}",
        unknown.reason
    );
    // the descendant of v2 is replayed against the incumbent (v1) and admitted on its gain
    let child = &second.candidates[1];
    assert!(child.admitted, "{second}");
    assert!(
        second
            .to_string()
            .contains("[missing_constraint] on v2 ADMITTED"),
        "{second}"
    );
    assert_eq!(child.parent, Some(2));
    assert!(child.paired.as_ref().unwrap().mean_gain > 0.05);
    // measured against the incumbent, v1, which still lacks the rule
    assert_eq!(second.incumbent_version, 1);
    assert_eq!(child.paired.as_ref().unwrap().new_mean, 5.0);
    let j = common::journal(ws);
    let vs = versions::list(&j, "develop").unwrap();
    let admitted = vs.iter().find(|v| v.admitted && v.version > 1).unwrap();
    assert_eq!(admitted.version, second.admitted_version.unwrap());
    assert_eq!(admitted.parent_version, Some(2));
    assert_eq!(admitted.evidence["parent"], 2);
    // the admitted files are the elite's with the rule restored
    assert_eq!(
        std::fs::read_to_string(&instructions).unwrap(),
        repaired_shorter
    );
}

#[test]
fn malformed_model_output_fails_the_round_with_a_named_field_and_journals_nothing() {
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    common::seed_develop_trajectories(ws);
    // out of range twice: the first answer and the repair round
    let bad = json!({"score": 9, "loss_report": "x", "diagnosis": []});
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(bad.clone()),
        ScriptedTurn::json(bad),
    ]));
    let models = develop_sim_models(&scripted);
    let err = evolve::evolve(ws, &EvolveOptions::new("develop"), &models)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evaluator answer") && err.contains("score") && err.contains('9'),
        "{err}"
    );
    // the repair round asked again with the schema's complaint
    let asked = scripted.requests();
    assert_eq!(asked.len(), 2);
    assert!(
        asked[1]
            .messages
            .last()
            .unwrap()
            .content
            .contains("rejected"),
        "{:?}",
        asked[1].messages.last()
    );
    let j = common::journal(ws);
    assert_eq!(evolve::rounds_done(&j, "develop").unwrap(), 0);
    // only the initial version was recorded
    assert_eq!(versions::list(&j, "develop").unwrap().len(), 1);
}

#[test]
fn a_run_records_each_harness_once_and_uses_the_latest_admitted_version() {
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    harness::install_defaults(ws).unwrap();
    let j = common::journal(ws);
    let record = |h: &Harness, key: &str| match versions::in_use(&j, h).unwrap() {
        Ok(n) => n,
        Err(event) => {
            j.append(NewEvent::new("run-1", 0, event).key(key)).unwrap();
            match versions::in_use(&j, h).unwrap() {
                Ok(n) => n,
                Err(e) => panic!("recorded but unknown: {e:?}"),
            }
        }
    };
    let v1 = harness_files(ws);
    assert_eq!(record(&v1, "a"), 1);
    // the same files again: no new version
    assert_eq!(record(&v1, "b"), 1);
    assert_eq!(versions::list(&j, "develop").unwrap().len(), 1);
    // a hand edit becomes v2, child of v1, with its diff
    let path = harness::harness_dir(ws, "develop").join("tools.md");
    std::fs::write(&path, "# Tool discipline\n\n- read first\n").unwrap();
    let v2 = harness_files(ws);
    assert_eq!(record(&v2, "c"), 2);
    let vs = versions::list(&j, "develop").unwrap();
    assert_eq!(vs[1].parent_version, Some(1));
    assert!(vs[1].diff.contains("+- read first"), "{}", vs[1].diff);
    // files on disk that hold an older recorded version are brought to the latest admitted one
    versions::write(ws, &v1).unwrap();
    assert!(versions::sync_disk(&j, ws, "develop").unwrap());
    assert_eq!(harness_files(ws).version, v2.version);
    // files matching no recorded version are a person's edit and stay
    std::fs::write(&path, "# mine\n").unwrap();
    assert!(!versions::sync_disk(&j, ws, "develop").unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
}

#[test]
fn brainstorm_trajectories_become_tasks_with_an_avoid_set_and_evidence_checks() {
    use recloop_agents::evolve::tasks::{self, Verifier};
    use recloop_core::Decision;
    use recloop_journal::fixtures;
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    let j = common::journal(ws);
    let step = |output: &str| TrajectoryStep {
        agent: "brainstorm".into(),
        input: "SYSTEM\n---\nObjective: ndcg@10 up.".into(),
        tool_calls: vec![],
        output: output.into(),
        tokens_in: 1,
        tokens_out: 1,
        cost_usd: 0.0,
        duration_ms: 1,
    };
    j.append_batch(vec![
        NewEvent::new(
            "run-1",
            1,
            Event::TrajectoryStep {
                proposal_id: None,
                step: step("{}"),
            },
        ),
        NewEvent::new(
            "run-1",
            1,
            Event::ProposalMade {
                proposal: fixtures::proposal("p-1", "Blend EASE with ItemKNN", "h", "blend", "w"),
            },
        ),
        NewEvent::new(
            "run-1",
            1,
            Event::Verdict {
                proposal_id: "p-1".into(),
                candidate_id: "c-1".into(),
                experiment_id: None,
                verdict: fixtures::verdict(Decision::Keep, 0.01),
            },
        ),
        NewEvent::new(
            "run-1",
            2,
            Event::TrajectoryStep {
                proposal_id: None,
                step: step("{}"),
            },
        ),
        NewEvent::new(
            "run-1",
            2,
            Event::ProposalMade {
                proposal: fixtures::proposal("p-2", "blend  ease with itemknn", "h", "blend", "w"),
            },
        ),
        NewEvent::new(
            "run-1",
            2,
            Event::ProposalRejected {
                proposal_id: "p-2".into(),
                reason: "duplicate of p-1 (avoid set)".into(),
            },
        ),
    ])
    .unwrap();
    let h = Harness::load(ws, "brainstorm").unwrap();
    let events = j.events(&recloop_journal::EventFilter::default()).unwrap();
    let all = tasks::build_tasks(&events, "brainstorm", &h.contract().unwrap(), 10);
    // the failure (iteration 2) first, then the success
    assert_eq!(all.len(), 2);
    let (failed, ok) = (&all[0], &all[1]);
    assert!(failed.downstream.failed && !ok.downstream.failed, "{all:?}");
    assert_eq!(failed.input, "Objective: ndcg@10 up.");
    assert_eq!(failed.avoid, vec!["blend ease with itemknn".to_string()]);
    assert!(ok.avoid.is_empty(), "nothing came before iteration 1");
    let dup = failed
        .rubric
        .iter()
        .find(|r| r.verifier == Verifier::DuplicatesAvoided)
        .unwrap();
    assert_eq!(dup.weight, 2.0);
    assert!(dup.criterion.contains("duplicate of p-1"), "{dup:?}");

    let manifest = recloop_core::Manifest::load(ws).unwrap();
    let answer = |title: &str, location: &str, evidence: serde_json::Value| {
        json!({"proposals": [{"title": title, "location": [location], "evidence": evidence}]})
            .to_string()
    };
    let passed = |answer: &str, v: Verifier| {
        tasks::verify(failed, answer, &manifest)
            .into_iter()
            .find(|c| c.verifier == v)
            .unwrap()
    };
    let cited = json!([{"source": "journal", "reference": "p-1", "summary": "kept"}]);
    let repeat = answer("Blend EASE with  ItemKNN", "pipeline.toml", cited.clone());
    assert!(!passed(&repeat, Verifier::DuplicatesAvoided).passed);
    let fresh = answer("Rerank by recency", "pipeline.toml", cited.clone());
    assert!(passed(&fresh, Verifier::DuplicatesAvoided).passed);
    assert!(passed(&fresh, Verifier::EvidenceCited).passed);
    assert!(passed(&fresh, Verifier::ProtectedPaths).passed);
    let uncited = answer("Rerank by recency", "pipeline.toml", json!([]));
    let c = passed(&uncited, Verifier::EvidenceCited);
    assert!(!c.passed && c.detail.contains("Rerank by recency"), "{c:?}");
    let protected = answer("Rerank by recency", "eval/eval.toml", cited);
    assert!(!passed(&protected, Verifier::ProtectedPaths).passed);
    // the contract needs far more than a title: the schema verifier says which fields
    let s = passed(&fresh, Verifier::Schema);
    assert!(!s.passed && s.detail.contains("hypothesis"), "{s:?}");
}

#[test]
fn run_evolves_every_n_iterations_once_and_then_uses_the_admitted_harness() {
    use recloop_agents::orchestrator::{RunOptions, run};
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    let manifest = ws.join("recloop.toml");
    let mut m = std::fs::read_to_string(&manifest).unwrap();
    m.push_str("\n[evolve]\nevery = 1\nagents = [\"develop\"]\n");
    std::fs::write(&manifest, m).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(ws)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qam",
        "evolve every iteration",
    ]);
    harness::install_defaults(ws).unwrap();
    let instructions = harness::harness_dir(ws, "develop").join("instructions.md");
    let original = std::fs::read_to_string(&instructions).unwrap();
    let defective = original.replace(RULE, "");
    std::fs::write(&instructions, &defective).unwrap();
    let repair = recloop_agents::diff::make("instructions.md", &defective, &original);
    let diagnosis = json!({
        "score": 2.0, "loss_report": "protected paths touched",
        "diagnosis": [{"category": "missing_constraint", "finding": "no editable-paths rule",
                       "evidence": ["replays touch eval/eval.toml"]}]
    });
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(diagnosis.clone()),
        ScriptedTurn::json(json!({"edits": [{"category": "missing_constraint",
            "rationale": "restore", "plan": ["instructions.md"], "diff": repair}]})),
        // iteration 2: the same edit no longer applies (refused); nothing admitted
        ScriptedTurn::json(diagnosis),
        ScriptedTurn::json(json!({"edits": [{"category": "missing_constraint",
            "rationale": "restore", "plan": ["instructions.md"], "diff": repair}]})),
    ]));
    let opts = RunOptions {
        iterations: Some(2),
        approvals: common::approving(),
        evolve_models: Some(EvolveModels {
            agent: Arc::new(DevelopSim),
            evaluator: scripted.clone(),
            refiner: scripted.clone(),
            grader: None,
            ledger: None,
        }),
        ..Default::default()
    };
    let s = run(ws, &opts).unwrap();
    println!("{s}");
    assert_eq!(scripted.remaining(), 0, "one round after each iteration");
    let j = common::journal(ws);
    let rounds: Vec<(u32, Option<u32>, String)> = j
        .events(&recloop_journal::EventFilter::default())
        .unwrap()
        .iter()
        .filter_map(|e| match &e.event {
            Event::EvolveRoundFinished {
                round,
                admitted_version,
                summary,
                ..
            } => Some((
                *round,
                *admitted_version,
                summary["trigger"].as_str().unwrap_or("").to_string(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert_eq!(rounds[0].0, 1);
    assert_eq!(rounds[0].2, "run-1/1");
    let admitted = rounds[0]
        .1
        .expect("the repair is admitted after iteration 1");
    assert_eq!((rounds[1].0, rounds[1].1), (2, None));
    assert_eq!(rounds[1].2, "run-1/2");
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);
    // a later run uses the admitted version: nothing new is recorded for develop
    let before = versions::list(&j, "develop").unwrap().len();
    let again = RunOptions {
        iterations: Some(1),
        approvals: common::approving(),
        evolve_models: None,
        ..Default::default()
    };
    // without [llm] and without injected models the evolve step is skipped, not an error
    run(ws, &again).unwrap();
    let vs = versions::list(&j, "develop").unwrap();
    assert_eq!(vs.len(), before, "{vs:?}");
    assert_eq!(
        versions::in_use(&j, &harness_files(ws)).unwrap().ok(),
        Some(admitted)
    );
}

/// Brainstorm's model in the replays: one valid proposal whose title depends on the seed; it
/// cites evidence only when its harness asks for evidence items with a reference.
struct BrainstormSim;

impl ChatModel for BrainstormSim {
    fn name(&self) -> &str {
        "brainstorm-sim"
    }
    fn chat(&self, request: &ChatRequest) -> recloop_llm::Result<ChatResponse> {
        let system = &request.messages[0].content;
        let seed = request.seed.expect("replays send a seed");
        let evidence = if system.contains("evidence items with their source") {
            json!([{"source": "journal", "reference": "run-1/i01", "summary": "blend helped"}])
        } else {
            json!([])
        };
        let answer = json!({"proposals": [{
            "title": format!("Blend weight probe {seed}"), "hypothesis": "a higher blend helps",
            "mechanism": "more collaborative signal", "target_metric": "ndcg@10",
            "direction": "increase", "location": ["pipeline.toml"], "validation": "offline",
            "maturity": "ready", "kind": "exploit", "evidence": evidence,
            "score_parts": {"objective": 0.8, "business": 0.5, "feasibility": 0.9,
                            "handoff": 0.7, "evidence": 0.4, "risk": 0.2},
            "stage": "blend", "lever": "weight"}]});
        Ok(ChatResponse {
            model: "brainstorm-sim".into(),
            message: Message::assistant(answer.to_string()),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 40,
            },
            stop_reason: StopReason::EndTurn,
        })
    }
}

#[test]
fn brainstorm_without_its_evidence_rule_is_repaired_and_held_out_replays_cite_evidence() {
    let tmp = common::synthetic_workspace();
    let ws = tmp.path();
    harness::install_defaults(ws).unwrap();
    let instructions = harness::harness_dir(ws, "brainstorm").join("instructions.md");
    let original = std::fs::read_to_string(&instructions).unwrap();
    let needle = "   evidence items with their source (`journal` | `system_kb` | `sql` | `research`) and reference,\n";
    assert!(
        original.contains(needle),
        "the default harness asks for evidence"
    );
    let defective = original.replace(needle, "");
    std::fs::write(&instructions, &defective).unwrap();
    let j = common::journal(ws);
    let batch: Vec<NewEvent> = (1..=8u32)
        .map(|i| {
            NewEvent::new(
                "run-1",
                i,
                Event::TrajectoryStep {
                    proposal_id: None,
                    step: TrajectoryStep {
                        agent: "brainstorm".into(),
                        input: format!("SYSTEM\n---\nObjective: ndcg@10 up (iteration {i})."),
                        tool_calls: vec![],
                        output: "{}".into(),
                        tokens_in: 1,
                        tokens_out: 1,
                        cost_usd: 0.0,
                        duration_ms: 1,
                    },
                },
            )
        })
        .collect();
    j.append_batch(batch).unwrap();
    let repair = recloop_agents::diff::make("instructions.md", &defective, &original);
    let scripted = Arc::new(ScriptedModel::new([
        ScriptedTurn::json(json!({
            "score": 3.5, "loss_report": "no proposal cites evidence",
            "diagnosis": [{"category": "weak_evidence",
                           "finding": "the harness no longer asks for evidence items",
                           "evidence": ["brainstorm:run-1:1 failed evidence_cited"]}]
        })),
        ScriptedTurn::json(json!({"edits": [{"category": "weak_evidence",
            "rationale": "ask for evidence with references", "plan": ["instructions.md"],
            "diff": repair}]})),
    ]));
    let models = EvolveModels {
        agent: Arc::new(BrainstormSim),
        evaluator: scripted.clone(),
        refiner: scripted.clone(),
        grader: None,
        ledger: None,
    };
    let summary = evolve::evolve(ws, &EvolveOptions::new("brainstorm"), &models).unwrap();
    let round = &summary.rounds[0];
    println!("{round}");
    assert_eq!((round.tasks.len(), round.held_out.len()), (6, 2));
    // schema, protected paths and duplicates pass, evidence fails: 5 × 3/4
    assert!(
        (round.incumbent_score - 3.75).abs() < 1e-9,
        "{}",
        round.incumbent_score
    );
    assert!(round.candidates[0].admitted, "{:?}", round.candidates[0]);
    let paired = round.candidates[0].paired.as_ref().unwrap();
    assert!((paired.mean_gain - 1.25).abs() < 1e-9, "{paired:?}");
    let (before, after) = (
        round.held_out_before.unwrap(),
        round.held_out_after.unwrap(),
    );
    assert!(
        (before - 3.75).abs() < 1e-9 && (after - 5.0).abs() < 1e-9,
        "{before} {after}"
    );
    assert_eq!(std::fs::read_to_string(&instructions).unwrap(), original);
    println!(
        "HELD-OUT brainstorm (SGPO-I, trajectories; defect: evidence rule deleted): {} tasks, \
         rubric {before:.3} -> {after:.3} (0-5)",
        round.held_out.len()
    );
}
