//! `recloop bench loops`: the single loop against the dual loop on the MovieLens example and
//! the simulator, at the same simulated duration. Each (mode, seed) gets a fresh workspace and
//! runs `recloop run --simulated-days D`; the sample is read from the run's summary and
//! journal: online experiments, KEEPs merged, KEEPs per online experiment and per simulated
//! week, the primary's lift, the north star's online effects, and any guardrail breach (a
//! merged KEEP with a guardrail at attention or harm, which the verdict code should never let
//! through) and the harm vetoes that stopped experiments.

use crate::error::{AgentError, Result};
use crate::git::git;
use crate::orchestrator::RunSummary;
use recloop_core::{Decision, GuardrailStatus};
use recloop_journal::{Event, EventFilter, Journal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoopsBench {
    /// The `recloop` binary.
    pub binary: PathBuf,
    /// Dataset of the MovieLens example (`ml-100k`, `ml-1m`, `synthetic`).
    pub dataset: String,
    /// Seeds (`[run] seed`), one run per mode each.
    pub seeds: Vec<u64>,
    /// Simulated days each run may use online.
    pub days: u32,
    /// Upper bound on iterations (a run whose candidates never go online still ends).
    pub max_iterations: u32,
    /// The dual loop's offline trials per iteration.
    pub fast_trials: u32,
    /// The dual loop's online slots.
    pub slots: u32,
    /// The ramp both loops use (the dual loop's slots must fit in one layer).
    pub ramp: Vec<f64>,
    /// Where to put the workspaces.
    pub dir: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopsSample {
    /// `single` or `dual`.
    pub mode: String,
    /// Seed.
    pub seed: u64,
    /// Iterations run.
    pub iterations: u32,
    /// Candidates decided (offline or online).
    pub decided: u32,
    /// Online experiments started.
    pub online_experiments: u32,
    /// Simulated days used.
    pub online_days: u32,
    /// KEEPs merged into production.
    pub keeps: u32,
    /// KEEPs per online experiment.
    pub keeps_per_experiment: f64,
    /// KEEPs per simulated week of the run: over the days it used online, or over the days it
    /// was given when it used fewer (a loop that leaves slots idle still spends the weeks).
    pub keeps_per_week: f64,
    /// Validation primary: production at the start and at the end.
    pub start: f64,
    /// See `start`.
    pub end: f64,
    /// Sum of the north star's online effects of the merged KEEPs.
    pub north_star: f64,
    /// Merged KEEPs with a guardrail at attention or harm (should be 0).
    pub breaches: u32,
    /// Experiments stopped by the harm veto.
    pub vetoes: u32,
    /// Wall time, seconds.
    pub wall_s: f64,
}

fn bench_err(what: String) -> AgentError {
    AgentError::Invalid {
        path: "recloop bench loops".into(),
        reason: what,
    }
}

/// Measure both loops on every seed; `report` is called with each sample as it is measured.
pub fn bench_loops(
    b: &LoopsBench,
    report: &mut dyn FnMut(&LoopsSample),
) -> Result<Vec<LoopsSample>> {
    let mut out = Vec::new();
    for &seed in &b.seeds {
        for mode in ["single", "dual"] {
            let ws = b.dir.join(format!("{mode}-s{seed}"));
            if ws.exists() {
                std::fs::remove_dir_all(&ws).map_err(|e| AgentError::io(&ws, e))?;
            }
            setup(b, &ws, mode, seed)?;
            let start = Instant::now();
            let output = Command::new(&b.binary)
                .args(["run", "--workspace"])
                .arg(&ws)
                .args(["--iterations", &b.max_iterations.to_string()])
                .args(["--simulated-days", &b.days.to_string()])
                .args(["--unattended", "reject", "--json"])
                .env_remove("RECLOOP_JOURNAL_URL")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| AgentError::io(&b.binary, e))?;
            if !output.status.success() {
                return Err(bench_err(format!(
                    "{mode} loop, seed {seed}: recloop run failed ({}) in {}",
                    output.status,
                    ws.display()
                )));
            }
            let summary: RunSummary = serde_json::from_slice(&output.stdout).map_err(|e| {
                bench_err(format!("{mode} loop, seed {seed}: unreadable summary: {e}"))
            })?;
            let s = sample(
                &ws,
                mode,
                seed,
                b.days,
                &summary,
                start.elapsed().as_secs_f64(),
            )?;
            report(&s);
            out.push(s);
        }
    }
    Ok(out)
}

/// A fresh MovieLens example in `ws` (its personas included) set up for `mode`, with two
/// simulated weeks of production logs.
fn setup(b: &LoopsBench, ws: &Path, mode: &str, seed: u64) -> Result<()> {
    let st = Command::new(&b.binary)
        .args(["init", "--example", "movielens", "--dataset", &b.dataset])
        .arg(ws)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| AgentError::io(&b.binary, e))?;
    if !st.success() {
        return Err(bench_err(format!("recloop init failed ({st})")));
    }
    let manifest = ws.join("recloop.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| AgentError::io(&manifest, e))?;
    let ramp_line = text
        .lines()
        .find(|l| l.starts_with("ramp = "))
        .ok_or_else(|| bench_err("the example's [online] has no ramp line".into()))?
        .to_string();
    let ramp: Vec<String> = b.ramp.iter().map(|r| r.to_string()).collect();
    let mut online = format!("ramp = [{}]\nfinal_comparison = false", ramp.join(", "));
    let mut run = format!("\n[run]\nseed = {seed}\nmode = \"{mode}\"\n");
    if mode == "dual" {
        online.push_str(&format!("\nslots = {}", b.slots));
        run.push_str(&format!("fast_trials = {}\n", b.fast_trials));
    }
    let text = format!("{}{run}", text.replacen(&ramp_line, &online, 1));
    std::fs::write(&manifest, text).map_err(|e| AgentError::io(&manifest, e))?;
    git(ws, &["commit", "-qam", &format!("bench: {mode} loop")])?;
    // production logs for the reward persona, as `recloop demo` writes them
    let st = Command::new(&b.binary)
        .args(["sim", "logs", "--workspace"])
        .arg(ws)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| AgentError::io(&b.binary, e))?;
    if !st.success() {
        return Err(bench_err(format!("recloop sim logs failed ({st})")));
    }
    Ok(())
}

