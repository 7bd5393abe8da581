//! Measure `rec eval` on real ML-1M (fetched into the cache on first use). Ignored by default:
//! `cargo test -p recloop-rec --release --test pipeline_ml1m -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::pipeline::{EvalSplit, evaluate_workspace};

#[test]
#[ignore = "downloads ML-1M and trains real models; run explicitly"]
fn ml1m_eval_mostpop_and_ease() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    recloop_rec::example::write_example("movielens", &ws, &Default::default()).unwrap();
    for (label, text) in [
        ("mostpop", None),
        (
            "ease",
            Some("[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 500.0\n"),
        ),
        (
            "ease+script+mmr",
            Some(
                "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 500.0\n\n\
                 [rerank]\nmmr_lambda = 0.1\n\n[script]\npath = \"scripts/score.rhai\"\n",
            ),
        ),
    ] {
        if let Some(t) = text {
            std::fs::write(ws.join("pipeline.toml"), t).unwrap();
        }
        let start = std::time::Instant::now();
        let m = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
        println!(
            "{label}: total {:.2}s {}",
            start.elapsed().as_secs_f64(),
            serde_json::to_string(&m).unwrap()
        );
        assert!(m["ndcg@10"] > 0.1);
    }
}
