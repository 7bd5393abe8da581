//! Property tests: intervals contain the estimate, sequential p-values are monotone,
//! Holm ≥ BH, and SRM p-values are uniform under the null (seeded KS check).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use recloop_stats::{
    Alternative, ArmSummary, CompareRequest, Method, MetricKind, MsprtRequest, SequentialMonitor,
    SequentialSpec, benjamini_hochberg, bonferroni, compare, holm, msprt, srm_chi2,
};

fn arm(n: f64, mean: f64, sd: f64) -> ArmSummary {
    // Σy and Σy² consistent with the requested mean and sd.
    let sum = n * mean;
    let ss = sd * sd * (n - 1.0) + sum * sum / n;
    ArmSummary::mean(n, sum, ss)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn intervals_contain_the_estimate(
        na in 2.0f64..50_000.0, nb in 2.0f64..50_000.0,
        ma in 0.1f64..100.0, mb in 0.1f64..100.0,
        sa in 0.01f64..50.0, sb in 0.01f64..50.0,
        relative in any::<bool>(), alt in 0usize..3, seq in any::<bool>(), bayes in any::<bool>(), z in any::<bool>(),
    ) {
        let mut req = CompareRequest::new(MetricKind::Mean, arm(na.floor(), ma, sa), arm(nb.floor(), mb, sb));
        req.relative = relative;
        req.alternative = [Alternative::TwoSided, Alternative::Greater, Alternative::Lesser][alt];
        if seq { req.sequential = Some(SequentialSpec { tuning: Some(5000.0), tau2: None }); }
        if bayes { req.method = Method::Bayesian; }
        if z { req.distribution = recloop_stats::Distribution::Z; }
        let r = compare(&req).expect("valid request");
        prop_assert!(r.estimate.is_finite() && r.se.is_finite() && r.se > 0.0);
        if let Some(lo) = r.ci[0] { prop_assert!(lo <= r.estimate, "{r:?}"); }
        if let Some(hi) = r.ci[1] { prop_assert!(hi >= r.estimate, "{r:?}"); }
        if let Some(p) = r.p { prop_assert!((0.0..=1.0).contains(&p)); }
        if let Some(c) = r.chance_to_win { prop_assert!((0.0..=1.0).contains(&c)); }
    }

    #[test]
    fn sequential_p_values_never_increase(ps in proptest::collection::vec(0.0f64..=1.0, 1..60)) {
        let mut mon = SequentialMonitor::new();
        let mut last = 1.0;
        for p in ps {
            let q = mon.observe(p).expect("valid p");
            prop_assert!(q <= last && q <= p);
            last = q;
        }
    }

    #[test]
    fn msprt_carries_the_running_minimum(
        looks in proptest::collection::vec((-1.0f64..1.0, 10.0f64..10_000.0), 1..30),
    ) {
        let mut prev: Option<f64> = None;
        for (est, n) in looks {
            let r = msprt(&MsprtRequest { estimate: est, variance: 2.0, n, tau2: 0.01, alpha: 0.05, null: 0.0, previous_p: prev })
                .expect("valid");
            if let Some(p0) = prev { prop_assert!(r.p <= p0); }
            prop_assert!(r.ci[0].expect("lo") <= est && r.ci[1].expect("hi") >= est);
            prev = Some(r.p);
        }
    }

    #[test]
    fn holm_is_at_least_bh_and_at_most_bonferroni(ps in proptest::collection::vec(0.0f64..=1.0, 1..40)) {
        let h = holm(&ps).expect("holm");
        let b = benjamini_hochberg(&ps).expect("bh");
        let bf = bonferroni(&ps).expect("bonf");
        for i in 0..ps.len() {
            prop_assert!(h[i] + 1e-15 >= b[i], "holm {} < bh {}", h[i], b[i]);
            prop_assert!(h[i] <= bf[i] + 1e-15);
            prop_assert!(b[i] + 1e-15 >= ps[i]);
        }
    }
}

/// Binomial(64·words, 1/2) draw as the popcount of random words.
fn fair_binomial(rng: &mut Pcg64Mcg, words: usize) -> f64 {
    (0..words)
        .map(|_| rng.random::<u64>().count_ones() as f64)
        .sum()
}

#[test]
fn srm_p_values_are_uniform_under_the_null() {
    let mut rng = Pcg64Mcg::seed_from_u64(2024);
    let sims = 2000;
    let words = 1563; // n ≈ 100,032 units per experiment
    let n = (words * 64) as f64;
    let mut ps: Vec<f64> = (0..sims)
        .map(|_| {
            let a = fair_binomial(&mut rng, words);
            srm_chi2(&[a, n - a], &[0.5, 0.5]).expect("srm").p
        })
        .collect();
    ps.sort_by(f64::total_cmp);
    let d = ps
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            ((i + 1) as f64 / sims as f64 - p)
                .abs()
                .max((p - i as f64 / sims as f64).abs())
        })
        .fold(0.0, f64::max);
    let critical = 1.63 / (sims as f64).sqrt(); // KS, α = 0.01
    println!(
        "SRM null p-values: KS D = {d:.4} (critical {critical:.4} at α = 0.01, {sims} simulations)"
    );
    assert!(d < critical, "SRM p-values are not uniform: D = {d}");
    // And the test is not vacuous: a 51/49 split is flagged most of the time.
    let skewed = (0..200)
        .filter(|_| {
            let a = fair_binomial(&mut rng, words) + 0.01 * n;
            srm_chi2(&[a, n - a], &[0.5, 0.5]).expect("srm").p < 0.001
        })
        .count();
    assert!(skewed > 150, "only {skewed}/200 skewed splits flagged");
}
