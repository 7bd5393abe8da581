//! Built-in example workspaces (`recloop init --example NAME DIR`).

use crate::error::{RecError, Result};
use std::path::Path;
use std::process::Command;

/// Names of the built-in examples.
pub const EXAMPLES: [&str; 1] = ["movielens"];

/// The files of the MovieLens example: (relative path, contents).
const MOVIELENS: [(&str, &str); 5] = [
    ("recloop.toml", include_str!("movielens/recloop.toml")),
    ("pipeline.toml", include_str!("movielens/pipeline.toml")),
    (
        "scripts/score.rhai",
        include_str!("movielens/scripts/score.rhai"),
    ),
    ("eval/eval.toml", include_str!("movielens/eval/eval.toml")),
    ("README.md", include_str!("movielens/README.md")),
];

/// Write example `name` into `dir` (created if missing; must be empty if it exists) as a git
/// repository with one commit on `main`. `dataset` replaces the dataset of `eval/eval.toml`
/// (e.g. `synthetic` for a workspace that needs no download).
pub fn init_example(name: &str, dir: &Path, dataset: Option<&str>) -> Result<()> {
    let files = match name {
        "movielens" => &MOVIELENS,
        other => {
            return Err(RecError::Spec {
                location: "--example".into(),
                reason: format!(
                    "unknown example {other:?} (available: {})",
                    EXAMPLES.join(", ")
                ),
            });
        }
    };
    if let Some(d) = dataset
        && !super::pipeline::config::DATASETS.contains(&d)
    {
        return Err(RecError::Spec {
            location: "--dataset".into(),
            reason: format!(
                "unknown dataset {d:?} (expected one of {})",
                super::pipeline::config::DATASETS.join(", ")
            ),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecError::Io { path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(RecError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "directory is not empty; refusing to overwrite it",
                ),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let text = match (rel, dataset) {
            (&"eval/eval.toml", Some(d)) => {
                text.replace("dataset = \"ml-1m\"", &format!("dataset = \"{d}\""))
            }
            _ => text.to_string(),
        };
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    git(dir, &["init", "-q", "-b", "main"])?;
    git(dir, &["add", "-A"])?;
    git(
        dir,
        &["commit", "-q", "-m", &format!("recloop example: {name}")],
    )?;
    Ok(())
}

/// Run git in `dir`; a fixed identity is supplied when none is configured.
fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    for (var, value) in [
        ("GIT_AUTHOR_NAME", "recloop"),
        ("GIT_AUTHOR_EMAIL", "recloop@localhost"),
        ("GIT_COMMITTER_NAME", "recloop"),
        ("GIT_COMMITTER_EMAIL", "recloop@localhost"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
    let out = cmd.output().map_err(|source| RecError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::new(source.kind(), format!("cannot run git: {source}")),
    })?;
    if !out.status.success() {
        return Err(RecError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        });
    }
    Ok(())
}
