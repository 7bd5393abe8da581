//! Evidence for prompts, assembled by plain code from the journal: production, the experiments
//! best-first as compact deltas, failures and lessons.

use crate::history::History;
use recloop_core::{LessonStatus, Manifest, MetricValues};

/// Render the evidence block (bounded in size).
pub fn render(h: &History, manifest: &Manifest, production: &MetricValues) -> String {
    let p = &manifest.metrics.primary;
    let sign = p.direction.sign();
    let base = production.get(&p.name).copied().unwrap_or(f64::NAN);
    let mut out = format!(
        "## Production\n{} = {base:.4} (validation)\n\n## Experiments, best first (delta vs production)\n",
        p.name
    );
    let mut measured: Vec<_> = h.trials.iter().filter(|t| t.value.is_some()).collect();
    measured.sort_by(|a, b| {
        (sign * b.value.unwrap_or(0.0)).total_cmp(&(sign * a.value.unwrap_or(0.0)))
    });
    for t in measured.iter().take(15) {
        let v = t.value.unwrap_or(f64::NAN);
        out.push_str(&format!(
            "- {} [{}] {}: {:+.4} {}{}\n",
            t.proposal.id,
            t.proposal.lever,
            t.proposal.title,
            v - base,
            t.decision
                .map_or("undecided".to_string(), |d| d.to_string()),
            t.quality
                .map_or(String::new(), |q| format!(" (Q_code {q:.2})"))
        ));
    }
    out.push_str("\n## Rejected and failed (avoid set)\n");
    for t in h.trials.iter().filter(|t| t.failed()).rev().take(10) {
        out.push_str(&format!(
            "- {} [{}] {}: {}\n",
            t.proposal.id,
            t.proposal.lever,
            t.proposal.title,
            t.rejected.clone().unwrap_or_else(|| "DISCARD".into())
        ));
    }
    let errors: Vec<_> = h.trials.iter().filter(|t| t.error.is_some()).collect();
    if !errors.is_empty() {
        out.push_str("\n## Not judged: the machinery failed (not in the avoid set)\n");
        for t in errors.iter().rev().take(5) {
            out.push_str(&format!(
                "- {} {}: {}\n",
                t.proposal.id,
                t.proposal.title,
                t.error.clone().unwrap_or_default()
            ));
        }
    }
    out.push_str("\n## Lessons\n");
    for l in h
        .lessons
        .values()
        .filter(|l| l.status != LessonStatus::Falsified)
    {
        out.push_str(&format!("- ({:?}, {:?}) {}\n", l.kind, l.status, l.text));
    }
    out
}

/// What the journal knows that Develop should not repeat for `proposal`: failures and rejections
/// on the same lever or stage (with their reasons), and the lessons still standing.
pub fn pitfalls(h: &History, proposal: &recloop_core::Proposal) -> String {
    let mut out = String::new();
    let related = h.trials.iter().filter(|t| {
        t.proposal.id != proposal.id
            && (t.proposal.lever == proposal.lever || t.proposal.stage == proposal.stage)
            && (t.failed() || t.error.is_some())
    });
    for t in related.rev().take(5) {
        let why = t
            .rejected
            .clone()
            .or_else(|| t.error.clone())
            .unwrap_or_else(|| "DISCARD".into());
        out.push_str(&format!(
            "- {} [{}] {}: {why}\n",
            t.proposal.id, t.proposal.lever, t.proposal.title
        ));
    }
    let lessons: Vec<String> = h
        .lessons
        .values()
        .filter(|l| l.status != LessonStatus::Falsified)
        .take(5)
        .map(|l| format!("- lesson ({:?}): {}\n", l.status, l.text))
        .collect();
    out.extend(lessons);
    out
}
