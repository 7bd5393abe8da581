//! EASE, iALS and BPR on small generated data with known answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use recloop_rec::models::bpr::{Bpr, BprParams};
use recloop_rec::models::ease::Ease;
use recloop_rec::models::ials::{Ials, IalsParams};
use recloop_rec::{Interactions, Model};
use std::collections::BTreeMap;

fn random_matrix(n_users: usize, n_items: usize, p: f64, seed: u64) -> Interactions {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut pairs = Vec::new();
    for u in 0..n_users {
        for i in 0..n_items {
            if rng.random::<f64>() < p {
                pairs.push((u as u32, i as u32));
            }
        }
    }
    Interactions::from_pairs(n_users, n_items, &pairs)
}

/// Users in `groups` clusters; a user of cluster g interacts with a random 60 % of the items of
/// cluster g (items `i % groups == g`) and with a few random others.
fn planted(n_users: usize, n_items: usize, groups: usize, seed: u64) -> Interactions {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut pairs = Vec::new();
    for u in 0..n_users {
        let g = u % groups;
        for i in 0..n_items {
            let p = if i % groups == g { 0.6 } else { 0.02 };
            if rng.random::<f64>() < p {
                pairs.push((u as u32, i as u32));
            }
        }
    }
    Interactions::from_pairs(n_users, n_items, &pairs)
}

/// Inverse of a small SPD matrix by Gauss-Jordan elimination in f64.
fn invert(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for c in 0..n {
        let piv = a[c * n + c];
        for j in 0..n {
            a[c * n + j] /= piv;
            inv[c * n + j] /= piv;
        }
        for r in 0..n {
            if r != c {
                let f = a[r * n + c];
                for j in 0..n {
                    a[r * n + j] -= f * a[c * n + j];
                    inv[r * n + j] -= f * inv[c * n + j];
                }
            }
        }
    }
    inv
}

#[test]
fn ease_matches_a_direct_dense_solve() {
    let (nu, ni, lambda) = (80, 30, 7.5);
    let x = random_matrix(nu, ni, 0.3, 1);
    let mut g = vec![0.0f64; ni * ni];
    for u in 0..nu {
        for &i in x.items_of(u) {
            for &j in x.items_of(u) {
                g[i as usize * ni + j as usize] += 1.0;
            }
        }
    }
    for i in 0..ni {
        g[i * ni + i] += lambda;
    }
    let p = invert(g, ni);
    let mut m = Ease::new(lambda).unwrap();
    m.fit(&x).unwrap();
    let w = m.weights();
    for i in 0..ni {
        for j in 0..ni {
            let want = if i == j {
                0.0
            } else {
                -p[i * ni + j] / p[j * ni + j]
            };
            let got = w[i * ni + j] as f64;
            assert!(
                (got - want).abs() < 1e-4,
                "B[{i}][{j}] = {got}, want {want}"
            );
        }
    }
    // scores are x_u · B
    let s = m.score(3, ni);
    for j in 0..ni {
        let want: f64 = x
            .items_of(3)
            .iter()
            .map(|&i| w[i as usize * ni + j] as f64)
            .sum();
        assert!((s[j] as f64 - want).abs() < 1e-5);
    }
}

fn batch_equals_single(m: &dyn Model, n_users: usize, n_items: usize) {
    let users: Vec<usize> = (0..n_users).collect();
    let mut out = vec![0f32; n_users * n_items];
    m.score_batch(&users, &mut out);
    for u in 0..n_users {
        assert_eq!(
            &out[u * n_items..(u + 1) * n_items],
            &m.score(u, n_items)[..],
            "user {u}"
        );
    }
}

#[test]
fn batch_scores_equal_single_scores() {
    let x = random_matrix(70, 90, 0.2, 2);
    let mut e = Ease::new(10.0).unwrap();
    e.fit(&x).unwrap();
    batch_equals_single(&e, 70, 90);
    let mut a = Ials::new(IalsParams {
        factors: 8,
        iterations: 3,
        ..Default::default()
    })
    .unwrap();
    a.fit(&x).unwrap();
    batch_equals_single(&a, 70, 90);
    let mut b = Bpr::new(BprParams {
        factors: 8,
        epochs: 2,
        ..Default::default()
    })
    .unwrap();
    b.fit(&x).unwrap();
    batch_equals_single(&b, 70, 90);
}

#[test]
fn ials_loss_decreases_and_recovers_planted_groups() {
    let (nu, ni, groups) = (200, 60, 3);
    let x = planted(nu, ni, groups, 3);
    for alpha in [1.0, 4.0] {
        let params = IalsParams {
            factors: 8,
            reg: 0.05,
            alpha,
            iterations: 8,
            cg_steps: 3,
            seed: 5,
        };
        let mut m = Ials::new(params).unwrap().with_loss_tracking(true);
        m.fit(&x).unwrap();
        let l = m.losses();
        assert_eq!(l.len(), 8);
        for w in l.windows(2) {
            assert!(w[1] <= w[0] + 1e-9, "alpha {alpha}: loss rose: {l:?}");
        }
        assert!(l[7] < l[0], "{l:?}");
        // The top unseen items of every user come from the user's own group.
        let mut own = 0;
        let mut total = 0;
        for u in 0..nu {
            let s = m.score(u, ni);
            let seen = x.items_of(u);
            let mut cand: Vec<usize> = (0..ni)
                .filter(|i| seen.binary_search(&(*i as u32)).is_err())
                .collect();
            cand.sort_by(|a, b| s[*b].total_cmp(&s[*a]));
            for &i in cand.iter().take(3) {
                total += 1;
                own += usize::from(i % groups == u % groups);
            }
        }
        assert!(
            own as f64 / total as f64 > 0.9,
            "alpha {alpha}: {own}/{total}"
        );
    }
}

