//! Evolving the built-in brain's policy (`crate::brain::policy`): the same admission gate as the
//! language-model agents' harnesses, on numbers. Each round proposes up to three bounded edits of
//! the incumbent policy (one number each, never an edit the archive already refused), replays
//! the same offline search episodes with the incumbent and with each candidate (same seeds, same
//! starting pipeline, the workspace's data and validation split), and admits at most one: the
//! candidate with the largest mean gain in best primary value, if that gain exceeds ε and no
//! episode got worse by more than ε. Every candidate becomes a `harness_version_created` event of
//! agent `builtin` (admitted or archived) with its diff, diagnosis and replay numbers; the round
//! ends with `evolve_round_finished`. The admitted policy is written to `policy.toml`, which
//! `recloop run` uses.

use super::{RUN_ID, jerr, rounds_done, versions};
use crate::bench::bench_search;
use crate::brain::Brain;
use crate::brain::builtin::BuiltinBrain;
use crate::brain::policy::{BOUNDS, BrainPolicy, POLICY_AGENT, POLICY_FILE};
use crate::error::{AgentError, Result};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use recloop_core::{HarnessSpec, Manifest};
use recloop_journal::{Event, Journal, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// How a policy round replays.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// Rounds after those already in the journal.
    pub rounds: u32,
    /// Trials per search episode.
    pub trials: usize,
    /// Episodes (seeds) per policy; at least 3.
    pub episodes: usize,
    /// Minimum mean gain of the best primary value (None: the primary's `min_effect`).
    pub epsilon: Option<f64>,
    /// Base seed of the round's edits and episodes.
    pub seed: u64,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            rounds: 1,
            trials: 10,
            episodes: 3,
            epsilon: None,
            seed: 0,
        }
    }
}

/// One candidate edit and its replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyCandidate {
    /// The number edited.
    pub field: String,
    /// Its value in the incumbent.
    pub from: f64,
    /// Its value in the candidate.
    pub to: f64,
    /// Best primary value per episode, candidate.
    pub scores: Vec<f64>,
    /// Mean gain over the incumbent.
    pub gain: f64,
    /// Largest loss in one episode.
    pub worst_loss: f64,
    /// The version it was journaled as.
    pub version: u32,
    /// Admitted.
    pub admitted: bool,
}

/// One policy round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRound {
    /// Round number (per agent `builtin`).
    pub round: u32,
    /// The incumbent's version.
    pub incumbent: u32,
    /// Best primary value per episode, incumbent.
    pub incumbent_scores: Vec<f64>,
    /// The candidates, in the order they were replayed.
    pub candidates: Vec<PolicyCandidate>,
    /// The version admitted, if any.
    pub admitted: Option<u32>,
    /// ε used.
    pub epsilon: f64,
}

