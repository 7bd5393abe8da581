//! SGPO-II: changes the team merged become requirement-only replay tasks for Develop.
//!
//! The evidence is the journal's KEEPs (merged into production) and the workspace's own git
//! history, filtered as AgentX does: no reverts, reformats, dependency bumps, generated-only
//! changes, or changes under 10 or over 5,000 lines. Each change becomes a task that shows only
//! the requirement (the commit message, or the kept proposal's title and hypothesis) and the
//! editable files at the base commit; the merged patch stays hidden from Develop. A grader (the
//! evaluator's model) compares the answer with the hidden patch on AgentX's coding rubric, 1–5
//! per dimension; file coverage, default safety's cap, the weighting and the pass rule are plain
//! code here.

use crate::error::{AgentError, Result};
use crate::evolve::tasks::{Check, Downstream, ReplayTask, RubricItem, Verifier};
use crate::git::git;
use recloop_core::Manifest;
use recloop_journal::{Event, EventRecord};
use recloop_llm::{ChatModel, ChatRequest, Message, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Weights of the coding rubric: semantic correctness, requirement coverage, file coverage,
/// default safety, style consistency.
pub const WEIGHTS: [f64; 5] = [0.40, 0.25, 0.20, 0.10, 0.05];
/// A pass needs a weighted score of at least this…
pub const PASS_WEIGHTED: f64 = 4.0;
/// …and semantic correctness of at least this.
pub const PASS_SEMANTIC: u8 = 4;
/// Changes smaller than this many lines (added + removed, generated files excluded) are dropped.
pub const MIN_LINES: usize = 10;
/// Changes larger than this are dropped.
pub const MAX_LINES: usize = 5_000;
/// Commits of the production branch examined, newest first.
const MAX_COMMITS: usize = 300;

/// What the replay hides from Develop and the grader compares with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hidden {
    /// The merged patch (`git diff BASE MERGED`).
    pub patch: String,
    /// Files it changes (generated files excluded).
    pub files: Vec<String>,
}

/// One file of a change (`git diff --numstat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Path.
    pub path: String,
    /// Lines added (0 for binary files).
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

/// A candidate change before filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `keep:PROPOSAL` or `git:SHA12`.
    pub id: String,
    /// True for a journal KEEP (exempt from the minimum size: a kept tweak can be one line).
    pub keep: bool,
    /// Commit message (subject and body), or the proposal's requirement text.
    pub message: String,
    /// Per-file counts.
    pub files: Vec<FileStat>,
    /// Lines changed when whitespace is ignored (`git diff -w`).
    pub non_whitespace_lines: usize,
}

/// Lock files and build output: never the point of a change.
pub fn is_generated(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".lock")
        || name == "package-lock.json"
        || name == "go.sum"
        || name.ends_with(".min.js")
        || [
            "target/",
            "dist/",
            "build/",
            "node_modules/",
            "__pycache__/",
        ]
        .iter()
        .any(|d| path.starts_with(d) || path.contains(&format!("/{d}")))
}

/// Dependency manifests and lock files.
pub fn is_dependency_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".lock")
        || matches!(
            name,
            "Cargo.toml"
                | "package.json"
                | "package-lock.json"
                | "go.mod"
                | "go.sum"
                | "pyproject.toml"
                | "setup.py"
                | "setup.cfg"
                | "Pipfile"
                | "environment.yml"
        )
        || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// Why a change is not replayed (AgentX's filters), or None when it is.
pub fn skip_reason(c: &Change) -> Option<String> {
    let subject = c.message.lines().next().unwrap_or("").trim();
    let lower = subject.to_lowercase();
    if lower.starts_with("revert") || c.message.contains("This reverts commit") {
        return Some("revert".into());
    }
    if c.files.is_empty() {
        return Some("empty change".into());
    }
    let words: Vec<&str> = lower
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if c.non_whitespace_lines == 0
        || words.iter().any(|w| {
            matches!(
                *w,
                "fmt" | "reformat" | "reformatted" | "rustfmt" | "prettier" | "black"
            )
        })
        || (words.contains(&"format") && words.contains(&"code"))
    {
        return Some("reformat".into());
    }
    if c.files.iter().all(|f| is_dependency_file(&f.path)) {
        return Some("dependency bump".into());
    }
    let lines: usize = c
        .files
        .iter()
        .filter(|f| !is_generated(&f.path))
        .map(|f| f.added + f.removed)
        .sum();
    if c.files.iter().all(|f| is_generated(&f.path)) {
        return Some("generated files only".into());
    }
    if lines > MAX_LINES {
        return Some(format!("{lines} lines: over {MAX_LINES}"));
    }
    if lines < MIN_LINES && !c.keep {
        return Some(format!("{lines} lines: under {MIN_LINES}"));
    }
    None
}

