//! Replays and the admission gate.
//!
//! A replay sends the task's input to the agent's model under one harness (as the system prompt)
//! with a fixed seed, and scores the answer with the task's verifiers and rubric. Paired replay
//! runs old and new harness on the same tasks with the same seeds; [`decide`] admits only when the
//! mean per-task gain exceeds ε and no verifier's pass rate drops. Plain code throughout.

use crate::error::{AgentError, Result};
use crate::evolve::tasks::{self, Check, ReplayTask, Verifier};
use crate::harness::Harness;
use recloop_core::Manifest;
use recloop_llm::{ChatModel, ChatRequest, LengthPolicy, LlmError, Message, Usage, complete};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One replay of one task under one harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRun {
    /// Task id.
    pub task: String,
    /// Seed sent with the request.
    pub seed: u64,
    /// Rubric score in [0, 5].
    pub score: f64,
    /// Verifier results.
    pub checks: Vec<Check>,
    /// The model's answer.
    pub output: String,
}

/// The seed of replay `k` of `task` (the same for every harness compared on it).
pub fn seed(task: &str, k: u32, base: u64) -> u64 {
    let d = Sha256::digest(format!("{base}/{task}/{k}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b) >> 1
}

/// The user message of a replay: the original input and the rule that tools are not available.
/// Without tools the answer is the agent's final answer, so it is asked for as structured output
/// with the harness's output contract as its schema (a provider's JSON mode or grammar, else the
/// schema in the prompt), its output limit sized to that contract. A contract that does not
/// compile is sent without a response format and fails the schema verifier.
fn replay_request(harness: &Harness, input: &str, seed: u64) -> ChatRequest {
    let request = ChatRequest::new(vec![
        Message::system(harness.system_prompt()),
        Message::user(format!(
            "{}\n\n(Replay: tools are not available. Answer now with the final JSON object that \
             satisfies the output contract.)",
            input
        )),
    ])
    .with_seed(seed);
    let Ok(contract) = harness.contract() else {
        // an unreadable contract fails the schema verifier; the provider's default limit
        return request;
    };
    let request = request.with_max_tokens(recloop_llm::output_tokens_for(&contract, 1));
    match recloop_llm::Schema::compile(&format!("{}_contract", harness.spec.agent), &contract) {
        Ok(schema) => recloop_llm::with_schema(&request, &schema),
        Err(_) => request,
    }
}

/// Replay every task `replays` times under `harness`. Model failures are errors; a malformed
/// answer is a scored failure. A task with a hidden merged change (SGPO-II) is scored by
/// `grader` on the coding rubric (its weighted score) instead of the verifier weights. Returns the
/// runs and the tokens used (the grader's included).
pub fn run_all(
    model: &dyn ChatModel,
    grader: &dyn ChatModel,
    harness: &Harness,
    task_list: &[ReplayTask],
    manifest: &Manifest,
    replays: u32,
    base_seed: u64,
) -> Result<(Vec<ReplayRun>, Usage)> {
    let mut runs = Vec::new();
    let mut usage = Usage::default();
    for task in task_list {
        for k in 0..replays {
            let s = seed(&task.id, k, base_seed);
            // a cut-off answer is asked again with a larger limit, never scored truncated; one
            // cut off even at the largest limit is an answer without JSON (a scored failure)
            let output = match complete(
                model,
                &replay_request(harness, &task.input, s),
                &LengthPolicy::default(),
            ) {
                Ok(done) => {
                    usage.add(done.usage);
                    done.response.text().to_string()
                }
                Err(e @ LlmError::Truncated { usage: spent, .. }) => {
                    usage.add(spent);
                    format!("(no answer: {e})")
                }
                Err(e) => {
                    return Err(AgentError::Llm(format!(
                        "replay of {} (seed {s}): {e}",
                        task.id
                    )));
                }
            };
            let mut checks = tasks::verify(task, &output, manifest);
            let score = match &task.hidden {
                None => tasks::score(task, &checks),
                Some(hidden) => {
                    let (scores, check, u) =
                        crate::evolve::history::grade(grader, task, hidden, &output, manifest, s)?;
                    usage.add(u);
                    checks.push(check);
                    scores.weighted()
                }
            };
            runs.push(ReplayRun {
                task: task.id.clone(),
                seed: s,
                score,
                checks,
                output,
            });
        }
    }
    Ok((runs, usage))
}

/// Mean score per task.
pub fn task_means(runs: &[ReplayRun]) -> BTreeMap<String, f64> {
    let mut acc: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for r in runs {
        let e = acc.entry(r.task.clone()).or_default();
        e.0 += r.score;
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, s / f64::from(n.max(1))))
        .collect()
}

/// Mean of the per-task means (each task weighs the same).
pub fn mean_score(runs: &[ReplayRun]) -> f64 {
    let m = task_means(runs);
    if m.is_empty() {
        return 0.0;
    }
    m.values().sum::<f64>() / m.len() as f64
}

/// Pass rate of each verifier over all runs.
pub fn pass_rates(runs: &[ReplayRun]) -> BTreeMap<Verifier, f64> {
    let mut acc: BTreeMap<Verifier, (u32, u32)> = BTreeMap::new();
    for c in runs.iter().flat_map(|r| &r.checks) {
        let e = acc.entry(c.verifier).or_default();
        e.0 += u32::from(c.passed);
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (p, n))| (k, f64::from(p) / f64::from(n.max(1))))
        .collect()
}