impl std::fmt::Display for PolicyRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "round {} of builtin: incumbent v{} mean {:.4} over {} episodes (ε {})",
            self.round,
            self.incumbent,
            mean(&self.incumbent_scores),
            self.incumbent_scores.len(),
            self.epsilon
        )?;
        for c in &self.candidates {
            writeln!(
                f,
                "  v{} {} {} -> {}: mean {:.4}, gain {:+.4}, worst episode {:+.4}: {}",
                c.version,
                c.field,
                c.from,
                c.to,
                mean(&c.scores),
                c.gain,
                -c.worst_loss,
                if c.admitted { "ADMITTED" } else { "archived" }
            )?;
        }
        match self.admitted {
            Some(v) => write!(f, "  policy.toml is now v{v}"),
            None if self.candidates.is_empty() => write!(
                f,
                "  no edit left to try from v{}: every bounded step of its numbers is archived",
                self.incumbent
            ),
            None => write!(f, "  nothing admitted: the incumbent stays"),
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn spec_of(p: &BrainPolicy) -> HarnessSpec {
    HarnessSpec {
        agent: POLICY_AGENT.into(),
        files: [(POLICY_FILE.to_string(), p.to_toml())]
            .into_iter()
            .collect(),
    }
}

fn append(journal: &Journal, key: &str, event: Event) -> Result<()> {
    journal
        .append(
            NewEvent::new(RUN_ID, 0, event)
                .key(key.to_string())
                .with_id(crate::record::uuid_for(key)),
        )
        .map(|_| ())
        .map_err(jerr)
}

/// The incumbent: the latest admitted version (its file written to disk when the disk is
/// behind), or the policy on disk recorded as version 1 (or as a person's edit).
fn incumbent(journal: &Journal, workspace: &Path) -> Result<(u32, BrainPolicy)> {
    let versions = versions::list(journal, POLICY_AGENT)?;
    let on_disk = BrainPolicy::load(workspace)?;
    let text = on_disk.to_toml();
    let recorded = versions
        .iter()
        .find(|v| v.files.get(POLICY_FILE) == Some(&text));
    let latest = versions::latest_admitted(&versions);
    match (recorded, latest) {
        (Some(v), Some(l)) if v.version == l.version => return Ok((v.version, on_disk)),
        // the disk holds an older recorded version: bring it to the latest admitted one
        (Some(_), Some(l)) => {
            let file = l.files.get(POLICY_FILE).map_or("", String::as_str);
            let p = BrainPolicy::parse(file, Path::new(POLICY_FILE))?;
            p.save(workspace)?;
            return Ok((l.version, p));
        }
        _ => {}
    }
    // a policy the journal does not know: the defaults (v1) or a person's edit
    let version = versions::next_number(&versions);
    let parent = latest.map(|v| v.version);
    append(
        journal,
        &format!("{RUN_ID}/harness/{POLICY_AGENT}/{version}"),
        Event::HarnessVersionCreated {
            version,
            parent_version: parent,
            admitted: true,
            diagnosis: if parent.is_none() {
                "initial built-in brain policy".into()
            } else {
                "edited by hand in .recloop/harness/builtin/policy.toml".into()
            },
            spec: spec_of(&on_disk),
            diff: String::new(),
            evidence: serde_json::Value::Null,
        },
    )?;
    Ok((version, on_disk))
}

/// Up to three edits of `base`, one number each, none the archive refused (same field and
/// value) and none equal to the incumbent.
fn edits(base: &BrainPolicy, archive: &[(String, f64)], rng: &mut Pcg64Mcg) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for _ in 0..40 {
        if out.len() >= 3 {
            break;
        }
        let (name, lo, hi) = BOUNDS[rng.random_range(0..BOUNDS.len())];
        if out.iter().any(|(n, _)| n == name) {
            continue;
        }
        let Some(current) = base.get(name) else {
            continue;
        };
        // a step in log space for the sample count, in the value's own range otherwise
        let proposed = if name == "samples" {
            (current * if rng.random::<bool>() { 2.0 } else { 0.5 }).round()
        } else {
            let width = (hi - lo) * 0.25;
            current + if rng.random::<bool>() { width } else { -width }
        };
        let value = (proposed.clamp(lo, hi) * 1000.0).round() / 1000.0;
        if (value - current).abs() < 1e-9
            || archive
                .iter()
                .any(|(n, v)| n == name && (v - value).abs() < 1e-9)
        {
            continue;
        }
        out.push((name.to_string(), value));
    }
    out
}

/// The edits the journal archived (refused) from `base`'s version: (field, value).
fn archived(journal: &Journal, parent: u32) -> Result<Vec<(String, f64)>> {
    Ok(versions::list(journal, POLICY_AGENT)?
        .into_iter()
        .filter(|v| !v.admitted && v.parent_version == Some(parent))
        .filter_map(|v| {
            let field = v.evidence.get("field")?.as_str()?.to_string();
            let to = v.evidence.get("to")?.as_f64()?;
            Some((field, to))
        })
        .collect())
}

/// Best primary value per episode of `policy`.
fn replay(
    workspace: &Path,
    policy: &BrainPolicy,
    seeds: &[u64],
    trials: usize,
) -> Result<Vec<f64>> {
    let brains: Vec<(String, Box<dyn Brain>)> = vec![(
        "policy".into(),
        Box::new(BuiltinBrain::with_policy(policy.clone())),
    )];
    let report = bench_search(workspace, trials, seeds, &[trials], &brains)?;
    Ok(report
        .best
        .get("policy")
        .map(|per_seed| {
            per_seed
                .iter()
                .map(|at| at.last().copied().unwrap_or(f64::NAN))
                .collect()
        })
        .unwrap_or_default())
}

