//! The ramp state machine against a synthetic adapter with known effects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_core::{Decision, Manifest};
use recloop_online::assign::{Assignment, splitmix64};
use recloop_online::{
    Ack, Adapter, DayReport, ExperimentEvent, ExperimentSettings, MetricStats, OnlineError,
    Outcome, Result, run_with_adapter,
};
use std::path::Path;

/// Units arrive each day; each unit has a primary value N(10 + lift, 3) and a guardrail N(5 − harm, 2).
struct Synthetic {
    population: u64,
    lift: f64,
    harm: f64,
    seed: u64,
    drop_treatment: bool,
}

fn normal(h: u64) -> f64 {
    let u1 = ((splitmix64(h) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = ((splitmix64(h ^ 0xABCD) >> 11) as f64) / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Adapter for Synthetic {
    fn name(&self) -> &str {
        "synthetic"
    }
    fn metrics(&self) -> Vec<String> {
        vec!["score".into(), "guard".into()]
    }
    fn run_day(&mut self, day: u32, share: f64) -> Result<DayReport> {
        let a = Assignment { seed: self.seed };
        let mut r = DayReport {
            day,
            ..Default::default()
        };
        let mut score = [MetricStats::default(); 2];
        let mut guard = [MetricStats::default(); 2];
        for u in 0..self.population {
            let Some(arm) = a.arm(u, share) else { continue };
            let i = arm.index();
            if i == 1 && self.drop_treatment && u % 5 == 0 {
                continue;
            }
            r.units[i] += 1;
            // cumulative per-unit means of daily draws, like real per-user metrics
            let (mut s, mut g) = (0.0, 0.0);
            for d in 0..=day {
                let h = splitmix64(u ^ self.seed.rotate_left(17)) ^ (u64::from(d) << 40);
                s += normal(h);
                g += normal(h ^ 77);
            }
            let k = f64::from(day + 1);
            let t = if i == 1 { 1.0 } else { 0.0 };
            score[i].push_mean(10.0 + t * self.lift + 3.0 * s / k);
            guard[i].push_mean(5.0 - t * self.harm + 2.0 * g / k);
        }
        r.metrics.insert("score".into(), score);
        r.metrics.insert("guard".into(), guard);
        Ok(r)
    }
}

fn manifest(extra: &str) -> Manifest {
    let text = format!(
        r#"
[project]
name = "t"
editable = ["pipeline.toml"]
[metrics]
primary = {{ name = "score", direction = "increase", min_effect = 0.1 }}
guardrails = [{{ name = "guard", direction = "increase", attention = 0.02, hard = 0.05 }}]
{extra}
"#
    );
    Manifest::parse(&text, Path::new("recloop.toml")).unwrap()
}

fn run(adapter: &mut Synthetic) -> (recloop_online::ExperimentReport, Vec<ExperimentEvent>) {
    let mut events = Vec::new();
    let report = run_with_adapter(
        &manifest(""),
        adapter,
        &ExperimentSettings::default(),
        &mut |e| {
            events.push(e.clone());
            Ack::Continue
        },
    )
    .unwrap();
    (report, events)
}

#[test]
fn better_candidate_is_kept_after_full_ramp() {
    let mut a = Synthetic {
        population: 20_000,
        lift: 0.5,
        harm: 0.0,
        seed: 1,
        drop_treatment: false,
    };
    let (r, events) = run(&mut a);
    assert_eq!(r.verdict.decision, Decision::Keep, "{:?}", r.verdict);
    assert_eq!(r.max_share, 0.5);
    let advances = events
        .iter()
        .filter(|e| matches!(e, ExperimentEvent::RampAdvanced { .. }))
        .count();
    assert_eq!(advances, 3);
    assert!(matches!(
        events.last(),
        Some(ExperimentEvent::Verdict { .. })
    ));
}

#[test]
fn harmful_candidate_is_rolled_back_early() {
    let mut a = Synthetic {
        population: 20_000,
        lift: 0.5,
        harm: 1.0,
        seed: 2,
        drop_treatment: false,
    };
    let (r, _) = run(&mut a);
    assert_eq!(r.verdict.decision, Decision::Discard);
    match r.outcome {
        Outcome::RolledBack {
            share, ref metric, ..
        } => {
            assert!(share <= 0.05, "{share}");
            assert_eq!(metric, "guard");
        }
        ref o => panic!("{o:?}"),
    }
}

#[test]
fn sample_ratio_mismatch_holds() {
    let mut a = Synthetic {
        population: 20_000,
        lift: 0.0,
        harm: 0.0,
        seed: 3,
        drop_treatment: true,
    };
    let (r, events) = run(&mut a);
    assert!(matches!(r.outcome, Outcome::Held { .. }), "{:?}", r.outcome);
    assert_eq!(r.verdict.decision, Decision::Extend);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ExperimentEvent::Hold { .. }))
    );
}

