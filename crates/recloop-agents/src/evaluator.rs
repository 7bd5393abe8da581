//! Offline evaluation of a worktree: the workspace's own commands (sandboxed, one JSON object of
//! metrics on stdout), or the built-in pipeline in-process when no `recloop` executable is at hand.

use crate::record::Recorder;
use crate::sandbox::{Sandbox, recloop_exe};
use recloop_core::{Manifest, MetricValues};
use std::path::Path;

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Validation (agents see the numbers).
    Validation,
    /// Sealed holdout (agents see pass/fail only).
    Holdout,
}

/// Why an offline evaluation produced no metrics: one variant per cause.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The manifest names no command for this split.
    #[error("recloop.toml declares no {split:?} evaluation command")]
    NoCommand {
        /// The split asked for.
        split: Split,
    },
    /// The sandbox could not start the command.
    #[error("sandbox: {0}")]
    Sandbox(#[from] recloop_sandbox::SandboxError),
    /// The command ran and failed (exit status, time-out or signal, with its output's tail).
    #[error("{0}")]
    CommandFailed(String),
    /// The command printed no JSON object of metrics.
    #[error("the command printed no JSON object of metrics (stdout began: {head:?})")]
    NoMetrics {
        /// The first 200 characters of its stdout.
        head: String,
    },
    /// The built-in pipeline failed to evaluate in-process.
    #[error("{0}")]
    Pipeline(#[from] recloop_rec::RecError),
    /// Any other evaluator's own failure (test doubles, custom evaluators).
    #[error("{0}")]
    Other(String),
    /// The run was cancelled while the evaluation ran (its job was cancelled).
    #[error("cancelled: the run was cancelled")]
    Cancelled,
}

/// Where an evaluation belongs in the journal: evaluators that run jobs
/// ([`crate::executor::ExecutorEvaluator`]) journal each attempt under `step`.
pub struct JobContext<'a> {
    /// The run's journal.
    pub rec: &'a Recorder,
    /// Iteration.
    pub iteration: u32,
    /// Idempotency step prefix, unique per evaluation (e.g. `develop/p-3/eval/offline/0`).
    pub step: String,
    /// Experiment evaluated, if any.
    pub proposal_id: Option<String>,
    /// What is evaluated, in words (e.g. `validation of candidate c-p-3`).
    pub job: String,
}

/// Something that measures a worktree.
pub trait OfflineEvaluator: Send + Sync {
    /// Metrics of `dir` on `split`, or why they could not be obtained.
    fn evaluate(&self, dir: &Path, split: Split) -> Result<MetricValues, EvalError>;

    /// [`OfflineEvaluator::evaluate`] as a step of the loop described by `ctx` (evaluators
    /// that run jobs journal them there; the default ignores it).
    fn evaluate_job(
        &self,
        dir: &Path,
        split: Split,
        ctx: &JobContext<'_>,
    ) -> Result<MetricValues, EvalError> {
        let _ = ctx;
        self.evaluate(dir, split)
    }
}

