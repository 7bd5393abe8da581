//! Synthetic events for tests, benchmarks and examples: one of every variant, and a seeded
//! stream that looks like many iterations of the loop. Not used by the journal itself.

use crate::event::{Event, NewEvent, RunOutcome};
use recloop_core::{
    AssetKind, Candidate, CodeQuality, Decision, Direction, FailureIndex, Gate, GateResult,
    GuardrailStatus, HarnessSpec, KnowledgeAsset, Lesson, LessonKind, LessonStatus, Maturity,
    MetricEffect, MetricValues, Proposal, ProposalKind, ScoreParts, TrajectoryStep, Verdict,
};
use std::collections::BTreeMap;

/// A small deterministic generator (splitmix64), so fixtures need no RNG dependency.
#[derive(Debug, Clone)]
pub struct Mix(u64);

impl Mix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Mix {
        Mix(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One element of `items`.
    pub fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Pipeline stages used by the fixtures.
pub const STAGES: &[&str] = &["candidates", "blend", "rerank", "script"];
/// Levers used by the fixtures.
pub const LEVERS: &[&str] = &[
    "model.ease.lambda",
    "model.itemknn.k",
    "blend.weights",
    "rerank.diversity",
    "script.recency_boost",
    "model.mostpop.window",
];
const NOUNS: &[&str] = &[
    "popularity",
    "recency",
    "diversity",
    "coverage",
    "novelty",
    "regularisation",
    "neighbours",
    "embedding",
    "cold-start",
    "long-tail",
    "session",
    "genre",
    "rating",
    "exposure",
    "freshness",
    "calibration",
    "serendipity",
    "similarity",
    "co-occurrence",
    "decay",
];
const VERBS: &[&str] = &[
    "increases",
    "reduces",
    "stabilises",
    "improves",
    "penalises",
    "boosts",
    "smooths",
    "shrinks",
];

/// A proposal with the given id and text.
pub fn proposal(id: &str, title: &str, hypothesis: &str, stage: &str, lever: &str) -> Proposal {
    Proposal {
        id: id.into(),
        title: title.into(),
        hypothesis: hypothesis.into(),
        mechanism: format!("changing {lever} in the {stage} stage"),
        target_metric: "ndcg@10".into(),
        direction: Direction::Increase,
        location: vec!["pipeline.toml".into()],
        required_signals: vec![],
        risks: vec!["latency".into()],
        validation: "offline validation then A/B".into(),
        maturity: Maturity::Ready,
        kind: ProposalKind::Exploit,
        evidence: vec![],
        score_parts: ScoreParts {
            objective: 0.8,
            business: 0.5,
            feasibility: 0.9,
            handoff: 0.7,
            evidence: 0.4,
            risk: 0.2,
        },
        score: 0.6,
        change: serde_json::json!({"set": {lever: 1}}),
        stage: stage.into(),
        lever: lever.into(),
        persona: String::new(),
    }
}

/// A candidate of `proposal_id` with offline NDCG `ndcg`.
pub fn candidate(proposal_id: &str, base_commit: &str, ndcg: f64) -> Candidate {
    let mut offline = MetricValues::new();
    offline.insert("ndcg@10".into(), ndcg);
    offline.insert("coverage@10".into(), 0.31);
    Candidate {
        id: format!("c-{proposal_id}"),
        proposal: proposal_id.into(),
        base_commit: base_commit.into(),
        commit: format!("{base_commit}-{proposal_id}"),
        branch: format!("recloop/{proposal_id}"),
        diff_hash: String::new(),
        gates: vec![GateResult {
            gate: Gate::Build,
            passed: true,
            detail: String::new(),
        }],
        quality: CodeQuality {
            dry_run_passed: true,
            ..CodeQuality::default()
        },
        offline,
    }
}

/// A verdict with the given decision.
pub fn verdict(decision: Decision, effect: f64) -> Verdict {
    let mut guardrails = BTreeMap::new();
    guardrails.insert("latency_p99_ms".to_string(), GuardrailStatus::Ok);
    Verdict {
        decision,
        effects: vec![MetricEffect {
            metric: "ndcg@10".into(),
            control: 0.35,
            treatment: 0.35 + effect,
            effect,
            relative: effect / 0.35,
            ci: (Some(effect - 0.002), None),
            p_value: 0.01,
        }],
        method: "welch-t".into(),
        window_days: 7,
        max_traffic: 0.5,
        guardrails,
        caveats: vec![],
        reason: format!("{decision}: effect {effect:+.4}"),
    }
}

/// A lesson.
pub fn lesson(id: &str, text: &str, status: LessonStatus, runs: &[&str]) -> Lesson {
    Lesson {
        id: id.into(),
        kind: LessonKind::Playbook,
        status,
        text: text.into(),
        index: FailureIndex {
            stage: "candidates".into(),
            objective: "ndcg@10".into(),
            segment: "all".into(),
            lever: "model.ease.lambda".into(),
        },
        supporting_runs: runs.iter().map(|r| r.to_string()).collect(),
        supporting_experiments: vec![],
        falsification_failed: status == LessonStatus::Confirmed,
    }
}

/// One event of every variant, in a plausible order.
pub fn one_of_each(run: &str) -> Vec<Event> {
    let p = proposal(
        "p-1",
        "Tune EASE regularisation",
        "A larger lambda reduces overfitting to popular items",
        "candidates",
        "model.ease.lambda",
    );
    let mut baseline = MetricValues::new();
    baseline.insert("ndcg@10".into(), 0.35);
    vec![
        Event::RunStarted {
            seed: Some(7),
            production_commit: "c0".into(),
            baseline: baseline.clone(),
            config: serde_json::json!({"iterations": 3}),
        },
        Event::RunResumed {
            after_seq: 1,
            reason: "test".into(),
        },
        Event::ProposalMade {
            proposal: p.clone(),
        },
        Event::ProposalAdmitted {
            proposal_id: "p-1".into(),
        },
        Event::ProposalRejected {
            proposal_id: "p-0".into(),
            reason: "edits a protected path".into(),
        },
        Event::WorktreeCreated {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            path: "/tmp/wt".into(),
            branch: "recloop/p-1".into(),
            base_commit: "c0".into(),
        },
        Event::GatePassed {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            gate: Gate::Build,
            round: 0,
            detail: String::new(),
        },
        Event::GateFailed {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            gate: Gate::Schema,
            round: 0,
            detail: "unknown field `lamda`".into(),
        },
        Event::CandidateReady {
            candidate: candidate("p-1", "c0", 0.37),
        },
        Event::OfflineResult {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            split: "validation".into(),
            metrics: candidate("p-1", "c0", 0.37).offline,
        },
        Event::JobSubmitted {
            proposal_id: Some("p-1".into()),
            job: "validation".into(),
            executor: "slurm".into(),
            job_id: "17".into(),
            attempt: 1,
        },
        Event::JobEnded {
            proposal_id: Some("p-1".into()),
            job: "validation".into(),
            executor: "slurm".into(),
            job_id: "17".into(),
            attempt: 1,
            end: crate::event::JobEnd::Killed,
            detail: "CANCELLED by 0".into(),
            retry: true,
        },
        Event::LeaseAcquired {
            key: format!("{run}/1/candidate/p-1"),
            proposal_id: Some("p-1".into()),
            worker: "host-a:100:1".into(),
            epoch: 1,
        },
        Event::LeaseExpired {
            key: format!("{run}/1/candidate/p-1"),
            proposal_id: Some("p-1".into()),
            worker: "host-a:100:1".into(),
            epoch: 1,
            expired_at: "2026-01-01T00:00:10Z".into(),
        },
        Event::LeaseTakenOver {
            key: format!("{run}/1/candidate/p-1"),
            proposal_id: Some("p-1".into()),
            worker: "host-b:200:2".into(),
            from_worker: "host-a:100:1".into(),
            epoch: 2,
        },
        Event::CandidateState {
            proposal_id: "p-1".into(),
            state: "validated".into(),
            reason: "passed the offline stages".into(),
            score: None,
            base_commit: Some("abc123".into()),
            offline: Some(
                serde_json::json!({"metric": "ndcg@10", "production": 0.2, "candidate": 0.25}),
            ),
        },
        Event::HoldoutResult {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            passed: true,
        },
        Event::ExperimentStarted {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            experiment_id: "e-1".into(),
            platform: "simulator".into(),
        },
        Event::RampAdvanced {
            proposal_id: "p-1".into(),
            experiment_id: "e-1".into(),
            step: 1,
            traffic: 0.05,
        },
        Event::HealthHold {
            proposal_id: "p-1".into(),
            experiment_id: "e-1".into(),
            reason: "sample ratio mismatch".into(),
            srm_p_value: Some(0.0001),
        },
        Event::AttentionEscalation {
            proposal_id: "p-1".into(),
            experiment_id: "e-1".into(),
            guardrail: "latency_p99_ms".into(),
            reason: "+6%".into(),
            approved: Some(true),
        },
        Event::ApprovalRequested {
            approval_id: "a-p-1-keep".into(),
            proposal_id: Some("p-1".into()),
            kind: recloop_core::ApprovalKind::Keep,
            question: "merge p-1?".into(),
            evidence: serde_json::json!({"ndcg@10": [0.35, 0.37]}),
        },
        Event::ApprovalAnswered {
            approval_id: "a-p-1-keep".into(),
            proposal_id: Some("p-1".into()),
            approved: true,
            by: recloop_core::Approver::Person { via: "cli".into() },
            reason: String::new(),
        },
        Event::StageFailed {
            proposal_id: Some("p-0".into()),
            stage: "evaluate/holdout".into(),
            class: recloop_core::ErrorClass::Holdout,
            detail: "holdout command exited with status 1".into(),
        },
        Event::Veto {
            proposal_id: "p-0".into(),
            experiment_id: "e-0".into(),
            guardrail: "coverage@10".into(),
            reason: "significant harm".into(),
        },
        Event::Verdict {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            experiment_id: Some("e-1".into()),
            verdict: verdict(Decision::Keep, 0.02),
        },
        Event::MergedIntoProduction {
            proposal_id: "p-1".into(),
            candidate_id: "c-p-1".into(),
            commit: "c1".into(),
            metrics: candidate("p-1", "c0", 0.37).offline,
        },
        Event::KnowledgeAssetWritten {
            asset: KnowledgeAsset {
                id: "a-1".into(),
                kind: AssetKind::Failure,
                experiment: Some("p-0".into()),
                title: "Diversity rerank hurt coverage".into(),
                body: "Root cause: the rerank penalised long-tail items twice".into(),
                index: FailureIndex {
                    stage: "rerank".into(),
                    objective: "ndcg@10".into(),
                    segment: "all".into(),
                    lever: "rerank.diversity".into(),
                },
            },
        },
        Event::LessonProposed {
            lesson: lesson(
                "l-1",
                "Raising EASE lambda helps sparse data",
                LessonStatus::Contested,
                &[run],
            ),
        },
        Event::LessonPromoted {
            lesson: lesson(
                "l-1",
                "Raising EASE lambda helps sparse data",
                LessonStatus::Confirmed,
                &[run, "r-other"],
            ),
        },
        Event::LessonDemoted {
            lesson_id: "l-1".into(),
            reason: "a third run disagreed".into(),
        },
        Event::LessonFalsified {
            lesson_id: "l-1".into(),
            reason: "falsification check refuted it".into(),
        },
        Event::HarnessVersionCreated {
            version: 2,
            parent_version: Some(1),
            admitted: true,
            diagnosis: "missing constraint: proposals ignored the avoid set".into(),
            spec: HarnessSpec {
                agent: "brainstorm".into(),
                files: BTreeMap::from([("instructions.md".to_string(), "Be brief.".to_string())]),
            },
            diff:
                "--- a/instructions.md\n+++ b/instructions.md\n@@ -1 +1 @@\n-Be long.\n+Be brief.\n"
                    .into(),
            evidence: serde_json::json!({"mean_gain": 0.4, "epsilon": 0.05}),
        },
        Event::BudgetSpent {
            agent: "brainstorm".into(),
            model: "m".into(),
            calls: 1,
            tokens_in: 1200,
            tokens_out: 300,
            usd: 0.0125,
            price_table_version: "2026-01".into(),
        },
        Event::TrajectoryStep {
            proposal_id: Some("p-1".into()),
            step: TrajectoryStep {
                agent: "develop".into(),
                input: "implement p-1".into(),
                tool_calls: vec![serde_json::json!({"tool": "read_file", "path": "pipeline.toml"})],
                output: "diff".into(),
                tokens_in: 10,
                tokens_out: 20,
                cost_usd: 0.001,
                duration_ms: 1500,
            },
        },
        Event::Note {
            topic: "brainstorm.batch".into(),
            text: "3 proposals".into(),
            data: serde_json::json!({"n": 3}),
        },
        Event::RunFinished {
            outcome: RunOutcome::Completed,
            summary: "1 KEEP".into(),
        },
    ]
}

/// A seeded stream of `n` events that looks like many loop iterations (proposals, gates,
/// candidates, trajectories, spending, verdicts, merges, assets, lessons), for one run.
pub fn loop_stream(run: &str, seed: u64, n: usize) -> Vec<NewEvent> {
    let mut mix = Mix::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut production = "c0".to_string();
    let mut baseline = MetricValues::new();
    baseline.insert("ndcg@10".into(), 0.30);
    out.push(NewEvent::new(
        run,
        0,
        Event::RunStarted {
            seed: Some(seed),
            production_commit: production.clone(),
            baseline,
            config: serde_json::json!({"fixture": true}),
        },
    ));
    let mut k = 0usize;
    while out.len() < n {
        k += 1;
        let it = (k / 4) as u32;
        let pid = format!("{run}-p{k}");
        let cid = format!("c-{pid}");
        let stage = mix.pick(STAGES).to_string();
        let lever = mix.pick(LEVERS).to_string();
        let (a, b, v) = (mix.pick(NOUNS), mix.pick(NOUNS), mix.pick(VERBS));
        let title = format!(
            "{} {a} via {lever}",
            if mix.below(2) == 0 { "Tune" } else { "Adjust" }
        );
        let hypothesis = format!("More {a} {v} {b} for sparse users in the {stage} stage");
        let mut evs = vec![Event::ProposalMade {
            proposal: proposal(&pid, &title, &hypothesis, &stage, &lever),
        }];
        if mix.below(5) == 0 {
            evs.push(Event::ProposalRejected {
                proposal_id: pid.clone(),
                reason: format!("duplicate of a past {a} experiment"),
            });
        } else {
            evs.push(Event::ProposalAdmitted {
                proposal_id: pid.clone(),
            });
            evs.push(Event::WorktreeCreated {
                proposal_id: pid.clone(),
                candidate_id: cid.clone(),
                path: format!("/tmp/wt/{pid}"),
                branch: format!("recloop/{pid}"),
                base_commit: production.clone(),
            });
            for gate in [
                Gate::EditablePaths,
                Gate::Build,
                Gate::Tests,
                Gate::Schema,
                Gate::DryRun,
            ] {
                evs.push(Event::GatePassed {
                    proposal_id: pid.clone(),
                    candidate_id: cid.clone(),
                    gate,
                    round: 0,
                    detail: String::new(),
                });
            }
            for _ in 0..3 {
                evs.push(Event::TrajectoryStep {
                    proposal_id: Some(pid.clone()),
                    step: TrajectoryStep {
                        agent: "develop".into(),
                        input: format!("implement {title}"),
                        tool_calls: vec![serde_json::json!({"tool": "apply_diff"})],
                        output: format!("changed {lever}"),
                        tokens_in: 800 + mix.below(400) as u64,
                        tokens_out: 100 + mix.below(200) as u64,
                        cost_usd: 0.002,
                        duration_ms: 900 + mix.below(900) as u64,
                    },
                });
                evs.push(Event::BudgetSpent {
                    agent: "develop".into(),
                    model: "m".into(),
                    calls: 1,
                    tokens_in: 900,
                    tokens_out: 150,
                    usd: 0.002,
                    price_table_version: "2026-01".into(),
                });
            }
            let ndcg = 0.30 + 0.08 * mix.unit();
            evs.push(Event::CandidateReady {
                candidate: candidate(&pid, &production, ndcg),
            });
            let decision = match mix.below(4) {
                0 => Decision::Keep,
                1 => Decision::Extend,
                _ => Decision::Discard,
            };
            evs.push(Event::Verdict {
                proposal_id: pid.clone(),
                candidate_id: cid.clone(),
                experiment_id: None,
                verdict: verdict(decision, ndcg - 0.30),
            });
            if decision == Decision::Keep {
                // A git-like 40-hex-digit commit id (fixed length, like real ones).
                let commit = format!("{:040x}", mix.next_u64() as u128 * 0x9e37_79b9_7f4a_7c15);
                evs.push(Event::MergedIntoProduction {
                    proposal_id: pid.clone(),
                    candidate_id: cid.clone(),
                    commit: commit.clone(),
                    metrics: candidate(&pid, &production, ndcg).offline,
                });
                production = commit;
            } else {
                evs.push(Event::KnowledgeAssetWritten {
                    asset: KnowledgeAsset {
                        id: format!("a-{pid}"),
                        kind: AssetKind::Failure,
                        experiment: Some(pid.clone()),
                        title: format!("{a} change did not help"),
                        body: format!("Root cause: {b} {v} {a} only for heavy users"),
                        index: FailureIndex {
                            stage: stage.clone(),
                            objective: "ndcg@10".into(),
                            segment: mix.pick(&["all", "sparse", "heavy"]).into(),
                            lever: lever.clone(),
                        },
                    },
                });
            }
            if mix.below(10) == 0 {
                evs.push(Event::LessonProposed {
                    lesson: lesson(
                        &format!("l-{pid}"),
                        &format!("{a} {v} {b}"),
                        LessonStatus::Contested,
                        &[run],
                    ),
                });
            }
        }
        for e in evs {
            if out.len() >= n {
                break;
            }
            out.push(NewEvent::new(run, it, e));
        }
    }
    out
}
