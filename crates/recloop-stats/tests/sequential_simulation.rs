//! A/A simulation: under continuous monitoring the always-valid test keeps its false-positive
//! rate ≤ α, while a fixed-horizon t-test peeked at 10 looks does not. Seeded; prints both rates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use recloop_stats::{
    ArmSummary, CompareRequest, MetricKind, SequentialMonitor, SequentialSpec, compare,
    lan_demets_bounds,
};

fn normal(rng: &mut Pcg64Mcg) -> f64 {
    // Box–Muller.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[derive(Default, Clone, Copy)]
struct Sums {
    n: f64,
    s: f64,
    ss: f64,
}

impl Sums {
    fn add(&mut self, y: f64) {
        self.n += 1.0;
        self.s += y;
        self.ss += y * y;
    }
    fn arm(self) -> ArmSummary {
        ArmSummary::mean(self.n, self.s, self.ss)
    }
}

#[test]
fn sequential_test_controls_false_positives_under_continuous_monitoring_and_peeking_does_not() {
    let alpha = 0.05;
    let sims = 600;
    let per_arm = 5_000;
    let batch = 50; // a look every 50 units per arm: 100 looks
    let peek_every = per_arm / 10; // the fixed-horizon t-test is peeked at 10 looks
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let (mut seq_fp, mut peek_fp, mut final_fp) = (0usize, 0usize, 0usize);
    for _ in 0..sims {
        let (mut a, mut b) = (Sums::default(), Sums::default());
        let mut monitor = SequentialMonitor::new();
        let (mut seq_rejected, mut peek_rejected) = (false, false);
        let mut last_p = 1.0;
        for i in 1..=per_arm {
            a.add(normal(&mut rng));
            b.add(normal(&mut rng));
            if i % batch == 0 {
                let mut req = CompareRequest::new(MetricKind::Mean, a.arm(), b.arm());
                req.alpha = alpha;
                req.sequential = Some(SequentialSpec {
                    tuning: Some(5000.0),
                    tau2: None,
                });
                let p = monitor
                    .observe(compare(&req).expect("seq").p.expect("p"))
                    .expect("p");
                assert!(p <= last_p, "monitored p increased");
                last_p = p;
                seq_rejected |= p < alpha;
            }
            if i % peek_every == 0 {
                let req = CompareRequest::new(MetricKind::Mean, a.arm(), b.arm());
                let p = compare(&req).expect("t").p.expect("p");
                peek_rejected |= p < alpha;
                if i == per_arm && p < alpha {
                    final_fp += 1;
                }
            }
        }
        seq_fp += usize::from(seq_rejected);
        peek_fp += usize::from(peek_rejected);
    }
    let rate = |k: usize| k as f64 / sims as f64;
    println!(
        "A/A, {sims} simulations, {per_arm} units/arm: always-valid sequential (100 looks) FPR = {:.3}; \
         t-test peeked at 10 looks FPR = {:.3}; t-test at the final look only FPR = {:.3} (α = {alpha})",
        rate(seq_fp),
        rate(peek_fp),
        rate(final_fp)
    );
    assert!(
        rate(seq_fp) <= alpha,
        "sequential FPR {} exceeds α",
        rate(seq_fp)
    );
    assert!(
        rate(peek_fp) > 0.09,
        "peeking FPR {} should clearly exceed α",
        rate(peek_fp)
    );
}

#[test]
fn group_sequential_bounds_spend_alpha() {
    // One look: the fixed two-sided bound.
    let one = lan_demets_bounds(&[1.0], 0.05, 2.0, 2).expect("bounds");
    assert!((one[0] - 1.959_963_984_540_054).abs() < 1e-6, "{one:?}");
    // Two looks at t = 1/2, 1: the first bound spends α/4 = P(|Z| > b₁).
    let two = lan_demets_bounds(&[0.5, 1.0], 0.05, 2.0, 2).expect("bounds");
    assert!((two[0] - 2.497_705_474).abs() < 1e-5, "{two:?}");
    // Five equally spaced looks: Monte Carlo crossing probability ≈ α.
    let info = [0.2, 0.4, 0.6, 0.8, 1.0];
    let b = lan_demets_bounds(&info, 0.05, 2.0, 2).expect("bounds");
    assert!(
        b.windows(2).all(|w| w[0] > w[1]),
        "bounds should decrease: {b:?}"
    );
    let mut rng = Pcg64Mcg::seed_from_u64(11);
    let sims = 40_000;
    let mut crossed = 0;
    for _ in 0..sims {
        let mut s = 0.0;
        for (k, &t) in info.iter().enumerate() {
            let dt = t - if k == 0 { 0.0 } else { info[k - 1] };
            s += dt.sqrt() * normal(&mut rng);
            if (s / t.sqrt()).abs() > b[k] {
                crossed += 1;
                break;
            }
        }
    }
    let rate = crossed as f64 / sims as f64;
    println!("Lan–DeMets ρ=2 bounds {b:?}: Monte Carlo type-I error {rate:.4}");
    assert!((rate - 0.05).abs() < 0.0045, "crossing rate {rate}");
}
