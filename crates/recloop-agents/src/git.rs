//! The git layer, the one place recloop runs git: example repositories, one worktree per
//! candidate from the production commit, candidate commits with fixed timestamps (so a re-run
//! produces the same hashes), merges into production by the team's identity at the real time,
//! cleanup.

use crate::error::{AgentError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// recloop's own identity, for commits on its branches (candidates, examples).
const AUTHOR: &str = "recloop";
const EMAIL: &str = "recloop@localhost";

/// The clock origin of commits made at a fixed time (2023-11-14): candidate commits are made at
/// `FIXED_CLOCK + iteration * 1000 + k` so that identical inputs give identical hashes.
pub const FIXED_CLOCK: u64 = 1_700_000_000;

/// Who makes a commit, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Author and committer name.
    pub name: String,
    /// Author and committer e-mail.
    pub email: String,
    /// Seconds since the epoch; `None`: the current time.
    pub time: Option<u64>,
}

impl Signature {
    /// recloop's identity at `time` (`None`: now).
    pub fn recloop(time: Option<u64>) -> Signature {
        Signature {
            name: AUTHOR.into(),
            email: EMAIL.into(),
            time,
        }
    }

    /// Parse `Name <email>` (the manifest's `[project] merge_author`), at the current time.
    pub fn parse(author: &str) -> Option<Signature> {
        let (name, rest) = author.split_once('<')?;
        let email = rest.strip_suffix('>')?.trim();
        let name = name.trim();
        (!name.is_empty() && email.contains('@')).then(|| Signature {
            name: name.into(),
            email: email.into(),
            time: None,
        })
    }
}

/// Serialises worktree and branch bookkeeping (git locks `.git/worktrees` and refs).
static WORKTREE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A git repository (the workspace).
#[derive(Debug, Clone)]
pub struct Repo {
    /// The working directory of the main checkout.
    pub root: PathBuf,
}

/// Run git in `dir` and return trimmed stdout (commits, if any, by recloop at the current time).
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    git_signed(dir, args, &Signature::recloop(None))
}

