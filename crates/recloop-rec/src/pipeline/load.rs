//! Reading `pipeline.toml`: TOML errors with line and column, then semantic checks that name the
//! line of the offending key.

use super::locate::{Seg, line_col, line_of};
use super::params::check_param;
use super::spec::PipelineSpec;
use crate::error::{RecError, Result};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// File name of the pipeline specification at the root of a workspace.
pub const PIPELINE_FILE: &str = "pipeline.toml";

/// A semantic problem: where (a path into the document) and why.
struct Issue {
    path: Vec<OwnedSeg>,
    reason: String,
}

enum OwnedSeg {
    Key(String),
    Index(usize),
}

fn key(k: &str) -> OwnedSeg {
    OwnedSeg::Key(k.to_string())
}

impl PipelineSpec {
    /// Read and validate `pipeline.toml` of the workspace `dir`.
    pub fn load_workspace(dir: &Path) -> Result<PipelineSpec> {
        let file = dir.join(PIPELINE_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| RecError::Io {
            path: file.clone(),
            source,
        })?;
        PipelineSpec::parse(&text, &file, Some(dir))
    }

    /// Parse and validate specification text. `origin` names the file in errors; `workspace`, when
    /// given, is the directory the script path must stay inside (and exist in).
    pub fn parse(text: &str, origin: &Path, workspace: Option<&Path>) -> Result<PipelineSpec> {
        let spec: PipelineSpec = toml::from_str(text).map_err(|e| {
            let location = match e.span() {
                Some(span) => {
                    let (line, column) = line_col(text, span.start);
                    format!("{}:{line}:{column}", origin.display())
                }
                None => origin.display().to_string(),
            };
            RecError::Spec {
                location,
                reason: e.message().trim().to_string(),
            }
        })?;
        if let Some(issue) = spec.first_issue(workspace) {
            let segs: Vec<Seg<'_>> = issue
                .path
                .iter()
                .map(|s| match s {
                    OwnedSeg::Key(k) => Seg::Key(k.as_str()),
                    OwnedSeg::Index(i) => Seg::Index(*i),
                })
                .collect();
            let location = match line_of(text, &segs) {
                Some(line) => format!("{}:{line}", origin.display()),
                None => origin.display().to_string(),
            };
            return Err(RecError::Spec {
                location,
                reason: issue.reason,
            });
        }
        Ok(spec)
    }

    /// Check everything the schema alone cannot; the first problem found as a spec error naming
    /// `origin` (without a line, since there is no text). Use [`PipelineSpec::parse`] for files.
    pub fn validate(&self, origin: &Path, workspace: Option<&Path>) -> Result<()> {
        match self.first_issue(workspace) {
            None => Ok(()),
            Some(issue) => {
                let field: Vec<String> = issue
                    .path
                    .iter()
                    .map(|s| match s {
                        OwnedSeg::Key(k) => k.clone(),
                        OwnedSeg::Index(i) => format!("[{i}]"),
                    })
                    .collect();
                Err(RecError::Spec {
                    location: format!("{} ({})", origin.display(), field.join(".")),
                    reason: issue.reason,
                })
            }
        }
    }

    fn first_issue(&self, workspace: Option<&Path>) -> Option<Issue> {
        if self.models.is_empty() {
            return Some(Issue {
                path: vec![key("models")],
                reason: "at least one `[[models]]` entry is required".into(),
            });
        }
        let mut names = BTreeSet::new();
        let mut positive = false;
        for (i, m) in self.models.iter().enumerate() {
            let at = |k: &str| vec![key("models"), OwnedSeg::Index(i), key(k)];
            if m.name.trim().is_empty() {
                return Some(Issue {
                    path: at("name"),
                    reason: "model name must not be empty".into(),
                });
            }
            if !m
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || m.name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Some(Issue {
                    path: at("name"),
                    reason: format!(
                        "model name {:?} must be an identifier (letters, digits, `_`; not starting \
                         with a digit) so the script can use it as `item.scores.<name>`",
                        m.name
                    ),
                });
            }
            if !names.insert(m.name.as_str()) {
                return Some(Issue {
                    path: at("name"),
                    reason: format!("duplicate model name {:?}", m.name),
                });
            }
            if !m.weight.is_finite() {
                return Some(Issue {
                    path: at("weight"),
                    reason: format!("weight must be a finite number, found {}", m.weight),
                });
            }
            positive |= m.weight > 0.0;
            for (name, &value) in &m.params {
                if let Some(reason) = check_param(m.kind, name, value) {
                    return Some(Issue {
                        path: vec![key("models"), OwnedSeg::Index(i), key("params"), key(name)],
                        reason,
                    });
                }
            }
        }
        if !positive && self.script.is_none() {
            return Some(Issue {
                path: vec![key("models")],
                reason: "at least one model needs a positive weight (or a script must compute the \
                         score)"
                    .into(),
            });
        }
        let r = &self.rerank;
        let rr = |k: &str, reason: String| {
            Some(Issue {
                path: vec![key("rerank"), key(k)],
                reason,
            })
        };
        if r.candidates == 0 {
            return rr("candidates", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&r.mmr_lambda) {
            return rr(
                "mmr_lambda",
                format!("must be in [0, 1], found {}", r.mmr_lambda),
            );
        }
        if !(r.popularity_penalty >= 0.0 && r.popularity_penalty.is_finite()) {
            return rr(
                "popularity_penalty",
                format!(
                    "must be a finite number ≥ 0, found {}",
                    r.popularity_penalty
                ),
            );
        }
        let min_rating = self.positives.min_rating;
        if !(min_rating.is_finite() && (0.0..=5.0).contains(&min_rating)) {
            return Some(Issue {
                path: vec![key("positives"), key("min_rating")],
                reason: format!(
                    "must be a rating in [0, 5] (0 = every interaction), found {min_rating}"
                ),
            });
        }
        if let Some(script) = &self.script
            && let Some(reason) = check_script_path(&script.path, workspace)
        {
            return Some(Issue {
                path: vec![key("script"), key("path")],
                reason,
            });
        }
        None
    }
}

/// Why a script path is unacceptable, or `None`.
fn check_script_path(path: &str, workspace: Option<&Path>) -> Option<String> {
    if path.trim().is_empty() {
        return Some("script path must not be empty".into());
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Some(format!(
            "script path {path:?} must be relative to the workspace"
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Some(format!(
            "script path {path:?} leaves the workspace (`..` is not allowed)"
        ));
    }
    let ws = workspace?;
    let full: PathBuf = ws.join(p);
    if !full.is_file() {
        return Some(format!(
            "script {path:?} does not exist in the workspace ({})",
            full.display()
        ));
    }
    // Symlinks could still point outside: compare canonical paths.
    match (full.canonicalize(), ws.canonicalize()) {
        (Ok(f), Ok(w)) if f.starts_with(&w) => None,
        (Ok(_), Ok(_)) => Some(format!(
            "script path {path:?} resolves outside the workspace"
        )),
        (Err(e), _) | (_, Err(e)) => Some(format!("script path {path:?} cannot be resolved: {e}")),
    }
}
