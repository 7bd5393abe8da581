//! Retrieval helpers: safe full-text query construction for both dialects, and the plain-code
//! similarity and ranking used by `similar_experiments` and `best_first`.

use crate::sql::Dialect;
use crate::views::{ExperimentView, RankedExperiment};
use recloop_core::{Direction, Proposal};
use std::collections::BTreeSet;

/// Words of `text`: lowercase alphanumeric runs (everything else separates words).
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

const STOP: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "from", "into", "than", "then", "are", "was",
    "will", "should", "would", "can", "not", "but", "its", "our", "more", "less", "use", "using",
];

/// Content words of `text` (length ≥ 3, no stop words), deduplicated, in first-seen order.
pub(crate) fn content_words(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// The full-text query expression for `terms` (already reduced to alphanumeric words, so no
/// query syntax can be injected). `None` when there is nothing to match.
pub(crate) fn fts_expression(dialect: Dialect, terms: &[String], any: bool) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    Some(match dialect {
        Dialect::Sqlite => {
            let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            quoted.join(if any { " OR " } else { " " })
        }
        Dialect::Postgres => terms.join(if any { " | " } else { " & " }),
    })
}

/// Similarity of a past experiment to a proposal, in [0, 1].
pub(crate) fn similarity(p: &Proposal, e: &ExperimentView) -> f64 {
    let a: BTreeSet<String> =
        content_words(&format!("{} {} {}", p.title, p.hypothesis, p.mechanism))
            .into_iter()
            .collect();
    let b: BTreeSet<String> =
        content_words(&format!("{} {} {}", e.title, e.hypothesis, e.mechanism))
            .into_iter()
            .collect();
    let union = a.union(&b).count();
    let jaccard = if union == 0 {
        0.0
    } else {
        a.intersection(&b).count() as f64 / union as f64
    };
    let same = |x: &str, y: Option<&String>| !x.is_empty() && y.is_some_and(|y| y == x);
    0.6 * jaccard
        + if same(&p.lever, e.lever.as_ref()) {
            0.25
        } else {
            0.0
        }
        + if same(&p.stage, e.stage.as_ref()) {
            0.15
        } else {
            0.0
        }
}

/// Rank experiments by `metric` in `direction` (best first), with deltas against the production
/// version each started from (`base` gives that version's value of the metric).
pub(crate) fn rank(
    experiments: Vec<ExperimentView>,
    metric: &str,
    direction: Direction,
    base: impl Fn(&str) -> Option<f64>,
    limit: usize,
) -> Vec<RankedExperiment> {
    let mut ranked: Vec<(RankedExperiment, u64)> = experiments
        .into_iter()
        .filter_map(|e| {
            let value = *e.offline_metrics.get(metric)?;
            if !value.is_finite() {
                return None;
            }
            let delta = e
                .base_commit
                .as_deref()
                .and_then(&base)
                .map(|b| value - b)
                .filter(|d| d.is_finite());
            let verdict = e
                .decision
                .map(|d| d.to_string())
                .unwrap_or_else(|| e.status.clone());
            let line = format!(
                "{} {metric}={value:.4}{} {verdict}{} {}",
                e.proposal_id,
                delta.map(|d| format!(" ({d:+.4})")).unwrap_or_default(),
                e.lever
                    .as_deref()
                    .map(|l| format!(" [{l}]"))
                    .unwrap_or_default(),
                e.title
            );
            let order = e.proposal_seq.unwrap_or(e.updated_seq);
            Some((
                RankedExperiment {
                    proposal_id: e.proposal_id,
                    title: e.title,
                    lever: e.lever,
                    value,
                    delta,
                    decision: e.decision,
                    status: e.status,
                    line,
                },
                order,
            ))
        })
        .collect();
    ranked.sort_by(|(a, sa), (b, sb)| {
        let (x, y) = (a.value * direction.sign(), b.value * direction.sign());
        y.total_cmp(&x).then(sa.cmp(sb))
    });
    ranked.into_iter().take(limit).map(|(r, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_strip_syntax() {
        assert_eq!(words("NDCG@10 \"OR\" (x*)"), vec!["ndcg", "10", "or", "x"]);
        assert_eq!(
            fts_expression(Dialect::Sqlite, &words("a-b"), false).unwrap(),
            "\"a\" \"b\""
        );
        assert_eq!(
            fts_expression(Dialect::Postgres, &words("a b"), true).unwrap(),
            "a | b"
        );
        assert!(fts_expression(Dialect::Postgres, &[], true).is_none());
    }

    #[test]
    fn content_words_drop_short_and_stop_words() {
        assert_eq!(
            content_words("Use the EASE model for the EASE win"),
            vec!["ease", "model", "win"]
        );
    }
}
