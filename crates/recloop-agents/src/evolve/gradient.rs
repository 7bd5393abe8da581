//! The semantic gradient: the evaluator role reads the incumbent harness and its replays and
//! answers with a 0–5 score, a loss report and a structured diagnosis. Its answer is parsed
//! strictly; anything malformed is an error naming the field and what was wrong.

use crate::error::{AgentError, Result};
use crate::evolve::replay::ReplayRun;
use crate::evolve::tasks::ReplayTask;
use crate::harness::Harness;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The categories of a diagnosis.
pub const CATEGORIES: [&str; 5] = [
    "missing_constraint",
    "step_order",
    "tool_misuse",
    "weak_evidence",
    "broken_contract",
];

/// One finding of the diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// One of [`CATEGORIES`].
    pub category: String,
    /// What is wrong, in a sentence.
    pub finding: String,
    /// The trajectory or replay lines that show it (`TASK: text`).
    pub evidence: Vec<String>,
}

/// The evaluator's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gradient {
    /// The evaluator's score of the incumbent on its replays (0–5). Reported, never used to admit.
    pub score: f64,
    /// The loss report in prose.
    pub loss_report: String,
    /// The structured diagnosis.
    pub diagnosis: Vec<Finding>,
}

impl Gradient {
    /// A compact text form (for the journal's `diagnosis` field and the refiner's archive).
    pub fn summary(&self) -> String {
        let mut s = self.loss_report.trim().to_string();
        for f in &self.diagnosis {
            s.push_str(&format!("\n- [{}] {}", f.category, f.finding));
        }
        s
    }
}

fn bad(what: &str, reason: impl std::fmt::Display) -> AgentError {
    AgentError::Llm(format!("evaluator answer: {what}: {reason}"))
}

/// Fields of an object, refusing unknown ones.
pub(crate) fn object<'a>(
    v: &'a Value,
    what: &str,
    allowed: &[&str],
    role: &str,
) -> Result<&'a Map<String, Value>> {
    let o = v
        .as_object()
        .ok_or_else(|| AgentError::Llm(format!("{role} answer: {what}: expected an object")))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AgentError::Llm(format!(
            "{role} answer: {what}: unknown field {k:?} (allowed: {})",
            allowed.join(", ")
        )));
    }
    Ok(o)
}

/// A required non-empty string field.
pub(crate) fn text(o: &Map<String, Value>, key: &str, what: &str, role: &str) -> Result<String> {
    match o.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(AgentError::Llm(format!(
            "{role} answer: {what}.{key}: must not be empty"
        ))),
        Some(other) => Err(AgentError::Llm(format!(
            "{role} answer: {what}.{key}: expected a string, got {other}"
        ))),
        None => Err(AgentError::Llm(format!(
            "{role} answer: {what}: missing field {key:?}"
        ))),
    }
}

/// A required array of non-empty strings (at least one).
pub(crate) fn texts(
    o: &Map<String, Value>,
    key: &str,
    what: &str,
    role: &str,
) -> Result<Vec<String>> {
    let arr = match o.get(key) {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(AgentError::Llm(format!(
                "{role} answer: {what}.{key}: expected an array of strings, got {other}"
            )));
        }
        None => {
            return Err(AgentError::Llm(format!(
                "{role} answer: {what}: missing field {key:?}"
            )));
        }
    };
    if arr.is_empty() {
        return Err(AgentError::Llm(format!(
            "{role} answer: {what}.{key}: must name at least one item"
        )));
    }
    arr.iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            other => Err(AgentError::Llm(format!(
                "{role} answer: {what}.{key}[{i}]: expected a non-empty string, got {other}"
            ))),
        })
        .collect()
}

/// Longest loss report, in characters.
pub const LOSS_REPORT_CHARS: usize = 600;
/// Most findings in a diagnosis.
pub const MAX_FINDINGS: usize = 4;
/// Longest finding, in characters.
pub const FINDING_CHARS: usize = 300;
/// Most evidence lines per finding.
pub const MAX_EVIDENCE: usize = 3;
/// Longest evidence line, in characters.
pub const EVIDENCE_CHARS: usize = 200;

/// The JSON Schema of the evaluator's answer (sent as the response format; a local model's
/// sampling is constrained to it, so its bounds also bound a small model's answer). [`parse`]
/// checks the rest (non-blank text).
pub fn schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 5},
            "loss_report": {"type": "string", "minLength": 1, "maxLength": LOSS_REPORT_CHARS},
            "diagnosis": {"type": "array", "maxItems": MAX_FINDINGS, "items": {
                "type": "object",
                "properties": {
                    "category": {"enum": CATEGORIES},
                    "finding": {"type": "string", "minLength": 1, "maxLength": FINDING_CHARS},
                    "evidence": {"type": "array", "maxItems": MAX_EVIDENCE, "items":
                        {"type": "string", "minLength": 1, "maxLength": EVIDENCE_CHARS}}
                },
                "required": ["category", "finding", "evidence"],
                "additionalProperties": false
            }}
        },
        "required": ["score", "loss_report", "diagnosis"],
        "additionalProperties": false
    })
}

