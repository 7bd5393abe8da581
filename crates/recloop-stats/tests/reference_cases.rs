//! Every case of `stats-cases.json` (gbstats, GrowthBook tests, obp 0.5.7) through the same
//! dispatcher `recloop stats run` uses, at the case's tolerance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1e-300) || (got - want).abs() <= 1e-12
}

fn check(id: &str, path: &str, got: &Value, want: &Value, tol: f64, failures: &mut Vec<String>) {
    match (got, want) {
        (_, Value::Null) => {
            if !got.is_null() {
                failures.push(format!("{id} {path}: expected null, got {got}"));
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (
                g.as_f64().unwrap_or(f64::NAN),
                w.as_f64().unwrap_or(f64::NAN),
            );
            if !close(g, w, tol) {
                failures.push(format!(
                    "{id} {path}: got {g}, expected {w} (rel err {:.3e})",
                    (g - w).abs() / w.abs()
                ));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                failures.push(format!("{id} {path}: length {} vs {}", g.len(), w.len()));
                return;
            }
            for (i, (gi, wi)) in g.iter().zip(w).enumerate() {
                check(id, &format!("{path}[{i}]"), gi, wi, tol, failures);
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => check(id, &format!("{path}.{k}"), gv, wv, tol, failures),
                    None => failures.push(format!("{id} {path}.{k}: missing in result {got}")),
                }
            }
        }
        _ => failures.push(format!("{id} {path}: got {got}, expected {want}")),
    }
}

#[test]
fn every_reference_case_matches() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats-cases.json");
    let text = std::fs::read_to_string(path).expect("read stats-cases.json");
    let doc: Value = serde_json::from_str(&text).expect("parse");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 19,
        "expected the full case list, got {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        let tol = case
            .get("tolerance")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6);
        let got = recloop_stats::run_json(&case["request"], None);
        check(id, "", &got, &case["expected"], tol, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_copy_matches_the_shared_reference_when_present() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/stats-cases.json"
    );
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats-cases.json");
    if let Ok(s) = std::fs::read_to_string(shared) {
        let l = std::fs::read_to_string(local).expect("local copy");
        let (a, b): (Value, Value) = (
            serde_json::from_str(&s).expect("shared"),
            serde_json::from_str(&l).expect("local"),
        );
        assert_eq!(
            a, b,
            "tests/data/stats-cases.json is out of date with shared/reference"
        );
    }
}

#[test]
fn a_perturbed_expectation_is_caught() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats-cases.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse");
    let case = &doc["cases"][0];
    let got = recloop_stats::run_json(&case["request"], None);
    let mut want = case["expected"].clone();
    let p = want["p"].as_f64().expect("p");
    want["p"] = serde_json::json!(p * (1.0 + 1e-5));
    let mut failures = Vec::new();
    check("perturbed", "", &got, &want, 1e-6, &mut failures);
    assert_eq!(failures.len(), 1, "{failures:?}");
}
