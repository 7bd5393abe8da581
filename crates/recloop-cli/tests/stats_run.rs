//! `recloop stats run` end to end: the JSON contract over stdin/stdout, and (NETWORK/DATA) the
//! Open Bandit Dataset check that IPW of the uniform policy on random/all reproduces the
//! on-policy CTR. The OBD test fetches `obp==0.4.1` from PyPI into `$RECLOOP_DATA` (or the
//! user cache) on first use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

fn run(input: &str) -> (bool, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(["stats", "run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recloop");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "bad output {text:?}: {e}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), value)
}

#[test]
fn stats_run_answers_in_order_and_reports_invalid_requests() {
    let (ok, v) = run(r#"[{"kind":"srm","counts":[5000,5200],"weights":[0.5,0.5]},
            {"kind":"compare","metric":"mean","control":{"n":-1,"sum":1,"sum_squares":1},"treatment":{"n":10,"sum":1,"sum_squares":1}}]"#);
    assert!(!ok, "an invalid request makes the exit status non-zero");
    let items = v.as_array().expect("array");
    assert!((items[0]["p"].as_f64().expect("p") - 0.0476703806561615).abs() < 1e-9);
    assert_eq!(items[1]["error"]["field"], "control.n");
    let (ok, v) = run("{not json");
    assert!(!ok);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("invalid JSON")
    );
}

/// NETWORK/DATA: fetches the Open Bandit Dataset sample (obp==0.4.1 wheel from PyPI).
#[test]
fn obd_uniform_policy_ipw_reproduces_the_on_policy_ctr() {
    let (ok, v) = run(
        r#"[{"kind":"ope","dataset":{"name":"obd","behavior":"random","campaign":"all"},"policy":"uniform",
             "reward_model":{"smoothed_ctr":{"prior_weight":10}},
             "estimators":{"ipw":{},"snipw":{},"dm":{},"dr":{},"sndr":{},"switch_dr":{"lambda":100},"dr_os":{"lambda":100},"sg_ipw":{"lambda":0.1},"sg_dr":{"lambda":0.1}}},
            {"kind":"ope","dataset":{"name":"obd","behavior":"random","campaign":"all"},
             "policy":{"softmax":{"item_feature":"item_feature_0","beta":1.0}},
             "reward_model":{"smoothed_ctr":{"prior_weight":10}},
             "estimators":{"ipw":{},"snipw":{},"dm":{},"dr":{}}}]"#,
    );
    assert!(ok, "{v}");
    println!(
        "OBD random/all estimates: {}",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    );
    let uniform = &v[0];
    let ipw = uniform["ipw"]["estimate"].as_f64().expect("ipw");
    // The logging policy is uniform, so IPW of the uniform policy is the on-policy CTR.
    let log = recloop_rec::data::obd::load("random", "all").expect("obd");
    let ctr = log.ctr();
    println!("on-policy CTR {ctr:.6}, IPW {ipw:.6}");
    assert!((ipw - ctr).abs() < 1e-12, "IPW {ipw} vs CTR {ctr}");
    assert!((ctr - 0.0038).abs() < 0.00005, "CTR {ctr}");
    for est in [
        "snipw",
        "dm",
        "dr",
        "sndr",
        "switch_dr",
        "dr_os",
        "sg_ipw",
        "sg_dr",
    ] {
        let x = uniform[est]["estimate"].as_f64().expect("estimate");
        assert!((x - ctr).abs() < 0.001, "{est}: {x} vs {ctr}");
        assert!(uniform[est]["se"].as_f64().expect("se") > 0.0);
    }
}

fn aggregate(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(["stats", "aggregate"])
        .args(args)
        .output()
        .expect("spawn recloop");
    assert!(
        out.status.success(),
        "stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn stats_aggregate_streams_a_synthetic_log_with_the_same_numbers_on_any_thread_count() {
    let args = [
        "--synthetic-events",
        "3e6",
        "--synthetic-units",
        "2000",
        "--mean",
        "revenue",
        "--cuped",
    ];
    let one = aggregate(&[&args[..], &["--threads", "1"]].concat());
    let two = aggregate(&[&args[..], &["--threads", "2"]].concat());
    assert_eq!(one["events_read"], 3_000_000);
    assert_eq!(one["metrics"].as_array().map(Vec::len), Some(2));
    assert!(one["metrics"][0]["summary"]["sum"].as_f64().unwrap() > 0.0);
    assert_eq!(one, two);
}
