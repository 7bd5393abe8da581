//! The refiner role and the safety checks every candidate edit passes before any replay.
//!
//! The refiner answers with up to [`MAX_EDITS`] candidate edits, each an edit plan (the files it
//! will change) and a unified diff over the target agent's harness files. Plain code then checks:
//! only harness files are touched (rubrics, verifiers and traces are not harness files and are
//! refused by name), the bounds hold, the diff applies, the changed files equal the planned files
//! (exact-target check), and the output contract still has every field and requirement it had.

use crate::error::{AgentError, Result};
use crate::evolve::elites::Elite;
use crate::evolve::gradient::{self, CATEGORIES, Gradient, object, text, texts};
use crate::harness::{FILES, Harness};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Candidate edits per round (RobustSGPO's setting).
pub const MAX_EDITS: usize = 3;
/// Changed lines (added + removed) allowed per edit.
pub const MAX_CHANGED_LINES: usize = 120;
/// Added characters allowed per edit.
pub const MAX_ADDED_CHARS: usize = 6000;

/// One candidate edit proposed by the refiner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateEdit {
    /// The diagnosis category it addresses (one of [`CATEGORIES`]).
    pub category: String,
    /// Why, in a sentence.
    pub rationale: String,
    /// The edit plan: harness files it will change.
    pub plan: Vec<String>,
    /// Unified diff over the harness files (`--- a/instructions.md` …).
    pub diff: String,
    /// The alternative parent the diff applies to (an elite's version); `None`: the incumbent.
    #[serde(default)]
    pub parent: Option<u32>,
}

/// An edit refused by a safety check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Which check (`protected`, `target`, `bounds`, `parse`, `exact_target`, `contract`,
    /// `no_change`).
    pub check: String,
    /// What was wrong.
    pub reason: String,
}

fn refuse(check: &str, reason: impl Into<String>) -> Refusal {
    Refusal {
        check: check.into(),
        reason: reason.into(),
    }
}

/// Parse the refiner's answer strictly: `{"edits": [{category, rationale, plan, diff}]}`, one to
/// [`MAX_EDITS`] edits.
pub fn parse(answer: &str) -> Result<Vec<CandidateEdit>> {
    let role = "refiner";
    let v = recloop_llm::parse_json_lenient(answer)
        .map_err(|e| AgentError::Llm(format!("refiner answer: not JSON: {e}")))?;
    let o = object(&v, "top level", &["edits"], role)?;
    let items = match o.get("edits") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(AgentError::Llm(format!(
                "refiner answer: edits: expected an array, got {other}"
            )));
        }
        None => {
            return Err(AgentError::Llm(
                "refiner answer: top level: missing field \"edits\"".into(),
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_EDITS {
        return Err(AgentError::Llm(format!(
            "refiner answer: edits: expected 1 to {MAX_EDITS} edits, got {}",
            items.len()
        )));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("edits[{i}]");
        let e = object(
            item,
            &what,
            &["category", "rationale", "plan", "diff", "parent"],
            role,
        )?;
        let parent = match e.get("parent") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(v) if v >= 1 => Some(v),
                _ => {
                    return Err(AgentError::Llm(format!(
                        "refiner answer: {what}.parent: expected a harness version (1 or more), got {n}"
                    )));
                }
            },
            Some(other) => {
                return Err(AgentError::Llm(format!(
                    "refiner answer: {what}.parent: expected a harness version, got {other}"
                )));
            }
        };
        let category = text(e, "category", &what, role)?;
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(AgentError::Llm(format!(
                "refiner answer: {what}.category: {category:?} is not one of {}",
                CATEGORIES.join(", ")
            )));
        }
        out.push(CandidateEdit {
            category,
            rationale: text(e, "rationale", &what, role)?,
            plan: texts(e, "plan", &what, role)?,
            diff: text(e, "diff", &what, role)?,
            parent,
        });
    }
    Ok(out)
}

/// A harness file name from a path in a diff or plan (`a/instructions.md`,
/// `.recloop/harness/develop/instructions.md` and `instructions.md` all name `instructions.md`).
fn harness_file(agent: &str, path: &str) -> std::result::Result<String, Refusal> {
    let lower = path.to_lowercase();
    if ["rubric", "verifier", "trace", "replay", "task"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Err(refuse(
            "protected",
            format!("{path}: rubrics, verifiers, tasks and traces are protected"),
        ));
    }
    let prefix = format!(".recloop/harness/{agent}/");
    let name = path.strip_prefix(&prefix).unwrap_or(path);
    if FILES.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(refuse(
            "target",
            format!(
                "{path}: not a file of the {agent} harness (allowed: {})",
                FILES.join(", ")
            ),
        ))
    }
}