#[test]
fn aa_runs_rarely_keep_or_veto() {
    let mut keeps = 0;
    let mut vetoes = 0;
    for seed in 0..40 {
        let mut a = Synthetic {
            population: 4_000,
            lift: 0.0,
            harm: 0.0,
            seed: 100 + seed,
            drop_treatment: false,
        };
        let (r, _) = run(&mut a);
        keeps += usize::from(r.verdict.decision == Decision::Keep);
        vetoes += usize::from(matches!(r.outcome, Outcome::RolledBack { .. }));
    }
    assert!(keeps <= 4, "{keeps}");
    assert!(vetoes <= 4, "{vetoes}");
}

#[test]
fn missing_metric_and_stop_are_clear_errors() {
    let m = manifest("");
    let mut m2 = m.clone();
    m2.metrics.primary.name = "ndcg@10".into();
    let mut a = Synthetic {
        population: 1000,
        lift: 0.0,
        harm: 0.0,
        seed: 4,
        drop_treatment: false,
    };
    let err = run_with_adapter(&m2, &mut a, &ExperimentSettings::default(), &mut |_| {
        Ack::Continue
    })
    .unwrap_err();
    assert!(matches!(err, OnlineError::MissingMetric { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("ndcg@10") && msg.contains("score, guard"),
        "{msg}"
    );
    let err = run_with_adapter(&m, &mut a, &ExperimentSettings::default(), &mut |e| {
        if matches!(e, ExperimentEvent::RampAdvanced { .. }) {
            Ack::Stop("journal is read-only".into())
        } else {
            Ack::Continue
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("journal is read-only"), "{err}");
    // a manifest without a primary metric is refused by the parser with the field named
    let bad = "[project]\nname = \"t\"\neditable = [\"a\"]\n[metrics]\nguardrails = []\n";
    let err = Manifest::parse(bad, Path::new("recloop.toml")).unwrap_err();
    assert!(err.to_string().contains("primary"), "{err}");
}

#[test]
fn approve_mode_rejection_rolls_back() {
    // harm between attention (2%) and hard (5%): 0.15/5 = 3%
    let mut a = Synthetic {
        population: 200_000,
        lift: 0.5,
        harm: 0.15,
        seed: 5,
        drop_treatment: false,
    };
    let settings = ExperimentSettings {
        approve: true,
        sequential_tuning: 1e9, // make the veto nearly blind so the escalation path is exercised
        ..Default::default()
    };
    let mut asked = 0;
    let r = run_with_adapter(&manifest(""), &mut a, &settings, &mut |e| {
        if matches!(e, ExperimentEvent::Escalation { .. }) {
            asked += 1;
            Ack::Reject
        } else {
            Ack::Continue
        }
    })
    .unwrap();
    assert!(asked >= 1);
    assert!(
        matches!(r.outcome, Outcome::RolledBack { .. }),
        "{:?}",
        r.outcome
    );
}
