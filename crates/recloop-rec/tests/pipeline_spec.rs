//! `pipeline.toml` errors name the file, the line and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::pipeline::PipelineSpec;
use std::path::Path;

const GOOD: &str = r#"# a comment
[[models]]
name = "ease"
kind = "ease"
weight = 1.0
[models.params]
lambda = 250.0

[[models]]
name = "knn"
kind = "itemknn"
weight = 0.5
[models.params]
k = 50

[blend]
normalize = "minmax"

[rerank]
candidates = 50
mmr_lambda = 0.2
popularity_penalty = 0.01
genre_cap = 3
"#;

fn err(text: &str) -> String {
    PipelineSpec::parse(text, Path::new("ws/pipeline.toml"), None)
        .unwrap_err()
        .to_string()
}

#[test]
fn good_spec_parses() {
    let s = PipelineSpec::parse(GOOD, Path::new("pipeline.toml"), None).unwrap();
    assert_eq!(s.models.len(), 2);
    assert_eq!(s.rerank.genre_cap, 3);
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let m = err(&GOOD.replace("weight = 0.5", "weight = = 0.5"));
    assert!(m.starts_with("ws/pipeline.toml:12:"), "{m}");
}

#[test]
fn unknown_kind_and_field_name_the_line() {
    let m = err(&GOOD.replace("kind = \"itemknn\"", "kind = \"transformer\""));
    assert!(m.starts_with("ws/pipeline.toml:11:"), "{m}");
    assert!(m.contains("transformer"), "{m}");
    let m = err(&GOOD.replace("mmr_lambda = 0.2", "mmr_lamda = 0.2"));
    assert!(m.starts_with("ws/pipeline.toml:21:"), "{m}");
}

#[test]
fn semantic_errors_name_line_and_reason() {
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "lambda = 250.0",
            "lambda = -1.0",
            7,
            "outside the valid range",
        ),
        (
            "k = 50",
            "neighbours = 50",
            14,
            "unknown hyper-parameter `neighbours`",
        ),
        ("k = 50", "k = 50.5", 14, "whole number"),
        (
            "name = \"knn\"",
            "name = \"ease\"",
            10,
            "duplicate model name",
        ),
        ("weight = 0.5", "weight = nan", 12, "finite"),
        ("mmr_lambda = 0.2", "mmr_lambda = 1.5", 21, "[0, 1]"),
        (
            "popularity_penalty = 0.01",
            "popularity_penalty = -0.5",
            22,
            "≥ 0",
        ),
        ("candidates = 50", "candidates = 0", 20, "at least 1"),
        ("name = \"knn\"", "name = \"my knn\"", 10, "identifier"),
    ];
    for (from, to, line, reason) in cases {
        let m = err(&GOOD.replace(from, to));
        assert!(
            m.starts_with(&format!("ws/pipeline.toml:{line}:")),
            "{to}: expected line {line}: {m}"
        );
        assert!(m.contains(reason), "{to}: expected {reason:?}: {m}");
    }
}

#[test]
fn script_path_must_exist_inside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/s.rhai"),
        "fn score(item, user) { 1.0 }",
    )
    .unwrap();
    let with = |p: &str| format!("{GOOD}\n[script]\npath = \"{p}\"\n");
    PipelineSpec::parse(
        &with("scripts/s.rhai"),
        Path::new("p.toml"),
        Some(dir.path()),
    )
    .unwrap();
    for (path, reason) in [
        ("scripts/missing.rhai", "does not exist"),
        ("../outside.rhai", "leaves the workspace"),
        ("/etc/passwd", "relative"),
    ] {
        let m = PipelineSpec::parse(&with(path), Path::new("p.toml"), Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("p.toml:26:"), "{m}");
        assert!(m.contains(reason), "{m}");
    }
}
