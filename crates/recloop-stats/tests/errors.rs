//! Invalid requests produce error objects naming the field; never a panic or NaN.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

fn field_of(v: Value) -> String {
    let out = recloop_stats::run_json(&v, None);
    out["error"]["field"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("expected an error, got {out}"))
}

#[test]
fn errors_name_the_field() {
    let mean = |n: f64, s: f64, ss: f64| json!({"n": n, "sum": s, "sum_squares": ss});
    let cmp = |c: Value, t: Value| json!({"kind": "compare", "metric": "mean", "control": c, "treatment": t});
    assert_eq!(
        field_of(cmp(mean(-5.0, 1.0, 1.0), mean(10.0, 1.0, 1.0))),
        "control.n"
    );
    assert_eq!(
        field_of(cmp(mean(10.0, 1.0, 1.0), mean(1.0, 1.0, 1.0))),
        "treatment.n"
    );
    assert_eq!(
        field_of(cmp(mean(10.0, 10.0, 1.0), mean(10.0, 1.0, 1.0))),
        "control.sum_squares"
    );
    assert_eq!(
        field_of(
            json!({"kind": "compare", "metric": "mean", "control": {"n": 10}, "treatment": {"n": 10}})
        ),
        "control.sum"
    );
    assert_eq!(
        field_of(
            json!({"kind": "compare", "metric": "proportion", "control": {"n": 10, "successes": 11}, "treatment": {"n": 10, "successes": 1}})
        ),
        "control.successes"
    );
    assert_eq!(
        field_of(
            json!({"kind": "compare", "metric": "mean", "control": {"n": "x"}, "treatment": {}})
        ),
        "control.n"
    );
    assert_eq!(
        field_of(
            json!({"kind": "compare", "metric": "median", "control": {"n": 3}, "treatment": {"n": 3}})
        ),
        "metric"
    );
    let mut bad_alpha = cmp(mean(10.0, 1.0, 1.0), mean(10.0, 2.0, 3.0));
    bad_alpha["alpha"] = json!(1.5);
    assert_eq!(field_of(bad_alpha), "alpha");
    assert_eq!(field_of(json!({"kind": "nope"})), "kind");
    assert_eq!(field_of(json!({"counts": [1, 2]})), "kind");
    assert_eq!(
        field_of(json!({"kind": "srm", "counts": [10, -1], "weights": [1, 1]})),
        "counts[1]"
    );
    assert_eq!(
        field_of(json!({"kind": "srm", "counts": [10, 10], "weights": [1]})),
        "weights"
    );
    assert_eq!(
        field_of(json!({"kind": "adjust", "method": "holm", "p": [0.1, 1.2]})),
        "p[1]"
    );
    assert_eq!(
        field_of(
            json!({"kind": "msprt", "estimate": 0.1, "variance": 1, "n": 100, "tau2": 0.1, "alpha": 0})
        ),
        "alpha"
    );
    assert_eq!(
        field_of(
            json!({"kind": "ope", "actions": [0, 1], "rewards": [1, 0], "pscores": [0.5, 1.5], "action_dist": [[0.5, 0.5], [0.5, 0.5]], "estimators": {"ipw": {}}})
        ),
        "pscores[1]"
    );
    assert_eq!(
        field_of(
            json!({"kind": "ope", "actions": [0, 1], "rewards": [1, 0], "pscores": [0.5, 0.5], "action_dist": [[0.5, 0.5], [0.5, 0.5]], "estimators": {"magic": {}}})
        ),
        "estimators.magic"
    );
    assert_eq!(
        field_of(json!({"kind": "ope", "dataset": {"name": "obd"}, "estimators": {"ipw": {}}})),
        "dataset"
    );
}