/// AgentX's coding rubric, 1–5 per dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodingScores {
    /// Does the change do what the merged one does (40 %).
    pub semantic_correctness: u8,
    /// Is every part of the requirement addressed (25 %).
    pub requirement_coverage: u8,
    /// Are the right files changed (20 %; computed by [`file_coverage`]).
    pub file_coverage: u8,
    /// Are defaults and protected paths left safe (10 %).
    pub default_safety: u8,
    /// Does it read like the codebase (5 %).
    pub style_consistency: u8,
}

impl CodingScores {
    /// The weighted score in [1, 5].
    pub fn weighted(&self) -> f64 {
        let s = [
            self.semantic_correctness,
            self.requirement_coverage,
            self.file_coverage,
            self.default_safety,
            self.style_consistency,
        ];
        s.iter().zip(WEIGHTS).map(|(x, w)| f64::from(*x) * w).sum()
    }

    /// AgentX's pass rule: weighted ≥ 4.0 and semantic correctness ≥ 4.
    pub fn passes(&self) -> bool {
        self.weighted() >= PASS_WEIGHTED - 1e-9 && self.semantic_correctness >= PASS_SEMANTIC
    }
}

/// File coverage, 1–5, from the F1 of the touched files against the merged patch's files:
/// `1 + round(4 × F1)` (all and only the right files: 5; none of them: 1).
pub fn file_coverage(expected: &BTreeSet<String>, touched: &BTreeSet<String>) -> u8 {
    if expected.is_empty() {
        return if touched.is_empty() { 5 } else { 1 };
    }
    let hit = expected.intersection(touched).count() as f64;
    if hit == 0.0 {
        return 1;
    }
    let recall = hit / expected.len() as f64;
    let precision = hit / touched.len() as f64;
    let f1 = 2.0 * precision * recall / (precision + recall);
    1 + (4.0 * f1).round() as u8
}

/// The files an answer touches: `files_changed` and the files of its `diff`.
pub fn touched_files(answer: &Value) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = answer
        .get("files_changed")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(d) = answer.get("diff").and_then(Value::as_str)
        && let Ok(files) = crate::diff::split(d)
    {
        out.extend(files.iter().map(|f| f.path().to_string()));
    }
    out
}

/// What the grader judges (the other dimensions are computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// 1–5.
    pub semantic_correctness: u8,
    /// 1–5.
    pub requirement_coverage: u8,
    /// 1–5.
    pub default_safety: u8,
    /// 1–5.
    pub style_consistency: u8,
}

