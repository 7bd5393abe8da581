//! Trajectories → standalone replay tasks with deterministic verifiers and a rubric.
//!
//! A replay task keeps what the agent saw (its first user message, the production commit it
//! worked from), what happened downstream (gate failures, admission rejections, verdicts) and a
//! frozen copy of the output contract and the workspace's editable/protected rules. Verifiers are
//! plain code; the rubric weighs them (a verifier tied to a downstream failure weighs double) into
//! a 0–5 score. Tasks, verifiers and rubrics live here, outside any harness: an edit cannot touch
//! them.

use recloop_core::Manifest;
use recloop_journal::{Event, EventRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A deterministic check of one replay answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verifier {
    /// The answer is one JSON object satisfying the task's (frozen) output contract.
    Schema,
    /// Every path the answer touches or names is editable and not protected.
    ProtectedPaths,
    /// The answer's diff (when present) parses and names only the files it reports changing.
    DiffParses,
    /// No proposal repeats a past proposal's title or change (the avoid set).
    DuplicatesAvoided,
    /// Every proposal cites at least one evidence item with a reference.
    EvidenceCited,
    /// SGPO-II: the coding rubric against the hidden merged change passes (weighted ≥ 4.0 with
    /// semantic correctness ≥ 4); decided by [`crate::evolve::history::grade`].
    CodingPass,
}

impl Verifier {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verifier::Schema => "schema",
            Verifier::ProtectedPaths => "protected_paths",
            Verifier::DiffParses => "diff_parses",
            Verifier::DuplicatesAvoided => "duplicates_avoided",
            Verifier::EvidenceCited => "evidence_cited",
            Verifier::CodingPass => "coding_pass",
        }
    }

    /// The verifiers that apply to `agent`'s answers (empty for an agent that cannot be replayed).
    pub fn for_agent(agent: &str) -> &'static [Verifier] {
        match agent {
            "develop" => &[
                Verifier::Schema,
                Verifier::ProtectedPaths,
                Verifier::DiffParses,
            ],
            "brainstorm" => &[
                Verifier::Schema,
                Verifier::ProtectedPaths,
                Verifier::DuplicatesAvoided,
                Verifier::EvidenceCited,
            ],
            _ => &[],
        }
    }
}

/// One rubric item: a criterion checked by a verifier, with its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RubricItem {
    /// The verifier that decides it.
    pub verifier: Verifier,
    /// The constraint in words (explicit, or implied by what happened downstream).
    pub criterion: String,
    /// Weight in the 0–5 score.
    pub weight: f64,
}

/// What happened after the original trajectory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Downstream {
    /// True when a gate failed, a proposal was rejected or the verdict was DISCARD.
    pub failed: bool,
    /// One line per outcome (`gate editable_paths failed: ...`, `verdict KEEP`, ...).
    pub outcomes: Vec<String>,
}

/// A standalone replay task built from one trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayTask {
    /// Stable id (`AGENT:RUN:SEQ`).
    pub id: String,
    /// Agent whose trajectory it was.
    pub agent: String,
    /// The agent's input without its system prompt (the harness is what is being replayed).
    pub input: String,
    /// Production commit the original worked from, when the journal names it.
    pub commit: Option<String>,
    /// The original answer.
    pub original_output: String,
    /// What happened downstream.
    pub downstream: Downstream,
    /// The output contract frozen when the task was built (verifiers never read a candidate's).
    pub contract: Value,
    /// Normalised titles and changes of earlier proposals (brainstorm's avoid set).
    pub avoid: Vec<String>,
    /// The rubric.
    pub rubric: Vec<RubricItem>,
    /// SGPO-II: the merged change, hidden from the agent, shown only to the grader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<crate::evolve::history::Hidden>,
}

/// Result of one verifier on one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Which verifier.
    pub verifier: Verifier,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub detail: String,
}

