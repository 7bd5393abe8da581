//! Benchmark: the built-in TPE brain against random search over the same mutation space, same
//! trial budget, several seeds. Each trial proposes one mutation of the current best spec and
//! measures it on the validation split in-process (no git, no journal: only the search differs).

use crate::brain::builtin::BuiltinBrain;
use crate::brain::{Brain, BrainstormInput};
use crate::error::{AgentError, Result};
use crate::harness::Harness;
use crate::history::{History, Trial};
use recloop_core::{Decision, Manifest};
use recloop_rec::pipeline::{EvalConfig, EvalSplit, PipelineSpec, evaluate_spec, load_data};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Best validation value after each checkpoint, per brain and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Primary metric.
    pub metric: String,
    /// Checkpoints (trial counts).
    pub checkpoints: Vec<usize>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// brain → per seed → best value at each checkpoint.
    pub best: std::collections::BTreeMap<String, Vec<Vec<f64>>>,
    /// Value of the starting spec.
    pub start: f64,
    /// brain → per seed → each trial's change and measured value, in order.
    #[serde(default)]
    pub trials: std::collections::BTreeMap<String, Vec<Vec<TrialTrace>>>,
}

/// One benchmark trial: what the brain changed and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialTrace {
    /// The proposal's title (the mutation in words).
    pub change: String,
    /// Validation value of the primary metric (NaN when the spec failed).
    pub value: f64,
}

impl BenchReport {
    /// Mean over seeds of the best value at checkpoint index `c` for `brain`.
    pub fn mean(&self, brain: &str, c: usize) -> f64 {
        let v: Vec<f64> = self
            .best
            .get(brain)
            .map(|s| s.iter().map(|x| x[c]).collect())
            .unwrap_or_default();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }
}