/// Parse the evaluator's answer strictly.
pub fn parse(answer: &str) -> Result<Gradient> {
    let v = recloop_llm::parse_json_lenient(answer).map_err(|e| bad("not JSON", e))?;
    let o = object(
        &v,
        "top level",
        &["score", "loss_report", "diagnosis"],
        "evaluator",
    )?;
    let score = match o.get("score") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => return Err(bad("score", format!("expected a number, got {other}"))),
        None => return Err(bad("top level", "missing field \"score\"")),
    };
    if !(0.0..=5.0).contains(&score) {
        return Err(bad("score", format!("{score} is outside [0, 5]")));
    }
    let loss_report = text(o, "loss_report", "top level", "evaluator")?;
    let items = match o.get("diagnosis") {
        Some(Value::Array(a)) => a,
        Some(other) => return Err(bad("diagnosis", format!("expected an array, got {other}"))),
        None => return Err(bad("top level", "missing field \"diagnosis\"")),
    };
    let mut diagnosis = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("diagnosis[{i}]");
        let f = object(
            item,
            &what,
            &["category", "finding", "evidence"],
            "evaluator",
        )?;
        let category = text(f, "category", &what, "evaluator")?;
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(bad(
                &format!("{what}.category"),
                format!("{category:?} is not one of {}", CATEGORIES.join(", ")),
            ));
        }
        diagnosis.push(Finding {
            category,
            finding: text(f, "finding", &what, "evaluator")?,
            evidence: texts(f, "evidence", &what, "evaluator")?,
        });
    }
    Ok(Gradient {
        score,
        loss_report,
        diagnosis,
    })
}

/// Number the lines of every harness file (`FILE:N| text`) so findings and edits can cite them.
pub fn numbered(harness: &Harness) -> String {
    let mut s = String::new();
    for (name, text) in &harness.spec.files {
        s.push_str(&format!("## {name}\n"));
        for (i, line) in text.lines().enumerate() {
            s.push_str(&format!("{name}:{}| {line}\n", i + 1));
        }
    }
    s
}

fn excerpt(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        format!("{t}…")
    } else {
        t
    }
}

/// The evaluator's request text: the harness, each task's rubric and downstream outcome, and the
/// incumbent's replays with their verifier results.
pub fn prompt(agent: &str, harness: &Harness, tasks: &[ReplayTask], runs: &[ReplayRun]) -> String {
    let mut s = format!(
        "Role: evaluator. Diagnose the harness of the `{agent}` agent from its replays.\n\n\
         # Current harness (numbered)\n\n{}\n# Replays\n",
        numbered(harness)
    );
    for t in tasks {
        s.push_str(&format!(
            "\n## task {}\ninput: {}\noriginal outcome: {}\nrubric:\n",
            t.id,
            excerpt(&t.input, 600),
            if t.downstream.outcomes.is_empty() {
                "no downstream record".to_string()
            } else {
                t.downstream.outcomes.join(" | ")
            }
        ));
        for r in &t.rubric {
            s.push_str(&format!(
                "- ({}, weight {}) {}\n",
                r.verifier.as_str(),
                r.weight,
                r.criterion
            ));
        }
        for run in runs.iter().filter(|r| r.task == t.id) {
            s.push_str(&format!(
                "replay seed {}: score {:.2}; answer: {}\n",
                run.seed,
                run.score,
                excerpt(&run.output, 400)
            ));
            for c in run.checks.iter().filter(|c| !c.passed) {
                s.push_str(&format!("  failed {}: {}\n", c.verifier.as_str(), c.detail));
            }
        }
    }
    s.push_str(&format!(
        "\nAnswer with one JSON object and nothing else: {{\"score\": number in [0, 5], \
         \"loss_report\": string of at most {LOSS_REPORT_CHARS} characters, \"diagnosis\": at most \
         {MAX_FINDINGS} of [{{\"category\": one of {}, \"finding\": string of at most \
         {FINDING_CHARS} characters, \"evidence\": at most {MAX_EVIDENCE} strings of at most \
         {EVIDENCE_CHARS} characters quoting the task id and the replay or harness line}}]}}\n",
        CATEGORIES.join(" | ")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_answer_parses() {
        let g = parse(
            r#"{"score": 2.5, "loss_report": "replays touch eval/",
                "diagnosis": [{"category": "missing_constraint",
                               "finding": "no rule against protected paths",
                               "evidence": ["develop:r:3: files_changed eval/eval.toml"]}]}"#,
        )
        .unwrap();
        assert_eq!(g.diagnosis[0].category, "missing_constraint");
        assert!(g.summary().contains("[missing_constraint]"));
    }

    #[test]
    fn bad_answers_name_what_is_wrong() {
        let cases = [
            ("not json at all", "not JSON"),
            (
                r#"{"score": 7, "loss_report": "x", "diagnosis": []}"#,
                "outside [0, 5]",
            ),
            (
                r#"{"score": "3", "loss_report": "x", "diagnosis": []}"#,
                "score: expected a number",
            ),
            (
                r#"{"loss_report": "x", "diagnosis": []}"#,
                "missing field \"score\"",
            ),
            (
                r#"{"score": 3, "loss_report": "", "diagnosis": []}"#,
                "loss_report: must not be empty",
            ),
            (
                r#"{"score": 3, "loss_report": "x", "diagnosis": [{"category": "vibes", "finding": "f", "evidence": ["e"]}]}"#,
                "diagnosis[0].category: \"vibes\" is not one of",
            ),
            (
                r#"{"score": 3, "loss_report": "x", "diagnosis": [{"category": "step_order", "finding": "f", "evidence": []}]}"#,
                "diagnosis[0].evidence: must name at least one item",
            ),
            (
                r#"{"score": 3, "loss_report": "x", "diagnosis": [], "mood": 1}"#,
                "unknown field \"mood\"",
            ),
        ];
        for (answer, want) in cases {
            let err = parse(answer).unwrap_err().to_string();
            assert!(err.contains(want), "{answer} -> {err}");
            assert!(err.contains("evaluator answer"), "{err}");
        }
    }
}