/// The input an agent saw, without the system prompt: the first user message of the
/// conversation (trajectory inputs are the messages joined by `\n---\n`, system prompt first).
pub fn task_input(trajectory_input: &str) -> String {
    let mut parts = trajectory_input.split("\n---\n");
    let first = parts.next().unwrap_or("");
    match parts.next() {
        Some(user) => user.to_string(),
        None => first.to_string(),
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Build up to `max` replay tasks for `agent` from the journal, failures and successes
/// interleaved (oldest first within each group), with `contract` frozen into every task.
pub fn build_tasks(
    events: &[EventRecord],
    agent: &str,
    contract: &Value,
    max: usize,
) -> Vec<ReplayTask> {
    let verifiers = Verifier::for_agent(agent);
    if verifiers.is_empty() {
        return Vec::new();
    }
    // downstream outcomes by proposal and by (run, iteration)
    let mut by_proposal: BTreeMap<&str, Downstream> = BTreeMap::new();
    let mut by_iteration: BTreeMap<(&str, u32), Downstream> = BTreeMap::new();
    let mut commits: BTreeMap<&str, &str> = BTreeMap::new();
    for e in events {
        let line = match &e.event {
            Event::GateFailed { gate, detail, .. } => {
                Some((true, format!("gate {} failed: {detail}", gate_name(*gate))))
            }
            Event::ProposalRejected { reason, .. } => {
                Some((true, format!("proposal rejected: {reason}")))
            }
            Event::Verdict { verdict, .. } => Some((
                verdict.decision == recloop_core::Decision::Discard,
                format!("verdict {}", verdict.decision),
            )),
            Event::WorktreeCreated {
                proposal_id,
                base_commit,
                ..
            } => {
                commits.insert(proposal_id.as_str(), base_commit.as_str());
                None
            }
            _ => None,
        };
        if let (Some((failed, text)), Some(pid)) = (line, e.event.proposal_id()) {
            for d in [
                by_proposal.entry(pid).or_default(),
                by_iteration
                    .entry((e.run_id.as_str(), e.iteration))
                    .or_default(),
            ] {
                d.failed |= failed;
                d.outcomes.push(text.clone());
            }
        }
    }
    let mut failures = Vec::new();
    let mut successes = Vec::new();
    for e in events {
        let Event::TrajectoryStep { proposal_id, step } = &e.event else {
            continue;
        };
        if step.agent != agent {
            continue;
        }
        let downstream = match (agent, proposal_id) {
            ("develop", Some(pid)) => by_proposal.get(pid.as_str()).cloned(),
            ("brainstorm", _) => by_iteration.get(&(e.run_id.as_str(), e.iteration)).cloned(),
            _ => None,
        }
        .unwrap_or_default();
        let avoid = if agent == "brainstorm" {
            events
                .iter()
                .filter(|p| p.seq < e.seq && !(p.run_id == e.run_id && p.iteration == e.iteration))
                .filter_map(|p| match &p.event {
                    Event::ProposalMade { proposal } => Some(norm(&proposal.title)),
                    _ => None,
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let rubric = rubric_for(agent, verifiers, &downstream);
        let task = ReplayTask {
            id: format!("{agent}:{}:{}", e.run_id, e.seq),
            agent: agent.to_string(),
            input: task_input(&step.input),
            commit: proposal_id
                .as_deref()
                .and_then(|p| commits.get(p))
                .map(|c| c.to_string()),
            original_output: step.output.clone(),
            downstream,
            contract: contract.clone(),
            avoid,
            rubric,
            hidden: None,
        };
        if task.downstream.failed {
            failures.push(task);
        } else {
            successes.push(task);
        }
    }
    let mut out = Vec::new();
    let (mut f, mut s) = (failures.into_iter(), successes.into_iter());
    while out.len() < max {
        match (f.next(), s.next()) {
            (None, None) => break,
            (a, b) => {
                out.extend(a);
                if out.len() < max {
                    out.extend(b);
                }
            }
        }
    }
    out
}

fn gate_name(g: recloop_core::Gate) -> String {
    serde_json::to_value(g)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{g:?}"))
}

/// Which verifier a downstream outcome line implicates.
fn implicated(line: &str) -> Option<Verifier> {
    let l = line.to_lowercase();
    if l.contains("editable_paths") || l.contains("protected") || l.contains("not editable") {
        Some(Verifier::ProtectedPaths)
    } else if l.contains("duplicate") || l.contains("avoid set") {
        Some(Verifier::DuplicatesAvoided)
    } else if l.contains("evidence") {
        Some(Verifier::EvidenceCited)
    } else if l.contains("schema") || l.contains("contract") || l.contains("parse") {
        Some(Verifier::Schema)
    } else if l.contains("diff") || l.contains("hunk") {
        Some(Verifier::DiffParses)
    } else {
        None
    }
}

fn rubric_for(agent: &str, verifiers: &[Verifier], downstream: &Downstream) -> Vec<RubricItem> {
    verifiers
        .iter()
        .map(|&v| {
            let cause = downstream
                .outcomes
                .iter()
                .find(|o| implicated(o) == Some(v));
            let base = match v {
                Verifier::Schema => format!("{agent}'s answer satisfies its output contract"),
                Verifier::ProtectedPaths => {
                    "every path touched or named is editable and not protected".to_string()
                }
                Verifier::DiffParses => {
                    "the diff parses and names only the files reported as changed".to_string()
                }
                Verifier::DuplicatesAvoided => {
                    "no proposal repeats an earlier proposal (the avoid set)".to_string()
                }
                Verifier::EvidenceCited => {
                    "every proposal cites evidence with a reference".to_string()
                }
                Verifier::CodingPass => "the coding rubric passes".to_string(),
            };
            match cause {
                Some(c) => RubricItem {
                    verifier: v,
                    criterion: format!("{base} (the original run failed here: {c})"),
                    weight: 2.0,
                },
                None => RubricItem {
                    verifier: v,
                    criterion: base,
                    weight: 1.0,
                },
            }
        })
        .collect()
}

/// Run every verifier of `task` on `answer` (the model's text).
pub fn verify(task: &ReplayTask, answer: &str, manifest: &Manifest) -> Vec<Check> {
    let parsed = recloop_llm::parse_json_lenient(answer);
    task.rubric
        .iter()
        .filter(|item| item.verifier != Verifier::CodingPass)
        .map(|item| {
            let result = match &parsed {
                Err(e) => Err(format!("the answer is not JSON: {e}")),
                Ok(v) => run(item.verifier, task, v, manifest),
            };
            Check {
                verifier: item.verifier,
                passed: result.is_ok(),
                detail: result.err().unwrap_or_default(),
            }
        })
        .collect()
}

/// The rubric score in [0, 5] of a set of checks: 5 × (weight of passed items / total weight).
pub fn score(task: &ReplayTask, checks: &[Check]) -> f64 {
    let total: f64 = task.rubric.iter().map(|r| r.weight).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let passed: f64 = task
        .rubric
        .iter()
        .filter(|r| checks.iter().any(|c| c.verifier == r.verifier && c.passed))
        .map(|r| r.weight)
        .sum();
    5.0 * passed / total
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn proposals(v: &Value) -> &[Value] {
    v.get("proposals")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn run(
    verifier: Verifier,
    task: &ReplayTask,
    v: &Value,
    manifest: &Manifest,
) -> Result<(), String> {
    match verifier {
        Verifier::Schema => {
            let validator = jsonschema::validator_for(&task.contract)
                .map_err(|e| format!("the frozen contract is not a valid schema: {e}"))?;
            let errors: Vec<String> = validator
                .iter_errors(v)
                .map(|e| format!("at {}: {e}", e.instance_path()))
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        }
        Verifier::ProtectedPaths => {
            let mut paths = strs(v, "files_changed");
            if let Some(d) = v.get("diff").and_then(Value::as_str)
                && let Ok(files) = crate::diff::split(d)
            {
                paths.extend(files.iter().map(|f| f.path().to_string()));
            }
            for p in proposals(v) {
                paths.extend(strs(p, "location"));
            }
            let bad: BTreeSet<&str> = paths
                .iter()
                .map(String::as_str)
                .filter(|p| !manifest.is_editable(p))
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "protected or not editable: {}",
                    bad.into_iter().collect::<Vec<_>>().join(", ")
                ))
            }
        }
        Verifier::DiffParses => {
            let Some(d) = v
                .get("diff")
                .and_then(Value::as_str)
                .filter(|d| !d.trim().is_empty())
            else {
                return Ok(());
            };
            let files = crate::diff::split(d).map_err(|e| e.to_string())?;
            for f in &files {
                diffy::Patch::from_str(&f.text)
                    .map_err(|e| format!("{}: malformed diff: {e}", f.path()))?;
            }
            let named: BTreeSet<String> = strs(v, "files_changed").into_iter().collect();
            let extra: Vec<&str> = files
                .iter()
                .map(|f| f.path())
                .filter(|p| !named.contains(*p))
                .collect();
            if extra.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the diff changes files not listed in files_changed: {}",
                    extra.join(", ")
                ))
            }
        }
        Verifier::DuplicatesAvoided => {
            let dups: Vec<String> = proposals(v)
                .iter()
                .filter_map(|p| p.get("title").and_then(Value::as_str))
                .filter(|t| task.avoid.contains(&norm(t)))
                .map(str::to_string)
                .collect();
            if dups.is_empty() {
                Ok(())
            } else {
                Err(format!("repeats earlier proposals: {}", dups.join("; ")))
            }
        }
        Verifier::CodingPass => Err("decided by the grader (evolve::history::grade)".into()),
        Verifier::EvidenceCited => {
            let ps = proposals(v);
            if ps.is_empty() {
                return Err("no proposals".into());
            }
            let missing: Vec<String> = ps
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    !p.get("evidence")
                        .and_then(Value::as_array)
                        .is_some_and(|ev| {
                            ev.iter().any(|e| {
                                e.get("reference")
                                    .and_then(Value::as_str)
                                    .is_some_and(|r| !r.trim().is_empty())
                            })
                        })
                })
                .map(|(i, p)| {
                    p.get("title")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("proposals[{i}]"), str::to_string)
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no evidence cited by: {}", missing.join("; ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
[project]
name = "t"
production = "main"
editable = ["pipeline.toml"]
protected = ["recloop.toml", "eval/**"]
[commands]
offline_eval = "true"
[metrics]
primary = { name = "ndcg@10", direction = "increase" }
"#,
            std::path::Path::new("recloop.toml"),
        )
        .unwrap()
    }

    fn develop_task() -> ReplayTask {
        let h = crate::harness::Harness::from_files(
            "develop",
            crate::harness::FILES
                .iter()
                .zip(crate::harness::default_files("develop").unwrap())
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        );
        ReplayTask {
            id: "develop:r:1".into(),
            agent: "develop".into(),
            input: "implement p".into(),
            commit: None,
            original_output: String::new(),
            downstream: Downstream {
                failed: true,
                outcomes: vec!["gate editable_paths failed: eval/x is protected".into()],
            },
            contract: h.contract().unwrap(),
            avoid: vec![],
            rubric: rubric_for(
                "develop",
                Verifier::for_agent("develop"),
                &Downstream {
                    failed: true,
                    outcomes: vec!["gate editable_paths failed: eval/x is protected".into()],
                },
            ),
            hidden: None,
        }
    }

    #[test]
    fn verifiers_and_rubric_score_an_answer() {
        let t = develop_task();
        let m = manifest();
        // the implicated verifier weighs double
        assert_eq!(
            t.rubric
                .iter()
                .find(|r| r.verifier == Verifier::ProtectedPaths)
                .unwrap()
                .weight,
            2.0
        );
        let good = r#"{"summary":"tune","files_changed":["pipeline.toml"]}"#;
        let checks = verify(&t, good, &m);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert_eq!(score(&t, &checks), 5.0);
        let bad = r#"{"summary":"tune","files_changed":["eval/eval.toml"]}"#;
        let checks = verify(&t, bad, &m);
        let pp = checks
            .iter()
            .find(|c| c.verifier == Verifier::ProtectedPaths)
            .unwrap();
        assert!(!pp.passed && pp.detail.contains("eval/eval.toml"), "{pp:?}");
        // 2 of 4 weight units lost: 5 × 2/4
        assert!((score(&t, &checks) - 2.5).abs() < 1e-12);
        let checks = verify(&t, "no json here", &m);
        assert!(checks.iter().all(|c| !c.passed));
        assert_eq!(score(&t, &checks), 0.0);
        let missing = verify(&t, r#"{"files_changed":[]}"#, &m);
        assert!(missing[0].detail.contains("summary"), "{missing:?}");
    }

    #[test]
    fn a_diff_naming_unlisted_files_fails() {
        let t = develop_task();
        let d = crate::diff::make("pipeline.toml", "a\n", "b\n");
        let ans = serde_json::json!({"summary": "x y", "files_changed": [], "diff": d});
        let checks = verify(&t, &ans.to_string(), &manifest());
        let c = checks
            .iter()
            .find(|c| c.verifier == Verifier::DiffParses)
            .unwrap();
        assert!(!c.passed && c.detail.contains("pipeline.toml"), "{c:?}");
    }

    #[test]
    fn input_drops_the_system_prompt() {
        assert_eq!(task_input("SYSTEM\n---\nUSER\n---\nTOOL"), "USER");
        assert_eq!(task_input("only"), "only");
    }
}