/// Run git with the author, committer and time of `sig`.
fn git_signed(dir: &Path, args: &[&str], sig: &Signature) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    cmd.env("GIT_AUTHOR_NAME", &sig.name)
        .env("GIT_AUTHOR_EMAIL", &sig.email)
        .env("GIT_COMMITTER_NAME", &sig.name)
        .env("GIT_COMMITTER_EMAIL", &sig.email)
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(t) = sig.time {
        let date = format!("{t} +0000");
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
    }
    let out = cmd.output().map_err(|e| AgentError::Git {
        args: args.join(" "),
        message: format!("cannot run git: {e}"),
    })?;
    if !out.status.success() {
        return Err(AgentError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Repo {
    /// Make `dir` a new repository on branch `main` (nothing committed yet).
    pub fn init(dir: &Path) -> Result<Repo> {
        git(dir, &["init", "-q", "-b", "main"])?;
        Repo::open(dir)
    }

    /// The identity merges into production are made by: `configured` (`[project] merge_author`,
    /// `Name <email>`), else the repository's own git identity (`user.name`, `user.email`), else
    /// recloop's; at the current time.
    pub fn merge_signature(&self, configured: Option<&str>) -> Result<Signature> {
        if let Some(author) = configured {
            return Signature::parse(author).ok_or_else(|| AgentError::Invalid {
                path: "recloop.toml [project] merge_author".into(),
                reason: format!("{author:?} is not `Name <email>`"),
            });
        }
        let name = git(&self.root, &["config", "user.name"]).unwrap_or_default();
        let email = git(&self.root, &["config", "user.email"]).unwrap_or_default();
        Ok(if name.is_empty() || email.is_empty() {
            Signature::recloop(None)
        } else {
            Signature {
                name,
                email,
                time: None,
            }
        })
    }

    /// Open the repository at `root` (must be a git work tree).
    pub fn open(root: &Path) -> Result<Repo> {
        let top = git(root, &["rev-parse", "--show-toplevel"])?;
        let repo = Repo {
            root: PathBuf::from(top),
        };
        repo.exclude(".recloop/")?;
        Ok(repo)
    }

    /// Remove the lock files a killed git process leaves behind (`index.lock`, `HEAD.lock`,
    /// `refs/heads/*.lock`, per-worktree locks). Only call it when no other process can be
    /// running git on this repository (the orchestrator holds its run lock). Returns what it removed.
    pub fn clear_stale_locks(&self) -> Result<Vec<PathBuf>> {
        let common = git(&self.root, &["rev-parse", "--git-common-dir"])?;
        let common = if Path::new(&common).is_absolute() {
            PathBuf::from(common)
        } else {
            self.root.join(common)
        };
        let mut removed = Vec::new();
        let mut stack = vec![
            (common.clone(), false),
            (common.join("refs"), true),
            (common.join("worktrees"), true),
        ];
        while let Some((dir, recurse)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    if recurse {
                        stack.push((p, true));
                    }
                } else if p.extension().is_some_and(|x| x == "lock") {
                    std::fs::remove_file(&p).map_err(|err| AgentError::io(&p, err))?;
                    removed.push(p);
                }
            }
        }
        Ok(removed)
    }

    /// Add a pattern to `.git/info/exclude` (recloop's state never shows up as a change).
    fn exclude(&self, pattern: &str) -> Result<()> {
        let common = git(&self.root, &["rev-parse", "--git-common-dir"])?;
        let common = if Path::new(&common).is_absolute() {
            PathBuf::from(common)
        } else {
            self.root.join(common)
        };
        let info = common.join("info");
        std::fs::create_dir_all(&info).map_err(|e| AgentError::io(&info, e))?;
        let file = info.join("exclude");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if !text.lines().any(|l| l.trim() == pattern) {
            let mut t = text;
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(pattern);
            t.push('\n');
            std::fs::write(&file, t).map_err(|e| AgentError::io(&file, e))?;
        }
        Ok(())
    }

    /// Commit hash of `rev`.
    pub fn rev(&self, rev: &str) -> Result<String> {
        git(
            &self.root,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )
    }

    /// Create (or re-create) a worktree for `branch` at `dir`, starting from `base`.
    /// A leftover worktree or branch from an interrupted attempt is removed first.
    pub fn add_worktree(&self, dir: &Path, branch: &str, base: &str) -> Result<()> {
        let _guard = WORKTREE_LOCK.lock().map_err(|_| AgentError::Git {
            args: "worktree".into(),
            message: "lock poisoned".into(),
        })?;
        self.remove_worktree_locked(dir, branch)?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        }
        let d = dir.display().to_string();
        git(
            &self.root,
            &["worktree", "add", "-q", "-B", branch, &d, base],
        )?;
        Ok(())
    }

    /// Check out `commit` detached at `dir` (re-created if present).
    pub fn checkout_detached(&self, dir: &Path, commit: &str) -> Result<()> {
        let _guard = WORKTREE_LOCK.lock().map_err(|_| AgentError::Git {
            args: "worktree".into(),
            message: "lock poisoned".into(),
        })?;
        self.drop_worktree_locked(dir)?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        }
        let d = dir.display().to_string();
        git(
            &self.root,
            &["worktree", "add", "-q", "--detach", &d, commit],
        )?;
        Ok(())
    }

    /// [`Repo::checkout_detached`], unless `dir` is already a checkout of `commit`: then it is
    /// left alone, so that an evaluation job a crashed run left running there (and that a
    /// resumed run adopts) keeps its working directory.
    pub fn ensure_detached(&self, dir: &Path, commit: &str) -> Result<()> {
        if dir.join(".git").exists()
            && git(dir, &["rev-parse", "HEAD"]).is_ok_and(|head| head.trim() == commit)
        {
            return Ok(());
        }
        self.checkout_detached(dir, commit)
    }

    /// Remove a worktree directory, keeping its branch.
    pub fn drop_worktree(&self, dir: &Path) -> Result<()> {
        let _guard = WORKTREE_LOCK.lock().map_err(|_| AgentError::Git {
            args: "worktree".into(),
            message: "lock poisoned".into(),
        })?;
        self.drop_worktree_locked(dir)
    }

    fn drop_worktree_locked(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            let d = dir.display().to_string();
            if git(&self.root, &["worktree", "remove", "--force", &d]).is_err() {
                std::fs::remove_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
            }
        }
        git(&self.root, &["worktree", "prune"])?;
        Ok(())
    }

    /// Remove a worktree and its branch if they exist.
    pub fn remove_worktree(&self, dir: &Path, branch: &str) -> Result<()> {
        let _guard = WORKTREE_LOCK.lock().map_err(|_| AgentError::Git {
            args: "worktree".into(),
            message: "lock poisoned".into(),
        })?;
        self.remove_worktree_locked(dir, branch)
    }

    fn remove_worktree_locked(&self, dir: &Path, branch: &str) -> Result<()> {
        if dir.exists() {
            let d = dir.display().to_string();
            if git(&self.root, &["worktree", "remove", "--force", &d]).is_err() {
                std::fs::remove_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
            }
        }
        git(&self.root, &["worktree", "prune"])?;
        if git(
            &self.root,
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ],
        )
        .is_ok()
        {
            git(&self.root, &["branch", "-D", "-q", branch])?;
        }
        Ok(())
    }

    /// Paths (relative, `/`-separated) changed in `worktree` relative to `base`, including untracked.
    pub fn changed_paths(&self, worktree: &Path, base: &str) -> Result<Vec<String>> {
        let mut paths: Vec<String> = git(worktree, &["diff", "--name-only", base])?
            .lines()
            .map(str::to_string)
            .collect();
        paths.extend(
            git(worktree, &["ls-files", "--others", "--exclude-standard"])?
                .lines()
                .map(str::to_string),
        );
        paths.sort();
        paths.dedup();
        paths.retain(|p| !p.is_empty());
        Ok(paths)
    }

    /// The unified diff of `worktree` against `base` (including untracked files).
    pub fn diff(&self, worktree: &Path, base: &str) -> Result<String> {
        git(worktree, &["add", "-A"])?;
        let d = git(worktree, &["diff", "--cached", base])?;
        Ok(d)
    }

    /// Commit everything in `worktree` as `sig`; returns the commit hash.
    pub fn commit_all(&self, worktree: &Path, message: &str, sig: &Signature) -> Result<String> {
        git(worktree, &["add", "-A"])?;
        git_signed(
            worktree,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "--no-verify",
                "-m",
                message,
            ],
            sig,
        )?;
        git(worktree, &["rev-parse", "HEAD"])
    }

    /// True when `ancestor` is an ancestor of (or equal to) `rev`.
    pub fn is_ancestor(&self, ancestor: &str, rev: &str) -> bool {
        git(&self.root, &["merge-base", "--is-ancestor", ancestor, rev]).is_ok()
    }

    /// Whether `commit` is in this clone.
    pub fn has_commit(&self, commit: &str) -> bool {
        git(
            &self.root,
            &["cat-file", "-e", &format!("{commit}^{{commit}}")],
        )
        .is_ok()
    }

    /// Publish `commit` on `remote` as `refname` (workers on other machines fetch it from there).
    pub fn push_ref(&self, remote: &str, commit: &str, refname: &str) -> Result<()> {
        git(
            &self.root,
            &["push", "-q", remote, &format!("+{commit}:{refname}")],
        )?;
        Ok(())
    }

    /// Fetch the candidates' refs (`refs/recloop/*`) and `production` from `remote`; returns the
    /// remote's production commit (`None` when the remote has no such branch yet).
    pub fn fetch_shared(&self, remote: &str, production: &str) -> Result<Option<String>> {
        let head = git(
            &self.root,
            &["ls-remote", remote, &format!("refs/heads/{production}")],
        )?;
        let head = head.split_whitespace().next().map(str::to_string);
        let mut args = vec![
            "fetch".to_string(),
            "-q".into(),
            remote.to_string(),
            "+refs/recloop/*:refs/recloop/*".into(),
        ];
        if head.is_some() {
            args.push(format!(
                "+refs/heads/{production}:refs/remotes/recloop-shared/{production}"
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        git(&self.root, &args)?;
        Ok(head)
    }

    /// Move the local branch `production` forward to `commit` (a fast-forward; a local branch
    /// that is not an ancestor of `commit` is an error naming both).
    pub fn advance_branch(&self, production: &str, commit: &str) -> Result<()> {
        let head = self.rev(production)?;
        if head == commit {
            return Ok(());
        }
        if !self.is_ancestor(&head, commit) {
            return Err(AgentError::Git {
                args: format!("advance {production} to {commit}"),
                message: format!(
                    "the local branch {production} ({head}) has commits the shared remote's \
                     {production} ({commit}) lacks; production is one branch, so reconcile them by hand"
                ),
            });
        }
        self.fast_forward(production, commit, &head)
    }

    /// Fast-forward branch `production` from `head` to `commit`: a `merge --ff-only` when it is
    /// checked out, else an `update-ref` that fails if the branch moved from `head`.
    fn fast_forward(&self, production: &str, commit: &str, head: &str) -> Result<()> {
        let current = git(&self.root, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
        if current == production {
            git(&self.root, &["merge", "-q", "--ff-only", commit])?;
        } else {
            git(
                &self.root,
                &[
                    "update-ref",
                    &format!("refs/heads/{production}"),
                    commit,
                    head,
                ],
            )?;
        }
        Ok(())
    }

    /// Point the local branch `production` back at `commit` (undo a merge that a re-check
    /// refused).
    pub fn reset_branch(&self, production: &str, commit: &str) -> Result<()> {
        let current = git(&self.root, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
        if current == production {
            git(&self.root, &["reset", "-q", "--hard", commit])?;
        } else {
            git(
                &self.root,
                &["update-ref", &format!("refs/heads/{production}"), commit],
            )?;
        }
        Ok(())
    }

    /// Merge `commit` into the production branch: fast-forward when possible, else a merge commit
    /// made as `sig`. Idempotent: a commit already contained in production is a no-op.
    /// The main checkout must have production checked out or be clean enough to update the ref.
    pub fn merge_into(
        &self,
        production: &str,
        commit: &str,
        message: &str,
        sig: &Signature,
    ) -> Result<String> {
        let head = self.rev(production)?;
        if self.is_ancestor(commit, &head) {
            return Ok(head);
        }
        if self.is_ancestor(&head, commit) {
            self.fast_forward(production, commit, &head)?;
            return self.rev(production);
        }
        // A true merge happens in a temporary worktree so the main checkout is never left half-merged.
        let tmp = self.root.join(".recloop").join("worktrees").join("_merge");
        let branch = "recloop/_merge";
        self.add_worktree(&tmp, branch, &head)?;
        let merged = git_signed(
            &tmp,
            &["merge", "-q", "--no-ff", "-m", message, commit],
            sig,
        );
        if let Err(e) = merged {
            let _ = git(&tmp, &["merge", "--abort"]);
            self.remove_worktree(&tmp, branch)?;
            return Err(e);
        }
        let new = git(&tmp, &["rev-parse", "HEAD"])?;
        self.remove_worktree(&tmp, branch)?;
        self.fast_forward(production, &new, &head)?;
        self.rev(production)
    }

    /// Content of `path` at `rev`.
    pub fn show(&self, rev: &str, path: &str) -> Result<String> {
        git(&self.root, &["show", &format!("{rev}:{path}")])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh repository with one commit on `main`.
    pub fn init_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]).unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let repo = Repo::open(dir.path()).unwrap();
        repo.commit_all(dir.path(), "init", &Signature::recloop(Some(FIXED_CLOCK)))
            .unwrap();
        dir
    }

    #[test]
    fn worktree_commit_and_fast_forward_merge() {
        let dir = init_repo(&[("a.txt", "one\n")]);
        let repo = Repo::open(dir.path()).unwrap();
        let base = repo.rev("main").unwrap();
        let wt = dir.path().join(".recloop/worktrees/c1");
        repo.add_worktree(&wt, "recloop/c1", &base).unwrap();
        std::fs::write(wt.join("a.txt"), "two\n").unwrap();
        assert_eq!(repo.changed_paths(&wt, &base).unwrap(), vec!["a.txt"]);
        let c = repo
            .commit_all(&wt, "c1", &Signature::recloop(Some(1_700_000_100)))
            .unwrap();
        // Same content, same time: same hash after re-creating the worktree.
        repo.add_worktree(&wt, "recloop/c1", &base).unwrap();
        std::fs::write(wt.join("a.txt"), "two\n").unwrap();
        let c2 = repo
            .commit_all(&wt, "c1", &Signature::recloop(Some(1_700_000_100)))
            .unwrap();
        assert_eq!(c, c2);
        let head = repo
            .merge_into(
                "main",
                &c,
                "merge c1",
                &Signature::recloop(Some(1_700_000_200)),
            )
            .unwrap();
        assert_eq!(head, c);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "two\n"
        );
        // Idempotent.
        assert_eq!(
            repo.merge_into(
                "main",
                &c,
                "merge c1",
                &Signature::recloop(Some(1_700_000_200))
            )
            .unwrap(),
            c
        );
        repo.remove_worktree(&wt, "recloop/c1").unwrap();
        assert!(!wt.exists());
        // `.recloop/` never counts as a change.
        assert!(
            git(dir.path(), &["status", "--porcelain"])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn diverged_candidate_gets_a_merge_commit() {
        let dir = init_repo(&[("a.txt", "one\n"), ("b.txt", "x\n")]);
        let repo = Repo::open(dir.path()).unwrap();
        let base = repo.rev("main").unwrap();
        let w1 = dir.path().join(".recloop/worktrees/c1");
        let w2 = dir.path().join(".recloop/worktrees/c2");
        repo.add_worktree(&w1, "recloop/c1", &base).unwrap();
        repo.add_worktree(&w2, "recloop/c2", &base).unwrap();
        std::fs::write(w1.join("a.txt"), "two\n").unwrap();
        std::fs::write(w2.join("b.txt"), "y\n").unwrap();
        let c1 = repo
            .commit_all(&w1, "c1", &Signature::recloop(Some(1_700_000_100)))
            .unwrap();
        let c2 = repo
            .commit_all(&w2, "c2", &Signature::recloop(Some(1_700_000_100)))
            .unwrap();
        repo.merge_into(
            "main",
            &c1,
            "merge c1",
            &Signature::recloop(Some(1_700_000_200)),
        )
        .unwrap();
        let head = repo
            .merge_into(
                "main",
                &c2,
                "merge c2",
                &Signature::recloop(Some(1_700_000_300)),
            )
            .unwrap();
        assert!(repo.is_ancestor(&c1, &head) && repo.is_ancestor(&c2, &head));
        assert_eq!(repo.show("main", "b.txt").unwrap(), "y");
    }
}
