//! Applying unified diffs (possibly over several files) to a worktree, all or nothing.
//!
//! A diff that touches a protected or non-editable path, escapes the worktree, or does not apply
//! is rejected with a precise reason (file, hunk, line) and nothing is written.

use crate::error::{AgentError, Result};
use std::path::Path;

/// One file's part of a multi-file unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// Path before the change (`None` for a new file).
    pub old_path: Option<String>,
    /// Path after the change (`None` for a deleted file).
    pub new_path: Option<String>,
    /// The text of this file's patch (from `---` on).
    pub text: String,
}

impl FileDiff {
    /// The path this diff writes (or deletes).
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }
}

fn clean_path(raw: &str) -> Option<String> {
    let p = raw.split('\t').next().unwrap_or("").trim();
    if p == "/dev/null" {
        return None;
    }
    let p = p
        .strip_prefix("a/")
        .or_else(|| p.strip_prefix("b/"))
        .unwrap_or(p);
    Some(p.to_string())
}

/// Split a unified diff into per-file parts. Fails when no `---`/`+++` header is found.
pub fn split(diff: &str) -> Result<Vec<FileDiff>> {
    let lines: Vec<&str> = diff.split_inclusive('\n').collect();
    let mut starts = Vec::new();
    for i in 0..lines.len() {
        if lines[i].starts_with("--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ ")) {
            starts.push(i);
        }
    }
    if starts.is_empty() {
        return Err(AgentError::Diff(
            "no file header found (expected `--- a/PATH` followed by `+++ b/PATH`)".into(),
        ));
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).copied().unwrap_or(lines.len());
        // Drop git's `diff --git`/`index` lines that belong to the next file.
        while end > s + 2 && !is_hunk_line(lines[end - 1]) {
            end -= 1;
        }
        let text: String = lines[s..end].concat();
        out.push(FileDiff {
            old_path: clean_path(&lines[s][4..]),
            new_path: clean_path(&lines[s + 1][4..]),
            text,
        });
    }
    Ok(out)
}

fn is_hunk_line(l: &str) -> bool {
    l.starts_with(' ')
        || l.starts_with('+')
        || l.starts_with('-')
        || l.starts_with('@')
        || l.starts_with('\\')
        || l == "\n"
}

/// Check that `path` is relative, stays inside the worktree and is allowed by `editable`.
pub fn check_path(path: &str, editable: &dyn Fn(&str) -> bool) -> Result<()> {
    if path.is_empty() {
        return Err(AgentError::Diff("a file header names no path".into()));
    }
    let p = Path::new(path);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(AgentError::Diff(format!(
            "{path}: path must be relative to the workspace and stay inside it"
        )));
    }
    if path.starts_with(".git/") || path.starts_with(".recloop/") {
        return Err(AgentError::Diff(format!(
            "{path}: recloop's and git's own files are protected"
        )));
    }
    if !editable(path) {
        return Err(AgentError::Diff(format!(
            "{path}: protected or not editable (see [project] editable/protected in recloop.toml)"
        )));
    }
    Ok(())
}

/// Explain why hunk `index` (0-based) does not apply to `original`.
fn explain_hunk(original: &str, patch: &diffy::Patch<'_, str>, index: usize, path: &str) -> String {
    let Some(hunk) = patch.hunks().get(index) else {
        return format!("{path}: hunk #{} does not apply", index + 1);
    };
    let start = hunk.old_range().start();
    let expected: Vec<&str> = hunk
        .lines()
        .iter()
        .filter_map(|l| match l {
            diffy::Line::Context(t) | diffy::Line::Delete(t) => Some(*t),
            diffy::Line::Insert(_) => None,
        })
        .collect();
    let actual: Vec<&str> = original.split_inclusive('\n').collect();
    for (k, want) in expected.iter().enumerate() {
        let line_no = start.max(1) + k;
        let got = actual.get(line_no - 1).copied();
        if got != Some(*want) {
            return format!(
                "{path}: hunk #{} (@@ -{},{} @@) does not apply: line {} expected {:?}, found {:?}",
                index + 1,
                start,
                hunk.old_range().len(),
                line_no,
                want.trim_end_matches('\n'),
                got.map(|g| g.trim_end_matches('\n'))
                    .unwrap_or("<end of file>")
            );
        }
    }
    format!(
        "{path}: hunk #{} (@@ -{},{} @@) does not apply to the current file",
        index + 1,
        start,
        hunk.old_range().len()
    )
}