#[test]
fn an_array_keeps_order_and_mixes_results_and_errors() {
    let out = recloop_stats::run_json(
        &json!([
            {"kind": "srm", "counts": [5000, 5200], "weights": [0.5, 0.5]},
            {"kind": "bogus"},
            {"kind": "adjust", "method": "bonferroni", "p": [0.01, 0.02]}
        ]),
        None,
    );
    let items = out.as_array().expect("array");
    assert_eq!(items.len(), 3);
    assert!(items[0]["p"].is_number());
    assert_eq!(items[1]["error"]["field"], "kind");
    assert_eq!(items[2]["p"], json!([0.02, 0.04]));
}

#[test]
fn degenerate_inputs_give_errors_not_nan() {
    // Zero variance in both arms.
    let v = json!({"kind": "compare", "metric": "mean", "control": {"n": 10, "sum": 10, "sum_squares": 10}, "treatment": {"n": 10, "sum": 10, "sum_squares": 10}});
    let out = recloop_stats::run_json(&v, None);
    assert!(out.get("error").is_some(), "{out}");
    // Zero control mean with a relative effect.
    let v = json!({"kind": "compare", "metric": "proportion", "relative": true, "control": {"n": 10, "successes": 0}, "treatment": {"n": 10, "successes": 3}});
    let out = recloop_stats::run_json(&v, None);
    assert_eq!(out["error"]["field"], "control", "{out}");
    // All-zero SRM counts.
    let out = recloop_stats::run_json(&json!({"kind": "srm", "counts": [0, 0]}), None);
    assert_eq!(out["error"]["field"], "counts");
}

#[test]
fn other_kinds_work() {
    let out = recloop_stats::run_json(
        &json!([
            {"kind": "srm_sequential", "counts": [5000, 5200], "weights": [0.5, 0.5], "concentration": 10000},
            {"kind": "msprt", "estimate": 0.05, "variance": 2.0, "n": 5000, "tau2": 0.01, "alpha": 0.05},
            {"kind": "power", "variance": 1.0, "n": 10000},
            {"kind": "power", "variance": 1.0, "effect": 0.0396, "cuped_correlation": 0.5},
            {"kind": "group_sequential", "information": [0.5, 1.0]},
            {"kind": "compare", "metric": "mean", "method": "bayesian",
             "control": {"n": 3407, "sum": 1396.87, "sum_squares": 52377.9767},
             "treatment": {"n": 3461, "sum": 2422.7, "sum_squares": 134698.29}},
            {"kind": "compare", "metric": "mean", "non_inferiority": {"margin": 0.1, "direction": "increase"},
             "control": {"n": 3407, "sum": 1396.87, "sum_squares": 52377.9767},
             "treatment": {"n": 3461, "sum": 2422.7, "sum_squares": 134698.29}}
        ]),
        None,
    );
    let it = out.as_array().expect("array");
    assert!(it.iter().all(|v| v.get("error").is_none()), "{out}");
    let bf = it[0]["bayes_factor"].as_f64().expect("bf");
    let p = it[0]["p"].as_f64().expect("p");
    assert!(bf > 0.0 && (p - (1.0 / bf).min(1.0)).abs() < 1e-12);
    // MDE with n = 10000 per arm, σ² = 1: (1.959964 + 0.841621)·√(2/10000) = 0.039621.
    assert!(
        (it[2]["mde"].as_f64().expect("mde") - 0.039_620_8).abs() < 1e-6,
        "{}",
        it[2]
    );
    // CUPED with ρ = 0.5 needs 3/4 of the units: ≈ 7,500.
    let n = it[3]["n"].as_f64().expect("n");
    assert!((7400.0..7600.0).contains(&n), "{n}");
    let cw = it[5]["chance_to_win"].as_f64().expect("ctw");
    assert!(cw > 0.98 && cw < 1.0);
    // Non-inferiority: the one-sided null is −0.1·ȳ_A, upper bound open.
    assert!(it[6]["ci"][1].is_null());
    assert!((it[6]["null"].as_f64().expect("null") + 0.1 * 1396.87 / 3407.0).abs() < 1e-12);
}