/// Parse the last JSON object printed on stdout into metrics (numbers only; `null` → NaN).
pub fn parse_metrics(stdout: &str) -> Result<MetricValues, EvalError> {
    let candidates = std::iter::once(stdout.trim()).chain(stdout.lines().rev().map(str::trim));
    for text in candidates {
        if !text.starts_with('{') {
            continue;
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        {
            let mut m = MetricValues::new();
            for (k, v) in map {
                match v {
                    serde_json::Value::Number(n) => {
                        m.insert(k, n.as_f64().unwrap_or(f64::NAN));
                    }
                    serde_json::Value::Null => {
                        m.insert(k, f64::NAN);
                    }
                    _ => {}
                }
            }
            return Ok(m);
        }
    }
    Err(EvalError::NoMetrics {
        head: stdout.chars().take(200).collect(),
    })
}

/// The primary metric's value, failing on missing or non-finite values.
pub fn primary_value(m: &MetricValues, manifest: &Manifest) -> Result<f64, String> {
    let name = &manifest.metrics.primary.name;
    match m.get(name) {
        None => Err(format!(
            "primary metric `{name}` is missing from the metrics (have: {})",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        Some(v) if !v.is_finite() => Err(format!(
            "primary metric `{name}` is {v}, not a finite number"
        )),
        Some(v) => Ok(*v),
    }
}

/// Timing keys that may differ between identical runs.
pub fn is_timing(key: &str) -> bool {
    key.ends_with("_s") || key.ends_with("_ms") || key.starts_with("latency")
}

/// Differences between two runs' metrics, timings excluded (empty = deterministic).
pub fn nondeterministic_keys(a: &MetricValues, b: &MetricValues) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).filter(|k| !is_timing(k)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| match (a.get(*k), b.get(*k)) {
            (Some(x), Some(y)) => !(x == y || (x - y).abs() <= 1e-9 * x.abs().max(1.0)),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Runs the workspace's `offline_eval` / `holdout_eval` commands in the sandbox.
pub struct CommandEvaluator {
    /// Commands.
    pub manifest: Manifest,
    /// Sandbox.
    pub sandbox: Sandbox,
}

impl OfflineEvaluator for CommandEvaluator {
    fn evaluate(&self, dir: &Path, split: Split) -> Result<MetricValues, EvalError> {
        let c = &self.manifest.commands;
        let cmd = match split {
            Split::Validation => &c.offline_eval,
            Split::Holdout => &c.holdout_eval,
        };
        if cmd.trim().is_empty() {
            return Err(EvalError::NoCommand { split });
        }
        let out = self.sandbox.run(dir, cmd)?;
        if !out.success() {
            return Err(EvalError::CommandFailed(out.failure_reason()));
        }
        parse_metrics(&out.stdout)
    }
}

/// Evaluates a built-in pipeline workspace in this process (`recloop rec eval` without a binary).
pub struct InProcessEvaluator;

impl OfflineEvaluator for InProcessEvaluator {
    fn evaluate(&self, dir: &Path, split: Split) -> Result<MetricValues, EvalError> {
        let s = match split {
            Split::Validation => recloop_rec::pipeline::EvalSplit::Validation,
            Split::Holdout => recloop_rec::pipeline::EvalSplit::Holdout,
        };
        Ok(recloop_rec::pipeline::evaluate_workspace(dir, s)?)
    }
}

/// The evaluator for a workspace: with `[executor]`, its commands as jobs of that executor
/// (`runner`, which must be given then); else its commands in the sandbox, except `recloop rec
/// eval` commands when this process is not the `recloop` binary (tests, library use), which run
/// in-process.
pub fn evaluator_for(
    manifest: &Manifest,
    sandbox: Option<Sandbox>,
    runner: Option<std::sync::Arc<crate::executor::JobRunner>>,
) -> Result<Box<dyn OfflineEvaluator>, String> {
    if let Some(x) = &manifest.executor {
        let runner = runner.ok_or_else(|| {
            format!(
                "[executor] kind = {:?}: no executor was built for this run",
                x.kind
            )
        })?;
        return Ok(Box::new(crate::executor::ExecutorEvaluator::new(
            manifest.clone(),
            runner,
        )));
    }
    let builtin = manifest
        .commands
        .offline_eval
        .trim_start()
        .starts_with("recloop rec eval");
    if builtin && recloop_exe().is_none() {
        return Ok(Box::new(InProcessEvaluator));
    }
    match sandbox {
        Some(sandbox) => Ok(Box::new(CommandEvaluator {
            manifest: manifest.clone(),
            sandbox,
        })),
        None => Err("no sandbox available to run the evaluation commands".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_come_from_the_last_json_line() {
        let m = parse_metrics("loading...\n{\"ndcg@10\": 0.3, \"name\": \"x\", \"bad\": null}\n")
            .unwrap();
        assert_eq!(m["ndcg@10"], 0.3);
        assert!(m["bad"].is_nan());
        assert!(!m.contains_key("name"));
        assert!(
            parse_metrics("nothing here")
                .unwrap_err()
                .to_string()
                .contains("no JSON object")
        );
    }

    #[test]
    fn determinism_ignores_timings() {
        let mut a = MetricValues::new();
        a.insert("ndcg@10".into(), 0.3);
        a.insert("fit_s".into(), 1.0);
        let mut b = a.clone();
        b.insert("fit_s".into(), 2.0);
        assert!(nondeterministic_keys(&a, &b).is_empty());
        b.insert("ndcg@10".into(), 0.31);
        assert_eq!(nondeterministic_keys(&a, &b), vec!["ndcg@10"]);
    }
}
