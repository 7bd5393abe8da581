//! `init` writes a workspace whose manifest validates and whose evaluation runs on synthetic data;
//! the trained pipeline serves recommendations; same seed, same metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::example::{ExampleOptions, write_example};
use recloop_rec::pipeline::{
    EvalConfig, EvalSplit, PipelineSpec, TrainedPipeline, evaluate_workspace, load_data,
};
use std::collections::BTreeMap;
use std::path::Path;

const TIMING: [&str; 4] = ["fit_s", "eval_s", "p99_score_ms", "latency_p99_ms"];

fn without_timings(m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, _)| !TIMING.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_example(
        "movielens",
        &dir.path().join("ws"),
        &ExampleOptions {
            dataset: Some("synthetic".into()),
            ..Default::default()
        },
    )
    .unwrap();
    dir
}

fn write_pipeline(ws: &Path, text: &str) {
    std::fs::write(ws.join("pipeline.toml"), text).unwrap();
}

#[test]
fn the_example_is_a_valid_workspace_and_is_never_written_over() {
    let dir = workspace();
    let ws = dir.path().join("ws");
    let manifest = recloop_core::Manifest::load(&ws).unwrap();
    assert!(manifest.is_editable("pipeline.toml"));
    assert!(manifest.is_editable("scripts/score.rhai"));
    assert!(!manifest.is_editable("eval/eval.toml"));
    assert_eq!(manifest.metrics.primary.name, "ndcg@10");
    let spec = PipelineSpec::load_workspace(&ws).unwrap();
    assert_eq!(spec.models.len(), 1);
    assert!(spec.script.is_none());
    let again = write_example(
        "movielens",
        &ws,
        &ExampleOptions {
            dataset: Some("synthetic".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
    assert!(write_example("netflix", &dir.path().join("x"), &ExampleOptions::default()).is_err());
}

#[test]
fn eval_runs_is_deterministic_and_better_models_score_higher() {
    let dir = workspace();
    let ws = dir.path().join("ws");
    let a = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    let b = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert_eq!(without_timings(&a), without_timings(&b));
    for key in [
        "ndcg@10",
        "recall@20",
        "hr@10",
        "mrr@10",
        "precision@10",
        "coverage@10",
        "novelty@10",
        "diversity@10",
        "popularity_bias@10",
        "fit_s",
        "eval_s",
        "p99_score_ms",
        "latency_p99_ms",
    ] {
        let v = a[key];
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert!(a["ndcg@10"] > 0.0);
    assert_eq!(a["p99_score_ms"], a["latency_p99_ms"]);
    let holdout = evaluate_workspace(&ws, EvalSplit::Holdout).unwrap();
    assert!(holdout["ndcg@10"] > 0.0);

    write_pipeline(
        &ws,
        "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 50.0\n",
    );
    let ease = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert!(
        ease["ndcg@10"] > a["ndcg@10"],
        "ease {} vs mostpop {}",
        ease["ndcg@10"],
        a["ndcg@10"]
    );
    assert!(ease["coverage@10"] > a["coverage@10"]);
}

#[test]
fn rerank_and_script_change_the_lists_as_declared() {
    let dir = workspace();
    let ws = dir.path().join("ws");
    let base = "[[models]]\nname = \"knn\"\nkind = \"itemknn\"\n[models.params]\nk = 20\n\n\
                [[models]]\nname = \"pop\"\nkind = \"mostpop\"\nweight = 0.3\n";
    write_pipeline(&ws, base);
    let plain = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    write_pipeline(
        &ws,
        &format!("{base}\n[rerank]\npopularity_penalty = 1.0\n"),
    );
    let penalised = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert!(penalised["popularity_bias@10"] < plain["popularity_bias@10"]);
    write_pipeline(&ws, &format!("{base}\n[rerank]\nmmr_lambda = 0.7\n"));
    let diverse = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert!(diverse["diversity@10"] > plain["diversity@10"]);

    // the shipped neutral script leaves the metrics unchanged
    write_pipeline(
        &ws,
        &format!("{base}\n[script]\npath = \"scripts/score.rhai\"\n"),
    );
    let scripted = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert_eq!(without_timings(&scripted), without_timings(&plain));

    // a script reading model scores and features
    std::fs::write(
        ws.join("scripts/tilt.rhai"),
        "fn score(item, user) {\n  item.scores.knn - 0.5 * ln(1.0 + item.popularity) + 0.0 * user.activity\n}\n",
    )
    .unwrap();
    write_pipeline(
        &ws,
        &format!("{base}\n[script]\npath = \"scripts/tilt.rhai\"\n"),
    );
    let tilted = evaluate_workspace(&ws, EvalSplit::Validation).unwrap();
    assert!(tilted["popularity_bias@10"] < plain["popularity_bias@10"]);

    // a runtime error in the script names the file and line
    std::fs::write(
        ws.join("scripts/bad.rhai"),
        "fn score(item, user) {\n  let x = 1.0;\n  x + item.no_such_field.len()\n}\n",
    )
    .unwrap();
    write_pipeline(
        &ws,
        &format!("{base}\n[script]\npath = \"scripts/bad.rhai\"\n"),
    );
    let e = evaluate_workspace(&ws, EvalSplit::Validation)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("scripts/bad.rhai:3"), "{e}");
}

#[test]
fn trained_pipeline_serves_recommendations() {
    let dir = workspace();
    let ws = dir.path().join("ws");
    let config = EvalConfig::load_workspace(&ws).unwrap();
    let data = load_data(&config).unwrap();
    let text = "[[models]]\nname = \"knn\"\nkind = \"itemknn\"\n\n[rerank]\ngenre_cap = 4\n";
    let spec = PipelineSpec::parse(text, Path::new("pipeline.toml"), Some(&ws)).unwrap();
    let p = TrainedPipeline::fit(&spec, Some(&ws), &data.train, &data.items, 1).unwrap();
    let seen = data.train.items_of(3).to_vec();
    let recs = p.recommend(3, 10, &seen).unwrap();
    assert_eq!(recs.len(), 10);
    assert!(recs.iter().all(|i| !seen.contains(i)));
    let mut dedup = recs.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), 10);
    for g in 0..data.items.genre_names.len() as u16 {
        let n = recs
            .iter()
            .filter(|&&i| data.items.genres[i as usize].contains(&g))
            .count();
        assert!(n <= 4);
    }
    let slate = p.score_slate(3, &recs).unwrap();
    assert_eq!(slate.len(), 10);
    // unknown users get popular items
    let cold = p.recommend(1_000_000, 5, &[]).unwrap();
    assert_eq!(cold.len(), 5);
    assert!(p.score_slate(3, &[u32::MAX]).is_err());
}

#[test]
fn batched_recommendations_equal_single_ones() {
    let dir = workspace();
    let ws = dir.path().join("ws");
    let config = EvalConfig::load_workspace(&ws).unwrap();
    let data = load_data(&config).unwrap();
    let text = "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 50.0\n\n\
                [[models]]\nname = \"pop\"\nkind = \"mostpop\"\nweight = 0.2\n\n\
                [rerank]\nmmr_lambda = 0.3\n";
    let spec = PipelineSpec::parse(text, Path::new("pipeline.toml"), Some(&ws)).unwrap();
    let p = TrainedPipeline::fit(&spec, Some(&ws), &data.train, &data.items, 1).unwrap();
    // unsorted, with an unknown user in the middle
    let users: Vec<u32> = vec![7, 2, 1_000_000, 300, 0];
    let many = p
        .recommend_many(&users, 10, |u| {
            if (u as usize) < data.train.n_users {
                data.train.items_of(u as usize).to_vec()
            } else {
                Vec::new()
            }
        })
        .unwrap();
    for (u, list) in users.iter().zip(&many) {
        let seen = if (*u as usize) < data.train.n_users {
            data.train.items_of(*u as usize).to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(list, &p.recommend(*u, 10, &seen).unwrap(), "user {u}");
    }
}