/// The paired comparison of two harnesses on the same tasks and seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Per task: (old mean, new mean).
    pub per_task: BTreeMap<String, (f64, f64)>,
    /// Mean over tasks of the old harness.
    pub old_mean: f64,
    /// Mean over tasks of the new harness.
    pub new_mean: f64,
    /// Mean per-task gain (new − old).
    pub mean_gain: f64,
    /// Verifier pass rates, old.
    pub old_pass: BTreeMap<Verifier, f64>,
    /// Verifier pass rates, new.
    pub new_pass: BTreeMap<Verifier, f64>,
    /// Replays per task.
    pub replays: u32,
}

/// Pair `old` and `new` runs. Fails unless both cover the same (task, seed) pairs.
pub fn pair(old: &[ReplayRun], new: &[ReplayRun], replays: u32) -> Result<Paired> {
    let key = |r: &ReplayRun| (r.task.clone(), r.seed);
    let mut a: Vec<_> = old.iter().map(key).collect();
    let mut b: Vec<_> = new.iter().map(key).collect();
    a.sort();
    b.sort();
    if a != b || a.is_empty() {
        return Err(AgentError::Invalid {
            path: "evolve/replay".into(),
            reason: "paired replay needs the same non-empty set of tasks and seeds on both sides"
                .into(),
        });
    }
    let (om, nm) = (task_means(old), task_means(new));
    let per_task: BTreeMap<String, (f64, f64)> = om
        .iter()
        .map(|(k, o)| (k.clone(), (*o, nm.get(k).copied().unwrap_or(0.0))))
        .collect();
    let mean_gain =
        per_task.values().map(|(o, n)| n - o).sum::<f64>() / per_task.len().max(1) as f64;
    Ok(Paired {
        old_mean: mean_score(old),
        new_mean: mean_score(new),
        mean_gain,
        per_task,
        old_pass: pass_rates(old),
        new_pass: pass_rates(new),
        replays,
    })
}

/// The admission decision on one paired comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Admissible: gain > ε and no verifier regressed.
    pub admissible: bool,
    /// Verifiers whose pass rate dropped.
    pub regressions: Vec<String>,
    /// The reason in words.
    pub reason: String,
}

