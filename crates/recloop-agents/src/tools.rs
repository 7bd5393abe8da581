//! The Develop tools: list, read and search files, apply a unified diff, query the pipeline schema,
//! run an allowed command. Every tool is confined to one worktree; writes go through `apply_diff`
//! only, which enforces the manifest's editable/protected paths.

use crate::error::{AgentError, Result};
use crate::sandbox::{CommandOutcome, Sandbox};
use recloop_core::Manifest;
use recloop_rec::pipeline::params::{ALL_KINDS, kind_name, param_defs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The tools of one candidate.
pub struct Tools {
    /// The worktree.
    pub root: PathBuf,
    /// The manifest (editable paths, commands, allowed commands).
    pub manifest: Manifest,
    /// The sandbox for `run_command`; `None` refuses every command.
    pub sandbox: Option<Sandbox>,
    /// Every call made, for the trajectory.
    pub calls: Mutex<Vec<serde_json::Value>>,
}

const MAX_READ: usize = 64 * 1024;

impl Tools {
    /// Tools over `root`.
    pub fn new(root: &Path, manifest: &Manifest, sandbox: Option<Sandbox>) -> Tools {
        Tools {
            root: root.to_path_buf(),
            manifest: manifest.clone(),
            sandbox,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn log(&self, call: serde_json::Value) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn resolve(&self, rel: &str) -> Result<PathBuf> {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(AgentError::Invalid {
                path: rel.into(),
                reason: "paths must be relative to the workspace and stay inside it".into(),
            });
        }
        Ok(self.root.join(p))
    }

    /// Files under `dir` (relative paths, `.git` and `.recloop` skipped), sorted.
    pub fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        self.log(serde_json::json!({"tool": "list_files", "dir": dir}));
        let start = self.resolve(if dir.is_empty() { "." } else { dir })?;
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| AgentError::io(&d, e))?;
            for e in entries.flatten() {
                let path = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if name == ".git" || name == ".recloop" {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    out.push(rel.to_string_lossy().to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The text of one file (at most 64 KiB).
    pub fn read_file(&self, path: &str) -> Result<String> {
        self.log(serde_json::json!({"tool": "read_file", "path": path}));
        let full = self.resolve(path)?;
        let mut text = std::fs::read_to_string(&full).map_err(|e| AgentError::io(&full, e))?;
        if text.len() > MAX_READ {
            let mut cut = MAX_READ;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n[truncated]\n");
        }
        Ok(text)
    }

    /// Lines containing `pattern` (case-sensitive substring), as `path:line: text`, at most 200.
    pub fn search_files(&self, pattern: &str) -> Result<Vec<String>> {
        self.log(serde_json::json!({"tool": "search_files", "pattern": pattern}));
        let mut hits = Vec::new();
        for f in self.list_files("")? {
            let Ok(text) = std::fs::read_to_string(self.root.join(&f)) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if line.contains(pattern) {
                    hits.push(format!("{f}:{}: {}", i + 1, line.trim()));
                    if hits.len() >= 200 {
                        return Ok(hits);
                    }
                }
            }
        }
        Ok(hits)
    }

    /// Apply a unified diff (all or nothing; editable paths only).
    pub fn apply_diff(&self, diff: &str) -> Result<Vec<String>> {
        self.log(serde_json::json!({"tool": "apply_diff", "diff": diff}));
        let m = &self.manifest;
        crate::diff::apply(&self.root, diff, &|p| m.is_editable(p))
    }

    /// The editable-file map and the pipeline schema (fields, model kinds, hyper-parameters).
    pub fn query_schema(&self) -> serde_json::Value {
        self.log(serde_json::json!({"tool": "query_schema"}));
        let models: serde_json::Map<String, serde_json::Value> = ALL_KINDS
            .iter()
            .map(|k| {
                let params: Vec<serde_json::Value> = param_defs(*k)
                    .iter()
                    .map(|d| {
                        serde_json::json!({"name": d.name, "default": d.default, "min": d.min,
                                           "max": d.max, "integer": d.integer})
                    })
                    .collect();
                (kind_name(*k).to_string(), serde_json::Value::Array(params))
            })
            .collect();
        let mut schema = serde_json::json!({
            "editable": m_paths(&self.manifest.project.editable),
            "protected": m_paths(&self.manifest.project.protected),
        });
        // only what this workspace has: its built-in pipeline file, its declared search space
        if self.root.join("pipeline.toml").exists() {
            schema["pipeline.toml"] = serde_json::json!({
                "models": "array of {name, kind, weight, params}",
                "kinds": models,
                "blend.normalize": ["none", "minmax", "zscore", "rank"],
                "rerank": {"candidates": "integer ≥ 10", "mmr_lambda": "[0, 1]",
                           "popularity_penalty": "≥ 0", "genre_cap": "integer, 0 = none"},
                "script.path": "optional Rhai scoring script"
            });
        }
        if !self.manifest.search.params.is_empty() {
            schema["search"] = serde_json::to_value(&self.manifest.search.params)
                .unwrap_or(serde_json::Value::Null);
        }
        if schema.get("pipeline.toml").is_none() && schema.get("search").is_none() {
            schema["note"] = serde_json::json!(
                "this workspace declares no schema: read its files (list_files, read_file) to learn what its configuration accepts"
            );
        }
        schema
    }

    /// Run a command the workspace allows (its declared commands, or a first word listed in
    /// `[sandbox] allowed_commands`), sandboxed.
    pub fn run_command(&self, command: &str) -> Result<CommandOutcome> {
        self.log(serde_json::json!({"tool": "run_command", "command": command}));
        let c = &self.manifest.commands;
        let declared = [&c.build, &c.test, &c.check, &c.offline_eval];
        let first = command.split_whitespace().next().unwrap_or("");
        let allowed = declared
            .iter()
            .any(|d| !d.is_empty() && d.as_str() == command)
            || self
                .manifest
                .sandbox
                .allowed_commands
                .iter()
                .any(|a| a == first);
        if !allowed {
            return Err(AgentError::Sandbox(format!(
                "`{command}` is not allowed: only the workspace's declared commands and \
                 [sandbox] allowed_commands may run"
            )));
        }
        let sb = self.sandbox.as_ref().ok_or_else(|| {
            AgentError::Sandbox("no sandbox configured: commands are refused".into())
        })?;
        Ok(sb.run(&self.root, command)?)
    }

    /// Tool definitions (name, description, JSON Schema of arguments) for a language model.
    pub fn definitions() -> Vec<(String, String, serde_json::Value)> {
        let s = |props: serde_json::Value, req: &[&str]| serde_json::json!({"type": "object", "properties": props, "required": req});
        vec![
            (
                "list_files".into(),
                "List files under a directory of the worktree".into(),
                s(serde_json::json!({"dir": {"type": "string"}}), &[]),
            ),
            (
                "read_file".into(),
                "Read a file of the worktree".into(),
                s(serde_json::json!({"path": {"type": "string"}}), &["path"]),
            ),
            (
                "search_files".into(),
                "Search lines containing a substring".into(),
                s(
                    serde_json::json!({"pattern": {"type": "string"}}),
                    &["pattern"],
                ),
            ),
            (
                "apply_diff".into(),
                "Apply a unified diff (editable paths only)".into(),
                s(serde_json::json!({"diff": {"type": "string"}}), &["diff"]),
            ),
            (
                "query_schema".into(),
                "What this workspace's configuration accepts: editable paths, its pipeline.toml schema or declared search parameters".into(),
                s(serde_json::json!({}), &[]),
            ),
            (
                "run_command".into(),
                "Run an allowed command in the sandbox".into(),
                s(
                    serde_json::json!({"command": {"type": "string"}}),
                    &["command"],
                ),
            ),
        ]
    }

    /// Dispatch a tool call by name; errors become the tool's answer text (never a crash).
    pub fn call(
        &self,
        name: &str,
        args: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let arg = |k: &str| {
            args.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let r = match name {
            "list_files" => self.list_files(&arg("dir")).map(|v| v.join("\n")),
            "read_file" => self.read_file(&arg("path")),
            "search_files" => self.search_files(&arg("pattern")).map(|v| v.join("\n")),
            "apply_diff" => self
                .apply_diff(&arg("diff"))
                .map(|w| format!("applied to {}", w.join(", "))),
            "query_schema" => Ok(self.query_schema().to_string()),
            "run_command" => self.run_command(&arg("command")).map(|o| {
                if o.success() {
                    format!("ok\n{}", o.stdout)
                } else {
                    o.failure_reason()
                }
            }),
            other => return Err(format!("unknown tool {other:?}")),
        };
        r.map_err(|e| e.to_string())
    }
}

fn m_paths(p: &[String]) -> serde_json::Value {
    serde_json::Value::Array(
        p.iter()
            .map(|s| serde_json::Value::String(s.clone()))
            .collect(),
    )
}