/// One line per brain and checkpoint: mean, median, min and max over seeds, then the per-seed
/// values. The alternate form (`{:#}`) adds each trial's change and value.
impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seeds {:?}, start {} = {:.4}",
            self.seeds, self.metric, self.start
        )?;
        for (brain, per_seed) in &self.best {
            for (ci, c) in self.checkpoints.iter().enumerate() {
                let mut v: Vec<f64> = per_seed.iter().map(|s| s[ci]).collect();
                v.sort_by(f64::total_cmp);
                let (Some(min), Some(max)) = (v.first(), v.last()) else {
                    continue;
                };
                let rounded: Vec<f64> = per_seed
                    .iter()
                    .map(|s| (s[ci] * 1e4).round() / 1e4)
                    .collect();
                writeln!(
                    f,
                    "{brain:>8} best {} after {c:>2} trials: mean {:.4} median {:.4} min {min:.4} max {max:.4} per seed {rounded:?}",
                    self.metric,
                    self.mean(brain, ci),
                    v[v.len() / 2],
                )?;
            }
        }
        if f.alternate() {
            for (brain, per_seed) in &self.trials {
                for (seed, trials) in self.seeds.iter().zip(per_seed) {
                    for (i, t) in trials.iter().enumerate() {
                        writeln!(
                            f,
                            "{brain} seed {seed} trial {:>2}: {:.4} {}",
                            i + 1,
                            t.value,
                            t.change
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The brains [`bench_brains`] can compare.
pub const BENCH_BRAINS: [&str; 2] = ["builtin", "random"];

/// Run the benchmark on the workspace at `dir` (its `pipeline.toml` is the starting point, its
/// `eval/eval.toml` the data), `trials` trials per seed, for each of `brains` (names from
/// [`BENCH_BRAINS`]).
pub fn bench_brains(
    dir: &Path,
    trials: usize,
    seeds: &[u64],
    checkpoints: &[usize],
    brains: &[&str],
) -> Result<BenchReport> {
    let mut chosen: Vec<(String, Box<dyn Brain>)> = Vec::new();
    for name in brains {
        let brain: Box<dyn Brain> = match *name {
            "builtin" => Box::new(BuiltinBrain::tpe()),
            "random" => Box::new(BuiltinBrain::random()),
            other => {
                return Err(AgentError::Invalid {
                    path: "benchmark brains".into(),
                    reason: format!("unknown brain {other:?}; known: {BENCH_BRAINS:?}"),
                });
            }
        };
        chosen.push((brain.name(), brain));
    }
    bench_search(dir, trials, seeds, checkpoints, &chosen)
}

/// Offline search episodes: for each labelled brain and seed, `trials` one-proposal trials
/// from the workspace's `pipeline.toml`, each measured on the validation split in-process; the
/// best value after each checkpoint. The same seeds give every brain the same episodes.
pub fn bench_search(
    dir: &Path,
    trials: usize,
    seeds: &[u64],
    checkpoints: &[usize],
    brains: &[(String, Box<dyn Brain>)],
) -> Result<BenchReport> {
    // One value is recorded per distinct checkpoint (e.g. `[10, 10]` when only 10 trials run).
    let mut checkpoints = checkpoints.to_vec();
    checkpoints.retain(|&c| c >= 1 && c <= trials);
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let manifest = Manifest::load(dir)?;
    let rec_err = |e: recloop_rec::RecError| AgentError::Invalid {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let config = EvalConfig::load_workspace(dir).map_err(rec_err)?;
    let data = load_data(&config).map_err(rec_err)?;
    let start_spec = PipelineSpec::load_workspace(dir).map_err(rec_err)?;
    let primary = manifest.metrics.primary.name.clone();
    let sign = manifest.metrics.primary.direction.sign();
    let measure = |spec: &PipelineSpec| -> f64 {
        evaluate_spec(spec, Some(dir), &data, EvalSplit::Validation, config.seed)
            .ok()
            .and_then(|m| m.get(&primary).copied())
            .filter(|v| v.is_finite())
            .unwrap_or(f64::NAN)
    };
    let start = measure(&start_spec);
    let tmp = tempdir_for_harness(dir)?;
    let harness = Harness::load(&tmp, "brainstorm")?;
    let mut report = BenchReport {
        metric: primary.clone(),
        checkpoints: checkpoints.clone(),
        seeds: seeds.to_vec(),
        best: Default::default(),
        start,
        trials: Default::default(),
    };
    for (label, brain) in brains {
        let mut per_seed = Vec::new();
        let mut traces = Vec::new();
        for &seed in seeds {
            let mut history = History::default();
            history.production_values.push(("start".into(), start));
            let mut best_spec = start_spec.clone();
            let mut best = start;
            let mut at = Vec::new();
            let mut trace = Vec::new();
            for t in 0..trials {
                let out = brain.brainstorm(&BrainstormInput {
                    manifest: &manifest,
                    workspace: dir,
                    production_spec: Some(&best_spec),
                    history: &history,
                    evidence: "",
                    batch_size: 1,
                    seed: seed.wrapping_mul(1_000_003).wrapping_add(t as u64),
                    id_prefix: &format!("b{t:03}"),
                    harness: &harness,
                    spend: &crate::brain::SpendLog::new(),
                    analysis: None,
                    persona: None,
                })?;
                if let Some(p) = out.proposals.into_iter().next() {
                    let spec: Option<PipelineSpec> = p
                        .change
                        .get("spec")
                        .and_then(|s| serde_json::from_value(s.clone()).ok());
                    let value = spec.as_ref().map_or(f64::NAN, &measure);
                    trace.push(TrialTrace {
                        change: p.title.clone(),
                        value,
                    });
                    let better = value.is_finite() && sign * (value - best) > 0.0;
                    if better {
                        best = value;
                        best_spec = spec.clone().unwrap_or(best_spec);
                    }
                    history.trials.push(Trial {
                        base_hash: p
                            .change
                            .get("base_hash")
                            .and_then(|h| h.as_str())
                            .map(str::to_string),
                        proposal: p,
                        seq: t as u64,
                        spec,
                        value: value.is_finite().then_some(value),
                        decision: Some(if better {
                            Decision::Keep
                        } else {
                            Decision::Discard
                        }),
                        rejected: None,
                        merged: better,
                        online: false,
                        diff_hash: None,
                        error: None,
                        quality: None,
                        guardrail_failed: false,
                    });
                }
                if checkpoints.contains(&(t + 1)) {
                    at.push(best);
                }
            }
            per_seed.push(at);
            traces.push(trace);
        }
        report.best.insert(label.clone(), per_seed);
        report.trials.insert(label.clone(), traces);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(report)
}

fn tempdir_for_harness(dir: &Path) -> Result<std::path::PathBuf> {
    let p = std::env::temp_dir().join(format!("recloop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|e| AgentError::io(&p, e))?;
    // Use the workspace's harness when it has one.
    let ws = crate::harness::harness_dir(dir, "brainstorm");
    if ws.exists() {
        return Ok(dir.to_path_buf());
    }
    Ok(p)
}
