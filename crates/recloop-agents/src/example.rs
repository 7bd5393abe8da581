//! Example workspaces for the loop: the MovieLens example (starting production = MostPop) and a
//! small synthetic variant for tests. `recloop-rec`'s `init --example movielens` writes the same
//! layout; this module is what `recloop demo` and the tests use to create one.

use crate::error::{AgentError, Result};
use crate::git::git;
use std::path::Path;

/// `recloop.toml` of a built-in pipeline workspace.
pub fn manifest_text(name: &str) -> String {
    format!(
        r#"[project]
name = "{name}"
production = "main"
editable = ["pipeline.toml", "scripts/**/*.rhai"]
protected = ["recloop.toml", "eval/**"]

[commands]
offline_eval = "recloop rec eval --workspace . --split validation --json"
holdout_eval = "recloop rec eval --workspace . --split holdout --json"
timeout_s = 900

[metrics]
primary = {{ name = "ndcg@10", direction = "increase", min_effect = 0.002 }}
north_star = {{ name = "retention_d7", direction = "increase" }}
guardrails = [
  {{ name = "coverage@10", direction = "increase", attention = 0.05, hard = 0.25 }},
]

[online]
# tests and benchmarks decide offline; a KEEP then needs an approval (a scripted one in tests)
platform = "none"
ramp = [0.01, 0.05, 0.20, 0.50]
alpha = 0.05

[run]
seed = 42
iterations = 12
workers = 1
batch_size = 4
"#
    )
}

/// The starting pipeline: most popular items.
pub const MOSTPOP_PIPELINE: &str = r#"# The production pipeline: candidate models, blend, rerank (see `recloop rec eval`).
[[models]]
name = "mostpop"
kind = "mostpop"
weight = 1.0

[blend]
normalize = "zscore"

[rerank]
candidates = 100
mmr_lambda = 0.0
popularity_penalty = 0.0
genre_cap = 0
"#;

/// Write a built-in pipeline workspace at `dir` evaluating on `dataset` (`ml-1m`, `ml-100k` or
/// `synthetic`), as a git repository with one commit on `main`.
pub fn write_pipeline_workspace(
    dir: &Path,
    name: &str,
    dataset: &str,
    synthetic: Option<(usize, usize)>,
) -> Result<()> {
    let w = |rel: &str, text: &str| -> Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        }
        std::fs::write(&p, text).map_err(|e| AgentError::io(&p, e))
    };
    w("recloop.toml", &manifest_text(name))?;
    w("pipeline.toml", MOSTPOP_PIPELINE)?;
    let mut eval = format!("dataset = \"{dataset}\"\nprotocol = \"a\"\nseed = 42\n");
    if let Some((users, items)) = synthetic {
        eval.push_str(&format!(
            "\n[synthetic]\nusers = {users}\nitems = {items}\n"
        ));
    }
    w("eval/eval.toml", &eval)?;
    w(
        "README.md",
        "# MovieLens example\n\n`pipeline.toml` chooses and blends candidate models (mostpop, itemknn, ease, ials, bpr), \
         a reranking stage (MMR diversity, popularity penalty, genre caps) and an optional Rhai scoring script. \
         The evaluation setup under `eval/` is protected.\n",
    )?;
    w(
        "notes/README.md",
        "Research notes for the agents (one Markdown file per topic).\n",
    )?;
    w(".gitignore", ".recloop/\n")?;
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"])?;
    }
    git(dir, &["add", "-A"])?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["commit", "-q", "-m", "recloop example workspace"])
        .env("GIT_AUTHOR_NAME", "recloop")
        .env("GIT_AUTHOR_EMAIL", "recloop@localhost")
        .env("GIT_COMMITTER_NAME", "recloop")
        .env("GIT_COMMITTER_EMAIL", "recloop@localhost")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .output()
        .map_err(|e| AgentError::Git {
            args: "commit".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(AgentError::Git {
            args: "commit".into(),
            message: String::from_utf8_lossy(&out.stderr).into(),
        });
    }
    Ok(())
}