/// Hit rate at 5 of held-out own-group items, for a scoring function.
fn hit_rate(x: &Interactions, test: &[Vec<u32>], score: impl Fn(usize) -> Vec<f32>) -> f64 {
    let mut hits = 0;
    for (u, t) in test.iter().enumerate() {
        let s = score(u);
        let seen = x.items_of(u);
        let mut cand: Vec<usize> = (0..x.n_items)
            .filter(|i| seen.binary_search(&(*i as u32)).is_err())
            .collect();
        cand.sort_by(|a, b| s[*b].total_cmp(&s[*a]).then(a.cmp(b)));
        if cand.iter().take(5).any(|i| t.contains(&(*i as u32))) {
            hits += 1;
        }
    }
    hits as f64 / test.len() as f64
}

#[test]
fn bpr_is_deterministic_and_beats_popularity() {
    let (nu, ni, groups) = (300, 80, 4);
    let full = planted(nu, ni, groups, 7);
    // hold out one own-group item per user
    let mut train = Vec::new();
    let mut test = vec![Vec::new(); nu];
    for (u, held_out) in test.iter_mut().enumerate() {
        let mut held = false;
        for &i in full.items_of(u) {
            if !held && i as usize % groups == u % groups {
                held_out.push(i);
                held = true;
            } else {
                train.push((u as u32, i));
            }
        }
    }
    let x = Interactions::from_pairs(nu, ni, &train);
    let params = BprParams {
        factors: 16,
        lr: 0.05,
        reg: 0.001,
        epochs: 30,
        seed: 11,
    };
    let mut a = Bpr::new(params).unwrap();
    a.fit(&x).unwrap();
    let mut b = Bpr::new(params).unwrap();
    b.fit(&x).unwrap();
    for u in [0, 17, 299] {
        assert_eq!(a.score(u, ni), b.score(u, ni), "same seed, same scores");
    }
    let mut c = Bpr::new(BprParams { seed: 12, ..params }).unwrap();
    c.fit(&x).unwrap();
    assert_ne!(
        a.score(0, ni),
        c.score(0, ni),
        "another seed gives another model"
    );

    let counts = x.item_counts();
    let pop = hit_rate(&x, &test, |_| counts.iter().map(|&c| c as f32).collect());
    let bpr = hit_rate(&x, &test, |u| a.score(u, ni));
    assert!(bpr > pop + 0.1, "bpr {bpr} vs popularity {pop}");
}

#[test]
fn save_load_round_trip_gives_identical_scores() {
    let x = random_matrix(40, 50, 0.2, 9);
    let dir = tempfile::tempdir().unwrap();
    let mut e = Ease::new(20.0).unwrap();
    e.fit(&x).unwrap();
    let p = dir.path().join("ease.bin");
    e.save(&p).unwrap();
    let e2 = Ease::load(&p).unwrap();
    let mut i = Ials::new(IalsParams {
        factors: 6,
        iterations: 2,
        ..Default::default()
    })
    .unwrap();
    i.fit(&x).unwrap();
    let pi = dir.path().join("ials.bin");
    i.save(&pi).unwrap();
    let i2 = Ials::load(&pi).unwrap();
    let mut b = Bpr::new(BprParams {
        factors: 6,
        epochs: 2,
        ..Default::default()
    })
    .unwrap();
    b.fit(&x).unwrap();
    let pb = dir.path().join("bpr.bin");
    b.save(&pb).unwrap();
    let b2 = Bpr::load(&pb).unwrap();
    for u in 0..40 {
        assert_eq!(e.score(u, 50), e2.score(u, 50));
        assert_eq!(i.score(u, 50), i2.score(u, 50));
        assert_eq!(b.score(u, 50), b2.score(u, 50));
    }
    // wrong kind, truncation and garbage are clear errors
    let err = Ials::load(&p).unwrap_err().to_string();
    assert!(err.contains("holds model `ease`, expected `ials`"), "{err}");
    let bytes = std::fs::read(&pb).unwrap();
    std::fs::write(&pb, &bytes[..bytes.len() - 3]).unwrap();
    let err = Bpr::load(&pb).unwrap_err().to_string();
    assert!(err.contains("bpr.bin"), "{err}");
    std::fs::write(&pb, b"hello").unwrap();
    assert!(Bpr::load(&pb).unwrap_err().to_string().contains("bpr.bin"));
    // saving an unfitted model is an error, not a panic
    assert!(Ease::new(1.0).unwrap().save(&p).is_err());
}

#[test]
fn bad_hyper_parameters_name_the_parameter() {
    let cases: [(&str, &str, f64, &str); 5] = [
        ("ease", "lambda", 0.0, "`lambda`"),
        (
            "ials",
            "iterations",
            1.5,
            "`iterations` must be a whole number",
        ),
        (
            "ials",
            "regularization",
            0.1,
            "unknown hyper-parameter `regularization`",
        ),
        ("bpr", "reg", f64::INFINITY, "`reg` must be finite"),
        ("bpr", "factors", 0.0, "`factors`"),
    ];
    for (model, key, value, want) in cases {
        let p = BTreeMap::from([(key.to_string(), value)]);
        let err = match model {
            "ease" => Ease::from_params(&p).err(),
            "ials" => Ials::from_params(&p).err(),
            _ => Bpr::from_params(&p).err(),
        }
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains(want) && err.contains(model),
            "{model} {key}: {err}"
        );
    }
}
