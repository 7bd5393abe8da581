//! A Tree-structured Parzen Estimator over spec coordinates, guided by past trials.
//!
//! Past trials are split into good (the best γ fraction by the primary metric) and bad; a candidate
//! is scored by Σ_d log l_d(x_d) − log g_d(x_d), with Gaussian Parzen windows (plus a uniform prior)
//! for numeric coordinates and smoothed frequencies for categories.

use crate::space::Coord;
use std::collections::BTreeMap;

/// One observed trial: the spec's coordinates and its value (higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Coordinates.
    pub x: BTreeMap<String, Coord>,
    /// Value, already signed so that higher is better.
    pub y: f64,
}

/// What TPE learns from: each measured trial's coordinates (`coords`; `None` skips the trial)
/// and signed validation value. A trial that went online and was not kept, or that a guardrail
/// stopped offline, counts as no better than the current production: its offline gain did not
/// survive the users or came at a price the workspace does not accept (inconclusive, or a
/// guardrail not shown unharmed), so the search must not crowd around it.
pub fn observations(
    history: &crate::history::History,
    sign: f64,
    coords: impl Fn(&crate::history::Trial) -> Option<BTreeMap<String, Coord>>,
) -> Vec<Observation> {
    let production = history
        .production_values
        .last()
        .map_or(f64::NEG_INFINITY, |p| sign * p.1);
    history
        .trials
        .iter()
        .filter_map(|t| {
            let y = sign * t.value?;
            Some(Observation {
                x: coords(t)?,
                y: if t.failed_despite_gain() {
                    y.min(production)
                } else {
                    y
                },
            })
        })
        .collect()
}

/// The fitted densities.
#[derive(Debug, Clone)]
pub struct Tpe {
    good: Vec<BTreeMap<String, Coord>>,
    bad: Vec<BTreeMap<String, Coord>>,
}

/// Fraction of observations counted as good.
pub const GAMMA: f64 = 0.25;

impl Tpe {
    /// Fit on observations (non-finite values are ignored). `None` with fewer than 3 observations.
    pub fn fit(obs: &[Observation]) -> Option<Tpe> {
        let mut o: Vec<&Observation> = obs.iter().filter(|o| o.y.is_finite()).collect();
        if o.len() < 3 {
            return None;
        }
        o.sort_by(|a, b| b.y.total_cmp(&a.y));
        let n_good = ((o.len() as f64 * GAMMA).ceil() as usize).clamp(1, o.len() - 1);
        Some(Tpe {
            good: o[..n_good].iter().map(|o| o.x.clone()).collect(),
            bad: o[n_good..].iter().map(|o| o.x.clone()).collect(),
        })
    }

    /// log l(x) − log g(x): larger means "looks like the good trials".
    pub fn score(&self, x: &BTreeMap<String, Coord>) -> f64 {
        x.iter()
            .map(|(k, v)| {
                (density(&self.good, k, v) + 1e-9).ln() - (density(&self.bad, k, v) + 1e-9).ln()
            })
            .sum()
    }
}

fn density(set: &[BTreeMap<String, Coord>], key: &str, v: &Coord) -> f64 {
    let values: Vec<&Coord> = set.iter().filter_map(|x| x.get(key)).collect();
    match v {
        Coord::Num(x) => {
            let nums: Vec<f64> = values
                .iter()
                .filter_map(|c| match c {
                    Coord::Num(n) => Some(*n),
                    Coord::Cat(_) => None,
                })
                .collect();
            let n = nums.len() as f64;
            let bw = (0.25 / (n + 1.0).sqrt()).max(0.05);
            let norm = 1.0 / (bw * (2.0 * std::f64::consts::PI).sqrt());
            let kernel: f64 = nums
                .iter()
                .map(|m| norm * (-0.5 * ((x - m) / bw).powi(2)).exp())
                .sum();
            // Uniform prior on [0, 1] counts as one pseudo-observation.
            (kernel + 1.0) / (n + 1.0)
        }
        Coord::Cat(c) => {
            let n = values.len() as f64;
            let hits = values
                .iter()
                .filter(|v| matches!(v, Coord::Cat(x) if x == c))
                .count() as f64;
            (hits + 1.0) / (n + 4.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(x: f64, y: f64) -> Observation {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), Coord::Num(x));
        Observation { x: m, y }
    }

    #[test]
    fn prefers_the_region_of_good_trials() {
        // y peaks at x = 0.8.
        let o: Vec<Observation> = (0..20)
            .map(|i| {
                let x = i as f64 / 19.0;
                obs(x, -(x - 0.8).powi(2))
            })
            .collect();
        let t = Tpe::fit(&o).unwrap();
        let near = t.score(&obs(0.8, 0.0).x);
        let far = t.score(&obs(0.1, 0.0).x);
        assert!(near > far, "{near} vs {far}");
        assert!(Tpe::fit(&o[..2]).is_none());
    }
}

#[cfg(test)]
mod guardrail_tests {
    use crate::history::History;
    use recloop_core::{Decision, GuardrailStatus};
    use recloop_journal::{Event, EventFilter, Journal, NewEvent, fixtures};

    #[test]
    fn a_gain_a_guardrail_stopped_counts_as_no_better_than_production() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let push = |e: Event| {
            j.append(NewEvent::new("run-1", 1, e)).unwrap();
        };
        for (id, value, guardrail) in [
            ("a", 0.40, GuardrailStatus::Harm),
            ("b", 0.35, GuardrailStatus::Ok),
        ] {
            push(Event::ProposalMade {
                proposal: fixtures::proposal(id, id, "h", "candidates", "x"),
            });
            let mut metrics = recloop_core::MetricValues::new();
            metrics.insert("ndcg@10".into(), value);
            push(Event::OfflineResult {
                proposal_id: id.into(),
                candidate_id: format!("c-{id}"),
                split: "validation".into(),
                metrics,
            });
            let mut v = fixtures::verdict(
                if guardrail == GuardrailStatus::Ok {
                    Decision::Keep
                } else {
                    Decision::Discard
                },
                0.1,
            );
            v.guardrails.insert("coverage@10".into(), guardrail);
            push(Event::Verdict {
                proposal_id: id.into(),
                candidate_id: format!("c-{id}"),
                experiment_id: None,
                verdict: v,
            });
        }
        let events = j.events(&EventFilter::default()).unwrap();
        let h = History::from_events(&events, "ndcg@10");
        let blocked = &h.trials[0];
        assert!(blocked.guardrail_failed && blocked.failed_despite_gain());
        assert!(!h.trials[1].failed_despite_gain());
        let obs = super::observations(&h, 1.0, |_| Some(Default::default()));
        // no production value recorded: the blocked trial is clamped to -inf, the kept one stays
        assert_eq!(obs[0].y, f64::NEG_INFINITY);
        assert_eq!(obs[1].y, 0.35);
    }
}