/// Every property path (`proposals/items/title`) and required field (`…!summary`) of a schema.
fn contract_fields(schema: &Value, at: &str, out: &mut BTreeSet<String>) {
    let Some(o) = schema.as_object() else {
        return;
    };
    if let Some(req) = o.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            out.insert(format!("{at}!{r}"));
        }
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = format!("{at}/{k}");
            out.insert(p.clone());
            contract_fields(v, &p, out);
        }
    }
    if let Some(items) = o.get("items") {
        contract_fields(items, &format!("{at}/items"), out);
    }
}

/// The result of the safety checks: the new harness, the files changed, the size of the edit.
#[derive(Debug, Clone)]
pub struct SafeEdit {
    /// The harness after the edit.
    pub harness: Harness,
    /// Files whose text changed.
    pub changed: Vec<String>,
    /// Added + removed lines.
    pub changed_lines: usize,
    /// Characters on added lines.
    pub added_chars: usize,
    /// The diff, normalised (one `--- a/FILE` header per changed file).
    pub diff: String,
}

/// Run the safety checks of `edit` against `current`. Nothing is written.
pub fn check(current: &Harness, edit: &CandidateEdit) -> std::result::Result<SafeEdit, Refusal> {
    let agent = &current.spec.agent;
    let planned: BTreeSet<String> = edit
        .plan
        .iter()
        .map(|p| harness_file(agent, p))
        .collect::<std::result::Result<_, _>>()?;
    let parts = crate::diff::split(&edit.diff).map_err(|e| refuse("parse", e.to_string()))?;
    let (mut changed_lines, mut added_chars) = (0usize, 0usize);
    let mut files: BTreeMap<String, String> = current.spec.files.clone();
    for part in &parts {
        if part.old_path.is_none() || part.new_path.is_none() {
            return Err(refuse(
                "target",
                format!(
                    "{}: an edit may not create or delete harness files",
                    part.path()
                ),
            ));
        }
        let name = harness_file(agent, part.path())?;
        let patch = diffy::Patch::from_str(&part.text)
            .map_err(|e| refuse("parse", format!("{name}: malformed diff: {e}")))?;
        if patch.hunks().is_empty() {
            return Err(refuse("parse", format!("{name}: diff has no hunks")));
        }
        for h in patch.hunks() {
            for l in h.lines() {
                match l {
                    diffy::Line::Insert(t) => {
                        changed_lines += 1;
                        added_chars += t.trim_end_matches('\n').chars().count();
                    }
                    diffy::Line::Delete(_) => changed_lines += 1,
                    diffy::Line::Context(_) => {}
                }
            }
        }
        let old = files.get(&name).cloned().unwrap_or_default();
        let new = diffy::apply(&old, &patch)
            .map_err(|e| refuse("parse", format!("{name}: the diff does not apply: {e}")))?;
        files.insert(name, new);
    }
    if changed_lines > MAX_CHANGED_LINES {
        return Err(refuse(
            "bounds",
            format!("{changed_lines} changed lines (at most {MAX_CHANGED_LINES})"),
        ));
    }
    if added_chars > MAX_ADDED_CHARS {
        return Err(refuse(
            "bounds",
            format!("{added_chars} added characters (at most {MAX_ADDED_CHARS})"),
        ));
    }
    let changed: Vec<String> = files
        .iter()
        .filter(|(k, v)| current.spec.files.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    if changed.is_empty() {
        return Err(refuse("no_change", "the edit changes no file"));
    }
    let changed_set: BTreeSet<String> = changed.iter().cloned().collect();
    if changed_set != planned {
        return Err(refuse(
            "exact_target",
            format!(
                "the plan names [{}] but the edit changes [{}]",
                planned.into_iter().collect::<Vec<_>>().join(", "),
                changed.join(", ")
            ),
        ));
    }
    let new = Harness::from_files(agent, files);
    let new_contract = new.contract().map_err(|e| refuse("contract", e))?;
    jsonschema::validator_for(&new_contract).map_err(|e| {
        refuse(
            "contract",
            format!("the contract is not a valid schema: {e}"),
        )
    })?;
    let old_contract = current.contract().map_err(|e| refuse("contract", e))?;
    let (mut before, mut after) = (BTreeSet::new(), BTreeSet::new());
    contract_fields(&old_contract, "", &mut before);
    contract_fields(&new_contract, "", &mut after);
    let lost: Vec<&String> = before.difference(&after).collect();
    if !lost.is_empty() {
        return Err(refuse(
            "contract",
            format!(
                "the output contract loses fields or requirements other code reads: {}",
                lost.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let diff = changed
        .iter()
        .map(|n| crate::diff::make(n, current.file(n), new.file(n)))
        .collect::<String>();
    Ok(SafeEdit {
        harness: new,
        changed,
        changed_lines,
        added_chars,
        diff,
    })
}

/// An archived (rejected or refused) edit as the refiner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archived {
    /// Harness version number it was archived under.
    pub version: u32,
    /// Diagnosis category.
    pub category: String,
    /// The diff.
    pub diff: String,
    /// Why it was not admitted.
    pub reason: String,
    /// Measured mean gain, when it was replayed.
    pub gain: Option<f64>,
}

/// The refiner's request text.
pub fn prompt(
    agent: &str,
    harness: &Harness,
    gradient: &Gradient,
    archive: &[Archived],
    elites: &[Elite],
    contract: &Value,
) -> String {
    let mut s = format!(
        "Role: refiner. Propose 1 to {MAX_EDITS} candidate edits to the `{agent}` harness that \
         repair the diagnosis below. Each edit is a unified diff over the harness files \
         ({files}) with `--- a/FILE` / `+++ b/FILE` headers, at most {MAX_CHANGED_LINES} changed \
         lines and {MAX_ADDED_CHARS} added characters, and an edit plan listing exactly the files \
         it changes. Keep every field of the output contract. Rubrics, verifiers and traces are \
         protected.\n\n# Current harness (numbered)\n\n{numbered}\n# Loss report\n\n{loss}\n\n\
         # Diagnosis\n\n",
        files = FILES.join(", "),
        numbered = gradient::numbered(harness),
        loss = gradient.loss_report,
    );
    for f in &gradient.diagnosis {
        s.push_str(&format!(
            "- [{}] {} (evidence: {})\n",
            f.category,
            f.finding,
            f.evidence.join(" | ")
        ));
    }
    if archive.is_empty() {
        s.push_str("\n# Archive of rejected edits\n\n(none yet)\n");
    } else {
        s.push_str("\n# Archive of rejected edits (do not repeat them)\n");
        for a in archive {
            s.push_str(&format!(
                "\n## v{} [{}] {}{}\n```diff\n{}```\n",
                a.version,
                a.category,
                a.reason,
                a.gain
                    .map(|g| format!(" (measured gain {g:+.3})"))
                    .unwrap_or_default(),
                a.diff
            ));
        }
    }
    if !elites.is_empty() {
        s.push_str(
            "\n# Alternative parents (the best replayed snapshot per edit category)\n\nTo build \
             on one, set the edit's `parent` to its version: the diff then applies to that \
             version's files, and the result must still beat the current harness.\n",
        );
        for e in elites {
            s.push_str(&format!(
                "\n## v{} [{}] mean rubric score {:.3} (gain {:+.3} in its round)\n```diff\n{}```\n",
                e.version, e.category, e.score, e.gain, e.diff
            ));
            // its files where they differ from the current harness (the diff applies to them)
            for name in FILES
                .iter()
                .filter(|n| e.harness.file(n) != harness.file(n))
            {
                s.push_str(&format!(
                    "### v{} {name}\n{}\n",
                    e.version,
                    e.harness.file(name)
                ));
            }
        }
    }
    s.push_str(
        "\nAnswer with one JSON object and nothing else that satisfies the evolve harness's \
         output contract (`plan`: the harness file names the diff changes):\n",
    );
    s.push_str(&contract.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn develop() -> Harness {
        Harness::from_files(
            "develop",
            FILES
                .iter()
                .zip(crate::harness::default_files("develop").unwrap())
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        )
    }

    fn edit(plan: &[&str], diff: String) -> CandidateEdit {
        CandidateEdit {
            category: "missing_constraint".into(),
            rationale: "r".into(),
            plan: plan.iter().map(|s| s.to_string()).collect(),
            diff,
            parent: None,
        }
    }

    fn replace(h: &Harness, file: &str, from: &str, to: &str) -> String {
        let old = h.file(file);
        crate::diff::make(file, old, &old.replace(from, to))
    }

    #[test]
    fn a_local_edit_passes_and_is_measured() {
        let h = develop();
        let d = replace(
            &h,
            "instructions.md",
            "7. Finish",
            "7. Cite the gate.\n8. Finish",
        );
        let ok = check(&h, &edit(&["instructions.md"], d)).unwrap();
        assert_eq!(ok.changed, vec!["instructions.md"]);
        assert_eq!(ok.changed_lines, 3);
        assert!(
            ok.harness
                .file("instructions.md")
                .contains("Cite the gate.")
        );
        assert_ne!(ok.harness.version, h.version);
    }

    #[test]
    fn unsafe_edits_are_refused_with_the_check_that_failed() {
        let h = develop();
        let contract = replace(
            &h,
            "contract.schema.json",
            r#""required": ["summary", "files_changed"]"#,
            r#""required": ["summary"]"#,
        );
        let r = check(&h, &edit(&["contract.schema.json"], contract)).unwrap_err();
        assert_eq!(r.check, "contract", "{r:?}");
        assert!(r.reason.contains("!files_changed"), "{r:?}");
        let dropped = replace(
            &h,
            "contract.schema.json",
            r#"    "diff": {"type": "string"}"#,
            r#"    "notes": {"type": "string"}"#,
        );
        let r = check(&h, &edit(&["contract.schema.json"], dropped)).unwrap_err();
        assert!(r.reason.contains("/diff"), "{r:?}");
        let rubric = crate::diff::make("rubric.md", "a\n", "b\n");
        let r = check(&h, &edit(&["rubric.md"], rubric)).unwrap_err();
        assert_eq!(r.check, "protected");
        let other = crate::diff::make(".recloop/harness/brainstorm/tools.md", "a\n", "b\n");
        assert_eq!(
            check(&h, &edit(&["tools.md"], other)).unwrap_err().check,
            "target"
        );
        let d = replace(&h, "instructions.md", "7. Finish", "7. Stop.\n8. Finish");
        let r = check(&h, &edit(&["instructions.md", "tools.md"], d.clone())).unwrap_err();
        assert_eq!(r.check, "exact_target", "{r:?}");
        let r = check(&h, &edit(&["tools.md"], d)).unwrap_err();
        assert_eq!(r.check, "exact_target", "{r:?}");
        let big: String = (0..130).map(|i| format!("line {i}\n")).collect();
        let d = crate::diff::make("tools.md", h.file("tools.md"), &big);
        assert_eq!(
            check(&h, &edit(&["tools.md"], d)).unwrap_err().check,
            "bounds"
        );
        let long = format!("{}{}\n", h.file("tools.md"), "x".repeat(6001));
        let d = crate::diff::make("tools.md", h.file("tools.md"), &long);
        let r = check(&h, &edit(&["tools.md"], d)).unwrap_err();
        assert!(r.reason.contains("6001 added characters"), "{r:?}");
        let stale = "--- a/tools.md\n+++ b/tools.md\n@@ -1 +1 @@\n-no such line\n+x\n".to_string();
        assert_eq!(
            check(&h, &edit(&["tools.md"], stale)).unwrap_err().check,
            "parse"
        );
        let broken = replace(&h, "contract.schema.json", "\"title\"", "title");
        assert_eq!(
            check(&h, &edit(&["contract.schema.json"], broken))
                .unwrap_err()
                .check,
            "contract"
        );
    }

    #[test]
    fn refiner_answers_are_parsed_strictly() {
        let one = r#"{"edits": [{"category": "missing_constraint", "rationale": "r",
                       "plan": ["instructions.md"], "diff": "--- a/x"}]}"#;
        assert_eq!(parse(one).unwrap().len(), 1);
        let e =
            r#"{"category": "step_order", "rationale": "r", "plan": ["tools.md"], "diff": "d"}"#;
        let four = format!(r#"{{"edits": [{e}, {e}, {e}, {e}]}}"#);
        assert!(
            parse(&four)
                .unwrap_err()
                .to_string()
                .contains("expected 1 to 3 edits, got 4")
        );
        let err = parse(
            r#"{"edits": [{"category": "step_order", "rationale": "r", "plan": [], "diff": "d"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("edits[0].plan: must name at least one item"),
            "{err}"
        );
        let err =
            parse(r#"{"edits": [{"category": "step_order", "rationale": "r", "plan": ["a"]}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("edits[0]: missing field \"diff\""), "{err}");
        assert!(
            parse("{}")
                .unwrap_err()
                .to_string()
                .contains("missing field \"edits\"")
        );
    }
}