/// Parse the grader's answer strictly: one JSON object, each dimension an integer 1–5.
pub fn parse_grade(text: &str) -> Result<Grade> {
    let bad = |reason: String| AgentError::Invalid {
        path: "grader answer".into(),
        reason,
    };
    let v = recloop_llm::parse_json_lenient(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let dim = |k: &str| -> Result<u8> {
        match v.get(k) {
            None => Err(bad(format!("field {k} is missing"))),
            Some(x) => match x.as_u64() {
                Some(n @ 1..=5) => Ok(n as u8),
                _ => Err(bad(format!("field {k}: expected an integer 1–5, got {x}"))),
            },
        }
    };
    Ok(Grade {
        semantic_correctness: dim("semantic_correctness")?,
        requirement_coverage: dim("requirement_coverage")?,
        default_safety: dim("default_safety")?,
        style_consistency: dim("style_consistency")?,
    })
}

/// Combine the grader's judgement with the computed parts: file coverage from the files, and
/// default safety capped at 1 when the answer touches a path the workspace does not allow.
pub fn combine(grade: Grade, hidden: &Hidden, answer: &Value, manifest: &Manifest) -> CodingScores {
    let touched = touched_files(answer);
    let expected: BTreeSet<String> = hidden.files.iter().cloned().collect();
    let unsafe_path = touched.iter().any(|p| !manifest.is_editable(p));
    CodingScores {
        semantic_correctness: grade.semantic_correctness,
        requirement_coverage: grade.requirement_coverage,
        file_coverage: file_coverage(&expected, &touched),
        default_safety: if unsafe_path { 1 } else { grade.default_safety },
        style_consistency: grade.style_consistency,
    }
}

/// The grader's request: requirement, the hidden merged patch, and the candidate's answer.
pub fn grader_prompt(task: &ReplayTask, hidden: &Hidden, answer: &str) -> String {
    format!(
        "Role: grader. A developer implemented a requirement without seeing the change the team \
         merged for it. Compare the candidate with the merged change.\n\n# Requirement task\n\
         {}\n\n# Merged change (hidden from the developer)\n{}\n\n# Candidate answer\n{}\n\n\
         Score 1-5 each: semantic_correctness (does it do what the merged change does), \
         requirement_coverage (is every part of the requirement addressed), default_safety \
         (defaults and existing behaviour preserved where the requirement does not ask \
         otherwise), style_consistency (reads like the surrounding code). Answer with one JSON \
         object: {{\"semantic_correctness\": n, \"requirement_coverage\": n, \
         \"default_safety\": n, \"style_consistency\": n, \"rationale\": \"...\"}}",
        task.input, hidden.patch, answer
    )
}

/// Grade one answer: the grader's call, then [`combine`]. Returns the scores, the `coding_pass`
/// check and the grader's tokens. A malformed answer from Develop scores 1 everywhere without a
/// grader call; a malformed grader answer is an error.
pub fn grade(
    grader: &dyn ChatModel,
    task: &ReplayTask,
    hidden: &Hidden,
    answer: &str,
    manifest: &Manifest,
    seed: u64,
) -> Result<(CodingScores, Check, Usage)> {
    let lowest = CodingScores {
        semantic_correctness: 1,
        requirement_coverage: 1,
        file_coverage: 1,
        default_safety: 1,
        style_consistency: 1,
    };
    let (scores, usage) = match recloop_llm::parse_json_lenient(answer) {
        Err(_) => (lowest, Usage::default()),
        Ok(v) => {
            let resp = grader
                .chat(
                    &ChatRequest::new(vec![Message::user(grader_prompt(task, hidden, answer))])
                        .with_seed(seed),
                )
                .map_err(|e| AgentError::Llm(format!("grading {} (seed {seed}): {e}", task.id)))?;
            let g = parse_grade(resp.text()).map_err(|e| AgentError::Invalid {
                path: format!("grader answer for {} (seed {seed})", task.id),
                reason: e.to_string(),
            })?;
            (combine(g, hidden, &v, manifest), resp.usage)
        }
    };
    let passed = scores.passes();
    let detail = if passed {
        String::new()
    } else {
        format!(
            "weighted {:.2} (pass: ≥ {PASS_WEIGHTED} with semantic ≥ {PASS_SEMANTIC}): semantic {}, \
             requirement {}, files {}, safety {}, style {}",
            scores.weighted(),
            scores.semantic_correctness,
            scores.requirement_coverage,
            scores.file_coverage,
            scores.default_safety,
            scores.style_consistency
        )
    };
    Ok((
        scores,
        Check {
            verifier: Verifier::CodingPass,
            passed,
            detail,
        },
        usage,
    ))
}

/// Git commits of `rev` (no merges, newest first) as candidate changes; root commits have no base
/// and are left out. Returns (change, base, merged) triples.
fn git_changes(root: &Path, rev: &str) -> Result<Vec<(Change, String, String)>> {
    let log = git(
        root,
        &[
            "log",
            "--no-merges",
            &format!("--max-count={MAX_COMMITS}"),
            "--format=%H%x1f%P%x1f%B%x1e",
            rev,
        ],
    )?;
    let mut out = Vec::new();
    for rec in log.split('\x1e') {
        let mut parts = rec.trim_start().splitn(3, '\x1f');
        let (Some(sha), Some(parents), Some(msg)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(base) = parents.split_whitespace().next() else {
            continue;
        };
        let change = stats(
            root,
            &format!("git:{}", &sha[..12.min(sha.len())]),
            false,
            msg.trim(),
            base,
            sha,
        )?;
        out.push((change, base.to_string(), sha.to_string()));
    }
    Ok(out)
}

fn numstat(root: &Path, base: &str, merged: &str, ignore_ws: bool) -> Result<Vec<FileStat>> {
    let mut args = vec!["diff", "--numstat", "--no-renames"];
    if ignore_ws {
        args.push("-w");
    }
    args.extend([base, merged]);
    let text = git(root, &args)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (a, r, p) = (f.next()?, f.next()?, f.next()?);
            Some(FileStat {
                path: p.to_string(),
                added: a.parse().unwrap_or(0),
                removed: r.parse().unwrap_or(0),
            })
        })
        .collect())
}