/// Admit iff `mean_gain > epsilon` and no verifier's pass rate dropped; at least 3 replays.
pub fn decide(p: &Paired, epsilon: f64) -> Decision {
    let regressions: Vec<String> = p
        .old_pass
        .iter()
        .filter(|(v, o)| p.new_pass.get(*v).copied().unwrap_or(0.0) + 1e-12 < **o)
        .map(|(v, o)| {
            format!(
                "{} {:.3} -> {:.3}",
                v.as_str(),
                o,
                p.new_pass.get(v).copied().unwrap_or(0.0)
            )
        })
        .collect();
    let (admissible, reason) = if p.replays < 3 {
        (
            false,
            format!("only {} replays per task (need ≥ 3)", p.replays),
        )
    } else if !regressions.is_empty() {
        (
            false,
            format!("verifier regressed: {}", regressions.join(", ")),
        )
    } else if p.mean_gain.is_nan() || p.mean_gain <= epsilon {
        (
            false,
            format!(
                "mean gain {:+.3} does not exceed ε = {epsilon} ({:.3} -> {:.3})",
                p.mean_gain, p.old_mean, p.new_mean
            ),
        )
    } else {
        (
            true,
            format!(
                "mean gain {:+.3} > ε = {epsilon} ({:.3} -> {:.3}), no verifier regressed",
                p.mean_gain, p.old_mean, p.new_mean
            ),
        )
    };
    Decision {
        admissible,
        regressions,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(task: &str, seed: u64, score: f64, passed: bool) -> ReplayRun {
        ReplayRun {
            task: task.into(),
            seed,
            score,
            checks: vec![Check {
                verifier: Verifier::ProtectedPaths,
                passed,
                detail: String::new(),
            }],
            output: String::new(),
        }
    }

    #[test]
    fn gain_must_exceed_epsilon_and_no_verifier_may_regress() {
        let old = vec![
            run("a", 1, 2.0, false),
            run("a", 2, 4.0, true),
            run("a", 3, 3.0, true),
        ];
        let better = vec![
            run("a", 1, 4.0, true),
            run("a", 2, 4.0, true),
            run("a", 3, 3.0, true),
        ];
        let p = pair(&old, &better, 3).unwrap();
        assert!((p.mean_gain - 2.0 / 3.0).abs() < 1e-12);
        assert!(decide(&p, 0.05).admissible);
        assert!(!decide(&p, 0.7).admissible, "gain 0.667 is not > 0.7");
        // same scores: no gain, archived
        let same = pair(&old, &old, 3).unwrap();
        let d = decide(&same, 0.05);
        assert!(
            !d.admissible && d.reason.contains("does not exceed"),
            "{d:?}"
        );
        // higher score but a verifier regressed
        let regress = vec![
            run("a", 1, 5.0, true),
            run("a", 2, 5.0, false),
            run("a", 3, 5.0, false),
        ];
        let d = decide(&pair(&old, &regress, 3).unwrap(), 0.05);
        assert!(
            !d.admissible && d.reason.contains("protected_paths"),
            "{d:?}"
        );
        // fewer than 3 replays never admit
        let d = decide(&pair(&old[..1], &better[..1], 1).unwrap(), 0.05);
        assert!(!d.admissible);
        // unpaired seeds are an error
        assert!(pair(&old, &[run("a", 9, 1.0, true)], 3).is_err());
    }

    #[test]
    fn a_replay_asks_for_the_contract_as_structured_output() {
        let contract = serde_json::json!({"type": "object", "required": ["summary"],
            "properties": {"summary": {"type": "string", "maxLength": 40}}});
        let files = |c: Option<&serde_json::Value>| {
            let mut f = BTreeMap::from([("instructions.md".to_string(), "Be brief.".to_string())]);
            if let Some(c) = c {
                f.insert("contract.schema.json".into(), c.to_string());
            }
            f
        };
        let h = Harness::from_files("develop", files(Some(&contract)));
        let req = replay_request(&h, "Implement it.", 7);
        let format = req.response_format.clone().unwrap();
        assert_eq!(
            (format.name.as_str(), &format.schema),
            ("develop_contract", &contract)
        );
        assert_eq!(req.seed, Some(7));
        assert_eq!(
            req.max_tokens,
            Some(recloop_llm::output_tokens_for(&contract, 1))
        );
        assert!(req.messages[1].content.starts_with("Implement it."));
        // without a contract the answer is asked for as text (and fails the schema verifier)
        let bare = Harness::from_files("develop", files(None));
        assert!(replay_request(&bare, "x", 1).response_format.is_none());
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(seed("t", 0, 7), seed("t", 0, 7));
        assert_ne!(seed("t", 0, 7), seed("t", 1, 7));
        assert_ne!(seed("t", 0, 7), seed("u", 0, 7));
    }
}
