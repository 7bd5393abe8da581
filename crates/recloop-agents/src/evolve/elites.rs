//! Alternative parents, MAP-Elites style: the best replayed harness snapshot per edit category.
//!
//! Every candidate that passed the safety checks and was replayed is a harness version with its
//! measured mean rubric score; per diagnosis category the best one (ties: the earlier version) is
//! kept, at most [`MAX_ELITES`], best first. The refiner may base an edit on one of them instead
//! of the incumbent (`"parent": N`); the descendant is still replayed against the incumbent and
//! admitted only if it beats it.

use crate::evolve::versions;
use crate::harness::Harness;
use recloop_journal::HarnessVersionView;
use std::collections::BTreeMap;

/// Most alternative parents kept.
pub const MAX_ELITES: usize = 10;

/// One alternative parent.
#[derive(Debug, Clone)]
pub struct Elite {
    /// Its harness version.
    pub version: u32,
    /// The diagnosis category of the edit that made it.
    pub category: String,
    /// Its mean rubric score in the paired replay of its round.
    pub score: f64,
    /// Its measured gain over that round's incumbent.
    pub gain: f64,
    /// Its diff from its own parent.
    pub diff: String,
    /// Its files.
    pub harness: Harness,
}

/// The alternative parents among `versions` of `agent` (the incumbent itself excluded).
pub fn elites(agent: &str, versions: &[HarnessVersionView], incumbent: u32) -> Vec<Elite> {
    let mut best: BTreeMap<String, Elite> = BTreeMap::new();
    for v in versions.iter().filter(|v| v.version != incumbent) {
        let paired = &v.evidence["paired"];
        let (Some(score), Some(gain), Some(category)) = (
            paired["new_mean"].as_f64(),
            paired["mean_gain"].as_f64(),
            v.evidence["category"].as_str(),
        ) else {
            continue; // never replayed: refused, or the initial harness
        };
        let better = best.get(category).is_none_or(|e| score > e.score);
        if better {
            best.insert(
                category.to_string(),
                Elite {
                    version: v.version,
                    category: category.to_string(),
                    score,
                    gain,
                    diff: v.diff.clone(),
                    harness: versions::harness_of(agent, v),
                },
            );
        }
    }
    let mut out: Vec<Elite> = best.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.version.cmp(&b.version)));
    out.truncate(MAX_ELITES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(version: u32, evidence: serde_json::Value) -> HarnessVersionView {
        HarnessVersionView {
            agent: "develop".into(),
            version,
            parent_version: Some(1),
            admitted: false,
            diagnosis: String::new(),
            files: BTreeMap::new(),
            diff: format!("diff of v{version}"),
            evidence,
            run_id: None,
            seq: u64::from(version),
        }
    }

    fn replayed(category: &str, score: f64) -> serde_json::Value {
        json!({"category": category, "paired": {"new_mean": score, "mean_gain": score - 3.0}})
    }

    #[test]
    fn the_best_replayed_snapshot_per_category_best_first() {
        let vs = vec![
            view(1, serde_json::Value::Null),
            view(2, replayed("step_order", 3.5)),
            view(3, replayed("step_order", 4.0)),
            // refused: never replayed
            view(4, json!({"category": "tool_misuse", "paired": null})),
            view(5, replayed("weak_evidence", 4.5)),
            // a tie keeps the earlier version
            view(6, replayed("step_order", 4.0)),
            view(7, replayed("missing_constraint", 4.9)),
        ];
        let e = elites("develop", &vs, 7);
        let got: Vec<(u32, &str)> = e.iter().map(|e| (e.version, e.category.as_str())).collect();
        // v7 is the incumbent and not its own alternative
        assert_eq!(got, vec![(5, "weak_evidence"), (3, "step_order")]);
        assert!((e[0].gain - 1.5).abs() < 1e-12);
        assert_eq!(e[1].diff, "diff of v3");
    }
}