fn stats(root: &Path, id: &str, keep: bool, msg: &str, base: &str, merged: &str) -> Result<Change> {
    let files = numstat(root, base, merged, false)?;
    let non_whitespace_lines = numstat(root, base, merged, true)?
        .iter()
        .map(|f| f.added + f.removed)
        .sum();
    Ok(Change {
        id: id.to_string(),
        keep,
        message: msg.to_string(),
        files,
        non_whitespace_lines,
    })
}

/// The journal's KEEPs: (change, base, merged) with the proposal's title and hypothesis as the
/// requirement (its location and typed change are left out: they would give the answer away).
fn keep_changes(root: &Path, events: &[EventRecord]) -> Result<Vec<(Change, String, String)>> {
    let mut proposals = BTreeMap::new();
    let mut bases = BTreeMap::new();
    for e in events {
        match &e.event {
            Event::ProposalMade { proposal } => {
                proposals.insert(proposal.id.to_string(), proposal.clone());
            }
            Event::WorktreeCreated {
                proposal_id,
                base_commit,
                ..
            } => {
                bases.insert(proposal_id.to_string(), base_commit.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for e in events {
        let Event::MergedIntoProduction {
            proposal_id,
            commit,
            ..
        } = &e.event
        else {
            continue;
        };
        let pid = proposal_id.to_string();
        let (Some(p), Some(base)) = (proposals.get(&pid), bases.get(&pid)) else {
            continue;
        };
        // the context is gone when either commit no longer exists
        if git(root, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_err()
            || git(root, &["cat-file", "-e", &format!("{base}^{{commit}}")]).is_err()
        {
            continue;
        }
        let msg = format!(
            "{}\n\n{}\n\nWhy it should work: {}\nTarget: {} ({:?})",
            p.title, p.hypothesis, p.mechanism, p.target_metric, p.direction
        );
        let change = stats(root, &format!("keep:{pid}"), true, &msg, base, commit)?;
        out.push((change, base.clone(), commit.clone()));
    }
    Ok(out)
}

/// Editable files at `base` with their contents (each up to 8,000 characters, 40,000 in all).
fn base_files(root: &Path, base: &str, manifest: &Manifest) -> Result<String> {
    let list = git(root, &["ls-tree", "-r", "--name-only", base])?;
    let mut s = String::new();
    let mut budget = 40_000usize;
    for path in list.lines().filter(|p| manifest.is_editable(p)) {
        let text = git(root, &["show", &format!("{base}:{path}")])?;
        if text.contains('\0') {
            continue;
        }
        let body: String = text.chars().take(8_000.min(budget)).collect();
        budget = budget.saturating_sub(body.len());
        s.push_str(&format!("\n## {path}\n```\n{body}\n```\n"));
        if budget == 0 {
            break;
        }
    }
    Ok(s)
}

/// The result of scanning the history.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Replay tasks, KEEPs first, then commits newest first.
    pub tasks: Vec<ReplayTask>,
    /// Changes left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Requirement-only replay tasks from the KEEPs in `events` and the production branch's history,
/// up to `max`, with `contract` frozen into each.
pub fn build_tasks(
    root: &Path,
    events: &[EventRecord],
    manifest: &Manifest,
    contract: &Value,
    max: usize,
) -> Result<Scan> {
    let mut changes = keep_changes(root, events)?;
    let keeps: BTreeSet<String> = changes.iter().map(|(_, _, m)| m.clone()).collect();
    for c in git_changes(root, &manifest.project.production)? {
        if !keeps.contains(&c.2) {
            changes.push(c);
        }
    }
    let mut scan = Scan::default();
    for (change, base, merged) in changes {
        if let Some(reason) = skip_reason(&change) {
            scan.skipped.push((change.id, reason));
            continue;
        }
        if scan.tasks.len() >= max {
            scan.skipped
                .push((change.id, format!("beyond the {max} tasks asked for")));
            continue;
        }
        let files: Vec<String> = change
            .files
            .iter()
            .filter(|f| !is_generated(&f.path))
            .map(|f| f.path.clone())
            .collect();
        let patch = git(root, &["diff", "--no-renames", &base, &merged])?;
        let input = format!(
            "Implement this requirement, starting from commit {base}.\n\n# Requirement\n{}\n\n\
             # Editable files at {base}\n{}",
            change.message,
            base_files(root, &base, manifest)?
        );
        scan.tasks.push(ReplayTask {
            id: format!("develop:{}", change.id),
            agent: "develop".into(),
            input,
            commit: Some(base),
            original_output: String::new(),
            downstream: Downstream {
                failed: false,
                outcomes: vec![format!("merged as {merged}")],
            },
            contract: contract.clone(),
            avoid: Vec::new(),
            rubric: vec![
                RubricItem {
                    verifier: Verifier::ProtectedPaths,
                    criterion: "every path touched is editable and not protected".into(),
                    weight: 1.0,
                },
                RubricItem {
                    verifier: Verifier::DiffParses,
                    criterion: "the diff parses and names only the files reported as changed"
                        .into(),
                    weight: 1.0,
                },
                RubricItem {
                    verifier: Verifier::CodingPass,
                    criterion: "coding rubric vs the merged change (semantic 40 %, requirement \
                                25 %, files 20 %, safety 10 %, style 5 %): weighted ≥ 4.0 with \
                                semantic ≥ 4"
                        .into(),
                    weight: 1.0,
                },
            ],
            hidden: Some(Hidden { patch, files }),
        });
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(msg: &str, files: &[(&str, usize, usize)], ws_lines: Option<usize>) -> Change {
        let files: Vec<FileStat> = files
            .iter()
            .map(|(p, a, r)| FileStat {
                path: p.to_string(),
                added: *a,
                removed: *r,
            })
            .collect();
        let n = files.iter().map(|f| f.added + f.removed).sum();
        Change {
            id: "git:x".into(),
            keep: false,
            message: msg.into(),
            files,
            non_whitespace_lines: ws_lines.unwrap_or(n),
        }
    }

    #[test]
    fn agentx_filters_drop_what_is_not_a_requirement() {
        let ok = change("Blend EASE with iALS", &[("pipeline.toml", 8, 4)], None);
        assert_eq!(skip_reason(&ok), None);
        let cases = [
            (
                change("Revert \"Blend\"", &[("pipeline.toml", 8, 4)], None),
                "revert",
            ),
            (
                change(
                    "tune\n\nThis reverts commit abc.",
                    &[("pipeline.toml", 8, 4)],
                    None,
                ),
                "revert",
            ),
            (
                change("Tidy", &[("pipeline.toml", 30, 30)], Some(0)),
                "reformat",
            ),
            (
                change("cargo fmt", &[("src/a.rs", 30, 30)], None),
                "reformat",
            ),
            (
                change(
                    "Bump serde",
                    &[("Cargo.toml", 6, 6), ("Cargo.lock", 40, 40)],
                    None,
                ),
                "dependency bump",
            ),
            (
                change("Pin numpy", &[("requirements.txt", 10, 10)], None),
                "dependency bump",
            ),
            (change("typo", &[("pipeline.toml", 1, 1)], None), "under 10"),
            (change("huge", &[("data.csv", 5_001, 0)], None), "over 5000"),
            (change("build", &[("target/x.o", 50, 0)], None), "generated"),
        ];
        for (c, want) in cases {
            let got = skip_reason(&c).unwrap_or_default();
            assert!(
                got.contains(want),
                "{:?}: {got:?} should say {want}",
                c.message
            );
        }
        // generated lines do not count toward the size: 9 real lines + a lock file is too small
        let small = change("x", &[("pipeline.toml", 5, 4), ("uv.lock", 100, 0)], None);
        assert!(skip_reason(&small).unwrap().contains("9 lines"));
        // exactly 10 and exactly 5,000 lines are kept
        assert_eq!(skip_reason(&change("x", &[("a.py", 10, 0)], None)), None);
        assert_eq!(
            skip_reason(&change("x", &[("a.py", 2_500, 2_500)], None)),
            None
        );
        // a KEEP may be a one-line tweak
        let mut k = change("Raise the blend weight", &[("pipeline.toml", 1, 1)], None);
        k.keep = true;
        assert_eq!(skip_reason(&k), None);
    }

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_coverage_is_f1_on_a_one_to_five_scale() {
        let e = set(&["a", "b"]);
        assert_eq!(file_coverage(&e, &set(&["a", "b"])), 5);
        assert_eq!(file_coverage(&e, &set(&[])), 1);
        assert_eq!(file_coverage(&e, &set(&["c"])), 1);
        // one of two: P = 1, R = 0.5, F1 = 2/3 → 1 + round(2.67) = 4
        assert_eq!(file_coverage(&e, &set(&["a"])), 4);
        // both plus two extra: P = 0.5, R = 1, F1 = 2/3 → 4
        assert_eq!(file_coverage(&e, &set(&["a", "b", "c", "d"])), 4);
        // one of four touched, one expected of two: P = 0.25, R = 0.5, F1 = 1/3 → 1 + round(1.33) = 2
        assert_eq!(file_coverage(&e, &set(&["a", "x", "y", "z"])), 2);
        assert_eq!(file_coverage(&set(&[]), &set(&[])), 5);
    }

    fn scores(s: [u8; 5]) -> CodingScores {
        CodingScores {
            semantic_correctness: s[0],
            requirement_coverage: s[1],
            file_coverage: s[2],
            default_safety: s[3],
            style_consistency: s[4],
        }
    }

    #[test]
    fn weighting_and_the_pass_rule() {
        assert!((scores([5, 5, 5, 5, 5]).weighted() - 5.0).abs() < 1e-12);
        assert!((scores([1, 1, 1, 1, 1]).weighted() - 1.0).abs() < 1e-12);
        // 0.4·4 + 0.25·4 + 0.2·4 + 0.1·4 + 0.05·4 = 4.0 exactly: a pass
        let four = scores([4, 4, 4, 4, 4]);
        assert!((four.weighted() - 4.0).abs() < 1e-12 && four.passes());
        // weighted 0.4·3 + 0.25·5 + 0.2·5 + 0.1·5 + 0.05·5 = 4.2, but semantic 3: no pass
        let s = scores([3, 5, 5, 5, 5]);
        assert!((s.weighted() - 4.2).abs() < 1e-12 && !s.passes());
        // semantic 5 but weighted 0.4·5 + 0.25·3 + 0.2·3 + 0.1·3 + 0.05·3 = 3.8: no pass
        let s = scores([5, 3, 3, 3, 3]);
        assert!((s.weighted() - 3.8).abs() < 1e-12 && !s.passes());
        // the weights: each dimension alone from 1 to 5 adds 4 × its weight
        for (i, w) in WEIGHTS.iter().enumerate() {
            let mut a = [1u8; 5];
            a[i] = 5;
            assert!((scores(a).weighted() - (1.0 + 4.0 * w)).abs() < 1e-12);
        }
    }

    #[test]
    fn grades_are_parsed_strictly_and_safety_is_capped_on_protected_paths() {
        let g = parse_grade(
            r#"{"semantic_correctness": 4, "requirement_coverage": 5, "default_safety": 5,
                "style_consistency": 3, "rationale": "ok"}"#,
        )
        .unwrap();
        assert_eq!(g.semantic_correctness, 4);
        for (text, field) in [
            (
                r#"{"requirement_coverage": 5, "default_safety": 5, "style_consistency": 3}"#,
                "semantic_correctness is missing",
            ),
            (
                r#"{"semantic_correctness": 6, "requirement_coverage": 5, "default_safety": 5, "style_consistency": 3}"#,
                "semantic_correctness: expected",
            ),
            (
                r#"{"semantic_correctness": 4, "requirement_coverage": 4.5, "default_safety": 5, "style_consistency": 3}"#,
                "requirement_coverage: expected",
            ),
            ("four", "not JSON"),
        ] {
            let msg = parse_grade(text).unwrap_err().to_string();
            assert!(msg.contains(field), "{text}: {msg}");
        }
        let m = Manifest::parse(
            r#"
[project]
name = "t"
production = "main"
editable = ["pipeline.toml", "scripts/**"]
protected = ["eval/**"]
[commands]
offline_eval = "true"
[metrics]
primary = { name = "ndcg@10", direction = "increase" }
"#,
            Path::new("recloop.toml"),
        )
        .unwrap();
        let hidden = Hidden {
            patch: String::new(),
            files: vec!["pipeline.toml".into(), "scripts/a.rhai".into()],
        };
        let ans = serde_json::json!({"summary": "s", "files_changed": ["pipeline.toml", "eval/eval.toml"]});
        let s = combine(g, &hidden, &ans, &m);
        assert_eq!(s.default_safety, 1, "a protected path caps safety");
        // touched {pipeline, eval}, expected {pipeline, scripts/a}: P = R = 0.5 → 1 + 2 = 3
        assert_eq!(s.file_coverage, 3);
        let ans = serde_json::json!({"summary": "s", "files_changed": ["pipeline.toml", "scripts/a.rhai"]});
        let s = combine(g, &hidden, &ans, &m);
        assert_eq!((s.default_safety, s.file_coverage), (5, 5));
    }
}