/// Apply `diff` to the files under `root`, all or nothing. Returns the paths written.
pub fn apply(root: &Path, diff: &str, editable: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let files = split(diff)?;
    let mut planned: Vec<(String, Option<String>)> = Vec::new();
    for f in &files {
        let path = f.path().to_string();
        check_path(&path, editable)?;
        if let (Some(o), Some(n)) = (&f.old_path, &f.new_path)
            && o != n
        {
            return Err(AgentError::Diff(format!(
                "{o} -> {n}: renames are not supported"
            )));
        }
        let full = root.join(&path);
        let original = if f.old_path.is_none() {
            if full.exists() {
                return Err(AgentError::Diff(format!(
                    "{path}: diff creates a file that already exists"
                )));
            }
            String::new()
        } else {
            std::fs::read_to_string(&full).map_err(|e| {
                AgentError::Diff(format!("{path}: cannot read the file to patch: {e}"))
            })?
        };
        let patch = diffy::Patch::from_str(&f.text)
            .map_err(|e| AgentError::Diff(format!("{path}: malformed diff: {e}")))?;
        if patch.hunks().is_empty() {
            return Err(AgentError::Diff(format!("{path}: diff has no hunks")));
        }
        let new = diffy::apply(&original, &patch).map_err(|e| {
            let index = e
                .to_string()
                .rsplit('#')
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(1);
            AgentError::Diff(explain_hunk(
                &original,
                &patch,
                index.saturating_sub(1),
                &path,
            ))
        })?;
        planned.push((
            path,
            if f.new_path.is_none() {
                None
            } else {
                Some(new)
            },
        ));
    }
    let mut written = Vec::new();
    for (path, content) in planned {
        let full = root.join(&path);
        match content {
            Some(text) => {
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
                }
                std::fs::write(&full, text).map_err(|e| AgentError::io(&full, e))?;
            }
            None => std::fs::remove_file(&full).map_err(|e| AgentError::io(&full, e))?,
        }
        written.push(path);
    }
    Ok(written)
}

/// A unified diff turning `old` into `new` for `path` (as `--- a/PATH` / `+++ b/PATH`).
pub fn make(path: &str, old: &str, new: &str) -> String {
    let patch = diffy::create_patch(old, new).to_string();
    let body = patch
        .split_once('\n')
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, rest)| rest)
        .unwrap_or("");
    format!("--- a/{path}\n+++ b/{path}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn made_diffs_apply() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "a = 1\nb = 2\nc = 3\n").unwrap();
        let d = make("p.toml", "a = 1\nb = 2\nc = 3\n", "a = 1\nb = 5\nc = 3\n");
        let written = apply(dir.path(), &d, &all).unwrap();
        assert_eq!(written, vec!["p.toml"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.toml")).unwrap(),
            "a = 1\nb = 5\nc = 3\n"
        );
    }

    #[test]
    fn a_diff_that_does_not_apply_names_file_hunk_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "a = 1\nb = 9\nc = 3\n").unwrap();
        let d = "--- a/p.toml\n+++ b/p.toml\n@@ -1,3 +1,3 @@\n a = 1\n-b = 2\n+b = 5\n c = 3\n";
        let err = apply(dir.path(), d, &all).unwrap_err().to_string();
        assert!(err.contains("p.toml: hunk #1"), "{err}");
        assert!(
            err.contains("line 2 expected \"b = 2\", found \"b = 9\""),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.toml")).unwrap(),
            "a = 1\nb = 9\nc = 3\n"
        );
    }

    #[test]
    fn protected_paths_and_escapes_are_rejected_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.txt"), "x\n").unwrap();
        std::fs::write(dir.path().join("recloop.toml"), "x\n").unwrap();
        let d = format!(
            "{}{}",
            make("ok.txt", "x\n", "y\n"),
            make("recloop.toml", "x\n", "y\n")
        );
        let editable = |p: &str| p != "recloop.toml";
        let err = apply(dir.path(), &d, &editable).unwrap_err().to_string();
        assert!(err.contains("recloop.toml: protected"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ok.txt")).unwrap(),
            "x\n"
        );
        let esc = "--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n";
        let err = apply(dir.path(), esc, &all).unwrap_err().to_string();
        assert!(err.contains("stay inside"), "{err}");
    }

    #[test]
    fn git_style_multi_file_diff_with_new_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "1\n2\n").unwrap();
        let d = "diff --git a/a.txt b/a.txt\nindex 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n 1\n-2\n+3\ndiff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+hello\n";
        let w = apply(dir.path(), d, &all).unwrap();
        assert_eq!(w, vec!["a.txt", "n.txt"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("n.txt")).unwrap(),
            "hello\n"
        );
        assert!(split("not a diff").is_err());
    }
}
