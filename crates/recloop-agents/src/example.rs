//! Example workspaces as git repositories: `recloop-rec`'s example files (one writer for
//! `recloop init`, `recloop demo`, the tests and the benchmarks), committed on `main`.

use crate::error::{AgentError, Result};
use crate::git::{Repo, Signature};
pub use recloop_rec::example::{EXAMPLES, ExampleOptions};
use std::path::Path;

/// Write example `name` into `dir` (created if missing; must be empty if it exists) as a git
/// repository with one commit on `main`, made by recloop at `commit_time` (seconds since the
/// epoch; `None`: now). A fixed time gives the same commit hash in every copy, which resumption
/// tests compare.
pub fn init_example(
    name: &str,
    dir: &Path,
    opts: &ExampleOptions,
    commit_time: Option<u64>,
) -> Result<()> {
    recloop_rec::example::write_example(name, dir, opts).map_err(|e| AgentError::Invalid {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let repo = Repo::init(dir)?;
    repo.commit_all(
        dir,
        &format!("recloop example: {name}"),
        &Signature::recloop(commit_time),
    )?;
    Ok(())
}

/// The small synthetic MovieLens-layout workspace of the tests and benchmarks: `users` × `items`
/// synthetic data, decided offline (`[online] platform = "none"`), one generalist Brainstorm (no
/// personas), committed at a fixed time.
pub fn synthetic_example(dir: &Path, users: usize, items: usize) -> Result<()> {
    let opts = ExampleOptions {
        dataset: Some("synthetic".into()),
        synthetic: Some((users, items)),
        platform: Some("none".into()),
        generalist: true,
    };
    init_example("movielens", dir, &opts, Some(crate::git::FIXED_CLOCK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_out(dir: &Path, args: &[&str]) -> String {
        crate::git::git(dir, args).unwrap()
    }

    #[test]
    fn the_example_is_one_clean_commit_and_its_options_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        synthetic_example(&ws, 50, 40).unwrap();
        assert_eq!(
            git_out(&ws, &["log", "--oneline", "main"]).lines().count(),
            1
        );
        assert_eq!(git_out(&ws, &["status", "--porcelain"]), "");
        let manifest = recloop_core::Manifest::load(&ws).unwrap();
        assert_eq!(manifest.online.platform, "none");
        let eval = std::fs::read_to_string(ws.join("eval/eval.toml")).unwrap();
        assert!(eval.contains("dataset = \"synthetic\""), "{eval}");
        assert!(
            eval.contains("users = 50") && eval.contains("items = 40"),
            "{eval}"
        );
        // a fixed commit time: every copy has the same hash
        let other = tmp.path().join("other");
        synthetic_example(&other, 50, 40).unwrap();
        assert_eq!(
            git_out(&ws, &["rev-parse", "main"]),
            git_out(&other, &["rev-parse", "main"])
        );
        // never over an existing directory's contents
        let again = synthetic_example(&ws, 50, 40).unwrap_err();
        assert!(again.to_string().contains("not empty"), "{again}");
    }

    #[test]
    fn merges_are_signed_by_the_configured_author_else_the_repository_identity() {
        let tmp = tempfile::tempdir().unwrap();
        synthetic_example(tmp.path(), 50, 40).unwrap();
        let repo = Repo::open(tmp.path()).unwrap();
        let sig = repo
            .merge_signature(Some("Ada Lovelace <ada@example.org>"))
            .unwrap();
        assert_eq!(
            (sig.name.as_str(), sig.email.as_str()),
            ("Ada Lovelace", "ada@example.org")
        );
        assert_eq!(sig.time, None, "merges carry the real time");
        assert!(repo.merge_signature(Some("no email here")).is_err());
        crate::git::git(tmp.path(), &["config", "user.name", "Team Bot"]).unwrap();
        crate::git::git(tmp.path(), &["config", "user.email", "bot@team.example"]).unwrap();
        let sig = repo.merge_signature(None).unwrap();
        assert_eq!(
            (sig.name.as_str(), sig.email.as_str()),
            ("Team Bot", "bot@team.example")
        );
    }
}