fn sample(
    ws: &Path,
    mode: &str,
    seed: u64,
    days: u32,
    s: &RunSummary,
    wall_s: f64,
) -> Result<LoopsSample> {
    let jerr = |e: recloop_journal::JournalError| AgentError::Journal(e.to_string());
    let j = Journal::open(&ws.join(".recloop").join("journal.db").display().to_string())
        .map_err(jerr)?;
    let events = j.events(&EventFilter::default()).map_err(jerr)?;
    let merged: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::MergedIntoProduction { proposal_id, .. } => Some(proposal_id.as_str()),
            _ => None,
        })
        .collect();
    let mut breaches = 0;
    let mut vetoes = 0;
    let mut decided = 0;
    for e in &events {
        match &e.event {
            Event::Verdict {
                proposal_id,
                verdict,
                ..
            } => {
                decided += 1;
                if verdict.decision == Decision::Keep
                    && merged.contains(proposal_id.as_str())
                    && verdict
                        .guardrails
                        .values()
                        .any(|g| matches!(g, GuardrailStatus::Attention | GuardrailStatus::Harm))
                {
                    breaches += 1;
                }
            }
            Event::Veto { .. } => vetoes += 1,
            _ => {}
        }
    }
    let keeps = s.kept() as u32;
    let value = |m: &recloop_core::MetricValues| m.get(&s.primary).copied().unwrap_or(f64::NAN);
    let per = |n: u32, d: f64| if d > 0.0 { f64::from(n) / d } else { 0.0 };
    Ok(LoopsSample {
        mode: mode.to_string(),
        seed,
        iterations: s.iterations,
        decided,
        online_experiments: s.online_experiments,
        online_days: s.online_days,
        keeps,
        keeps_per_experiment: per(keeps, f64::from(s.online_experiments)),
        keeps_per_week: per(keeps, f64::from(s.online_days.max(days)) / 7.0),
        start: value(&s.start),
        end: value(&s.end),
        north_star: s.north_star_effects.iter().map(|(_, e)| e).sum(),
        breaches,
        vetoes,
        wall_s,
    })
}