/// Run `opts.rounds` policy rounds on the workspace (its run lock held by the caller).
pub fn evolve_policy(
    workspace: &Path,
    manifest: &Manifest,
    journal: &Journal,
    opts: &PolicyOptions,
) -> Result<Vec<PolicyRound>> {
    if opts.episodes < 3 {
        return Err(AgentError::Invalid {
            path: "evolve --agent builtin".into(),
            reason: format!(
                "{} episodes per policy; paired replay needs at least 3",
                opts.episodes
            ),
        });
    }
    if opts.trials == 0 {
        return Err(AgentError::Invalid {
            path: "evolve --agent builtin".into(),
            reason: "a search episode needs at least 1 trial".into(),
        });
    }
    let primary = &manifest.metrics.primary;
    let sign = primary.direction.sign();
    let epsilon = opts.epsilon.unwrap_or(primary.min_effect).max(1e-12);
    let before = rounds_done(journal, POLICY_AGENT)?;
    let mut out = Vec::new();
    for round in before + 1..=before + opts.rounds {
        let (incumbent_version, base) = incumbent(journal, workspace)?;
        let seeds: Vec<u64> = (0..opts.episodes as u64)
            .map(|k| opts.seed.wrapping_mul(7_919).wrapping_add(k + 1))
            .collect();
        let base_scores = replay(workspace, &base, &seeds, opts.trials)?;
        let mut rng = Pcg64Mcg::seed_from_u64(opts.seed ^ u64::from(round).wrapping_mul(0x9E37));
        let archive = archived(journal, incumbent_version)?;
        let mut next = versions::next_number(&versions::list(journal, POLICY_AGENT)?);
        let mut candidates = Vec::new();
        for (field, to) in edits(&base, &archive, &mut rng) {
            let Some(policy) = base.with(&field, to) else {
                continue;
            };
            let scores = replay(workspace, &policy, &seeds, opts.trials)?;
            let diffs: Vec<f64> = scores
                .iter()
                .zip(&base_scores)
                .map(|(c, b)| sign * (c - b))
                .collect();
            candidates.push((
                policy,
                PolicyCandidate {
                    from: base.get(&field).unwrap_or(f64::NAN),
                    field,
                    to,
                    gain: mean(&diffs),
                    worst_loss: diffs.iter().map(|d| -d).fold(f64::NEG_INFINITY, f64::max),
                    scores,
                    version: next,
                    admitted: false,
                },
            ));
            next += 1;
        }
        // at most one admission: the largest gain past ε with no episode worse by more than ε
        let winner = candidates
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| c.gain > epsilon && c.worst_loss <= epsilon)
            .max_by(|a, b| a.1.1.gain.total_cmp(&b.1.1.gain))
            .map(|(k, _)| k);
        if let Some(k) = winner {
            candidates[k].1.admitted = true;
        }
        for (policy, c) in &candidates {
            append(
                journal,
                &format!("{RUN_ID}/harness/{POLICY_AGENT}/{}", c.version),
                Event::HarnessVersionCreated {
                    version: c.version,
                    parent_version: Some(incumbent_version),
                    admitted: c.admitted,
                    diagnosis: format!(
                        "round {round}: {} {} -> {}; paired replay of {} offline search episodes of {} trials from the workspace's pipeline: mean best {} {:.5} vs {:.5} (gain {:+.5}, ε {epsilon}, worst episode {:+.5}){}",
                        c.field,
                        c.from,
                        c.to,
                        seeds.len(),
                        opts.trials,
                        primary.name,
                        mean(&c.scores),
                        mean(&base_scores),
                        c.gain,
                        -c.worst_loss,
                        if c.admitted {
                            ": admitted"
                        } else if c.gain <= epsilon {
                            ": archived, no measured gain past ε"
                        } else if c.worst_loss > epsilon {
                            ": archived, an episode got worse by more than ε"
                        } else {
                            ": archived, another edit gained more"
                        }
                    ),
                    spec: spec_of(policy),
                    diff: crate::diff::make(POLICY_FILE, &base.to_toml(), &policy.to_toml()),
                    evidence: json!({
                        "field": c.field, "from": c.from, "to": c.to,
                        "seeds": seeds, "trials": opts.trials, "metric": primary.name,
                        "incumbent_scores": base_scores, "candidate_scores": c.scores,
                        "gain": c.gain, "worst_loss": c.worst_loss, "epsilon": epsilon,
                    }),
                },
            )?;
        }
        let admitted = candidates.iter().find(|(_, c)| c.admitted);
        if let Some((policy, _)) = admitted {
            policy.save(workspace)?;
        }
        let report = PolicyRound {
            round,
            incumbent: incumbent_version,
            incumbent_scores: base_scores,
            admitted: admitted.map(|(_, c)| c.version),
            candidates: candidates.into_iter().map(|(_, c)| c).collect(),
            epsilon,
        };
        append(
            journal,
            &format!("{RUN_ID}/round/{POLICY_AGENT}/{round}"),
            Event::EvolveRoundFinished {
                agent: POLICY_AGENT.into(),
                round,
                admitted_version: report.admitted,
                summary: serde_json::to_value(&report).unwrap_or_default(),
            },
        )?;
        out.push(report);
    }
    Ok(out)
}

/// [`evolve_policy`] on the workspace at `workspace`, under its run lock.
pub fn evolve_policy_workspace(workspace: &Path, opts: &PolicyOptions) -> Result<Vec<PolicyRound>> {
    let manifest = Manifest::load(workspace)?;
    let repo = crate::git::Repo::open(workspace)?;
    let root = repo.root.clone();
    let _lock = crate::orchestrator::RunLock::acquire(&repo)?;
    let journal = Journal::for_workspace(&root, None).map_err(jerr)?;
    evolve_policy(&root, &manifest, &journal, opts)
}
