//! Evolve (SGPO): one agent's harness improved by semantic gradients, admitted by paired replay.
//!
//! One round for an agent:
//! 1. [`tasks`]: the journal's trajectories of the agent become replay tasks (failures and
//!    successes mixed) with deterministic verifiers and a rubric; every fourth task is held out;
//! 2. the incumbent (latest admitted) harness is replayed on the other tasks, ≥ 3 seeds each;
//! 3. [`gradient`]: the evaluator role writes a loss report and a structured diagnosis;
//! 4. [`refine`]: the refiner role proposes up to 3 candidate edits (it sees the archive of
//!    rejected edits and the [`elites`], the best replayed snapshot per edit category, which it
//!    may build on instead of the incumbent); each passes the safety checks or is refused;
//! 5. [`replay`]: each safe edit is replayed on the same tasks and seeds; plain code admits the
//!    best one whose mean gain exceeds ε with no verifier regressing (at most one per round);
//! 6. [`versions`]: every candidate becomes a journaled harness version (admitted or archived)
//!    with its diff and evidence, in one batch with `evolve_round_finished`; then the admitted
//!    files are written to `.recloop/harness/<agent>/`.
//!
//! A round's events are appended atomically at its end, so a round interrupted by `kill -9` is
//! simply run again; finished rounds are counted from the journal.

pub mod elites;
pub mod gradient;
pub mod history;
pub mod policy;
pub mod refine;
pub mod replay;
pub mod tasks;
pub mod versions;

use crate::error::{AgentError, Result};
use crate::git::Repo;
use crate::harness::{self, Harness};
use crate::orchestrator::RunLock;
use recloop_core::Manifest;
use recloop_journal::{Event, EventFilter, Journal, NewEvent};
use recloop_llm::{
    BudgetLedger, ChatModel, ChatRequest, LengthPolicy, LlmRouter, Message, Schema, SharedModel,
    Usage, structured_with_policy,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Settings of `recloop evolve`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvolveOptions {
    /// Agent whose harness evolves (`develop` or `brainstorm`).
    pub agent: String,
    /// Rounds to run (after those already in the journal).
    pub rounds: u32,
    /// Replays per task and harness (at least 3).
    pub replays: u32,
    /// Minimum mean gain on the 0–5 scale.
    pub epsilon: f64,
    /// Replay tasks sampled from the journal.
    pub max_tasks: usize,
    /// Base seed of the replays.
    pub seed: u64,
    /// Tokens one round may spend (None: only the router's budgets bind).
    pub max_tokens_per_round: Option<u64>,
    /// What started the rounds (`RUN/ITERATION` inside `recloop run`; None for `recloop evolve`).
    pub trigger: Option<String>,
    /// Where the replay tasks come from.
    pub evidence: Evidence,
}

/// The evidence of a round's replay tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// SGPO-I: the agent's trajectories in the journal.
    #[default]
    Trajectories,
    /// SGPO-II (Develop only): merged changes (KEEPs and filtered git history) replayed as
    /// requirement-only tasks, scored by the coding rubric.
    History,
}

impl EvolveOptions {
    /// Defaults for `agent`: 1 round, 3 replays, ε = 0.05, 12 tasks.
    pub fn new(agent: &str) -> EvolveOptions {
        EvolveOptions {
            agent: agent.to_string(),
            rounds: 1,
            replays: 3,
            epsilon: 0.05,
            max_tasks: 12,
            seed: 0,
            max_tokens_per_round: None,
            trigger: None,
            evidence: Evidence::Trajectories,
        }
    }
}

/// The models of the three roles.
#[derive(Clone)]
pub struct EvolveModels {
    /// The evolving agent's model (replays).
    pub agent: SharedModel,
    /// The evaluator role (semantic gradient).
    pub evaluator: SharedModel,
    /// The refiner role (candidate edits).
    pub refiner: SharedModel,
    /// SGPO-II's grader of requirement replays against the hidden merged change (None: the
    /// evaluator's model).
    pub grader: Option<SharedModel>,
    /// The router's spending ledger, when the models come from one (dollars per round).
    pub ledger: Option<Arc<BudgetLedger>>,
}

impl EvolveModels {
    /// From the workspace's router: the agent's role for replays, role `evolve` for the
    /// evaluator and the refiner.
    pub fn from_router(router: &LlmRouter, agent: &str) -> Result<EvolveModels> {
        let m = |role: &str| {
            router
                .for_role(role)
                .map_err(|e| AgentError::Llm(format!("model for role {role}: {e}")))
        };
        // one model for both roles of `evolve` (a scripted or replayed model is one sequence)
        let evolve = m("evolve")?;
        Ok(EvolveModels {
            agent: m(agent)?,
            evaluator: evolve.clone(),
            refiner: evolve,
            grader: None,
            ledger: Some(router.ledger().clone()),
        })
    }
}

/// `recloop evolve`: the workspace's configured models (`[llm]`, roles `AGENT` and `evolve`;
/// `RECLOOP_LLM=replay` replays cassettes), then [`evolve`].
pub fn evolve_workspace(workspace: &Path, opts: &EvolveOptions) -> Result<EvolveSummary> {
    let router = LlmRouter::from_workspace(workspace)
        .map_err(|e| AgentError::Llm(e.to_string()))?
        .ok_or_else(|| AgentError::Invalid {
            path: workspace.join("recloop.toml").display().to_string(),
            reason: "evolve needs a language model: add an [llm] section (the evaluator and \
                     refiner use role `evolve`, the replays the agent's role)"
                .into(),
        })?;
    let models = EvolveModels::from_router(&router, &opts.agent)?;
    evolve(workspace, opts, &models)
}

/// What happened to one candidate edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    /// Harness version number it was recorded under.
    pub version: u32,
    /// Diagnosis category it addressed.
    pub category: String,
    /// Admitted (at most one per round).
    pub admitted: bool,
    /// The safety check that refused it, if any.
    pub refused: Option<refine::Refusal>,
    /// Paired replay, when it ran.
    pub paired: Option<replay::Paired>,
    /// Why it was admitted or not.
    pub reason: String,
    /// The version it was derived from (the incumbent or an alternative parent).
    #[serde(default)]
    pub parent: Option<u32>,
}

/// One round's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Agent.
    pub agent: String,
    /// Round number.
    pub round: u32,
    /// What started it (`RUN/ITERATION` inside `recloop run`).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Where its replay tasks came from.
    #[serde(default)]
    pub evidence: Evidence,
    /// Incumbent version at the start.
    pub incumbent_version: u32,
    /// Replay tasks used for admission.
    pub tasks: Vec<String>,
    /// Held-out tasks (never shown to the evaluator or refiner).
    pub held_out: Vec<String>,
    /// Incumbent's mean rubric score on the admission tasks.
    pub incumbent_score: f64,
    /// The evaluator's own 0–5 score (reported, not used to admit).
    pub evaluator_score: f64,
    /// The diagnosis.
    pub diagnosis: Vec<gradient::Finding>,
    /// The candidates.
    pub candidates: Vec<CandidateReport>,
    /// Version admitted this round.
    pub admitted_version: Option<u32>,
    /// Held-out mean rubric score before the round.
    pub held_out_before: Option<f64>,
    /// Held-out mean rubric score of the harness in use after the round.
    pub held_out_after: Option<f64>,
    /// Tokens sent.
    pub tokens_in: u64,
    /// Tokens received.
    pub tokens_out: u64,
    /// US dollars spent in the round (known when the models come from a router).
    pub usd: Option<f64>,
    /// Model calls in the round (known when the models come from a router).
    #[serde(default)]
    pub calls: Option<u64>,
}

impl std::fmt::Display for RoundReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "evolve {} round {}: incumbent v{} scores {:.3}/5 on {} replay tasks (evaluator says {:.1})",
            self.agent,
            self.round,
            self.incumbent_version,
            self.incumbent_score,
            self.tasks.len(),
            self.evaluator_score
        )?;
        for d in &self.diagnosis {
            writeln!(f, "  diagnosis [{}] {}", d.category, d.finding)?;
        }
        for c in &self.candidates {
            writeln!(
                f,
                "  v{} [{}]{} {}: {}",
                c.version,
                c.category,
                // an edit built on an alternative parent says so
                c.parent
                    .filter(|p| *p != self.incumbent_version)
                    .map_or(String::new(), |p| format!(" on v{p}")),
                if c.admitted {
                    "ADMITTED"
                } else if c.refused.is_some() {
                    "refused"
                } else {
                    "archived"
                },
                c.reason
            )?;
        }
        match (self.held_out_before, self.held_out_after) {
            (Some(b), Some(a)) => writeln!(
                f,
                "  held-out ({} tasks): {b:.3} -> {a:.3}",
                self.held_out.len()
            )?,
            _ => writeln!(f, "  held-out: none (fewer than 4 tasks)")?,
        }
        write!(
            f,
            "  tokens: {} in, {} out",
            self.tokens_in, self.tokens_out
        )?;
        if let Some(usd) = self.usd {
            write!(f, ", ${usd:.4}")?;
        }
        Ok(())
    }
}

/// What `recloop evolve` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolveSummary {
    /// Rounds finished before this call (found in the journal).
    pub rounds_before: u32,
    /// The rounds run now.
    pub rounds: Vec<RoundReport>,
}

/// The journal's run id of evolve events.
pub const RUN_ID: &str = "evolve";

fn jerr(e: recloop_journal::JournalError) -> AgentError {
    AgentError::Journal(e.to_string())
}

/// Run `opts.rounds` rounds of evolution on `opts.agent`'s harness in `workspace`.
pub fn evolve(
    workspace: &Path,
    opts: &EvolveOptions,
    models: &EvolveModels,
) -> Result<EvolveSummary> {
    let manifest = Manifest::load(workspace)?;
    let repo = Repo::open(workspace)?;
    let root = repo.root.clone();
    let _lock = RunLock::acquire(&repo)?;
    let journal = Journal::for_workspace(&root, None).map_err(jerr)?;
    evolve_locked(&root, &manifest, &journal, opts, models)
}

/// [`evolve`] for a caller that already holds the workspace's run lock (`recloop run`).
pub fn evolve_locked(
    root: &Path,
    manifest: &Manifest,
    journal: &Journal,
    opts: &EvolveOptions,
    models: &EvolveModels,
) -> Result<EvolveSummary> {
    if tasks::Verifier::for_agent(&opts.agent).is_empty() {
        return Err(AgentError::NotFound(format!(
            "agent {:?} cannot be evolved: replay tasks exist for brainstorm and develop",
            opts.agent
        )));
    }
    if opts.evidence == Evidence::History && opts.agent != "develop" {
        return Err(AgentError::Invalid {
            path: "evolve".into(),
            reason: format!(
                "history evidence (SGPO-II) replays merged changes for develop, not {:?}",
                opts.agent
            ),
        });
    }
    if opts.replays < 3 {
        return Err(AgentError::Invalid {
            path: "evolve".into(),
            reason: format!(
                "{} replays per task; paired replay needs at least 3",
                opts.replays
            ),
        });
    }
    let root = root.to_path_buf();
    harness::install_defaults(&root)?;
    versions::sync_disk(journal, &root, &opts.agent)?;
    let on_disk = Harness::load(&root, &opts.agent)?;
    if let Err(event) = versions::in_use(journal, &on_disk)? {
        let key = format!("{RUN_ID}/harness/{}/{}", opts.agent, on_disk.version);
        journal
            .append(
                NewEvent::new(RUN_ID, 0, event)
                    .key(key.clone())
                    .with_id(crate::record::uuid_for(&key)),
            )
            .map_err(jerr)?;
    }
    let rounds_before = rounds_done(journal, &opts.agent)?;
    let mut rounds = Vec::new();
    for round in rounds_before + 1..=rounds_before + opts.rounds {
        rounds.push(run_round(&root, manifest, journal, opts, models, round)?);
    }
    Ok(EvolveSummary {
        rounds_before,
        rounds,
    })
}

/// The finished rounds of `agent` in the journal: (round, its report as JSON).
fn finished_rounds(journal: &Journal, agent: &str) -> Result<Vec<(u32, serde_json::Value)>> {
    Ok(all_finished_rounds(journal)?
        .into_iter()
        .filter(|(a, ..)| a == agent)
        .map(|(_, round, summary)| (round, summary))
        .collect())
}

/// Every finished round in the journal, any agent: (agent, round, its report as JSON).
fn all_finished_rounds(journal: &Journal) -> Result<Vec<(String, u32, serde_json::Value)>> {
    Ok(journal
        .events(&EventFilter {
            types: vec!["evolve_round_finished".into()],
            ..Default::default()
        })
        .map_err(jerr)?
        .into_iter()
        .filter_map(|e| match e.event {
            Event::EvolveRoundFinished {
                agent,
                round,
                summary,
                ..
            } => Some((agent, round, summary)),
            _ => None,
        })
        .collect())
}

/// Rounds of `agent` already finished according to the journal.
pub fn rounds_done(journal: &Journal, agent: &str) -> Result<u32> {
    Ok(finished_rounds(journal, agent)?
        .iter()
        .map(|(round, _)| *round)
        .max()
        .unwrap_or(0))
}

/// Tokens spent so far in a round, checked against its cap.
struct Spend {
    usage: Usage,
    cap: Option<u64>,
}

impl Spend {
    fn add(&mut self, u: Usage) {
        self.usage.add(u);
    }
    fn exhausted(&self) -> bool {
        self.cap.is_some_and(|c| self.usage.total() > c)
    }
}

/// Ask `role`'s model for an answer satisfying `schema` (recloop-llm's structured output: the
/// provider's JSON mode or the schema in the prompt, one repair round, a cut-off answer asked
/// again with a larger limit); returns the answer as JSON text for the role's strict parser.
fn ask(
    role: &str,
    model: &dyn ChatModel,
    system: &str,
    user: String,
    schema: Value,
    spend: &mut Spend,
) -> Result<String> {
    let schema = Schema::compile(role, &schema)
        .map_err(|e| AgentError::Llm(format!("{role} answer schema: {e}")))?;
    let request = ChatRequest::new(vec![Message::system(system), Message::user(user)]);
    let answer =
        structured_with_policy::<Value>(model, &request, &schema, &LengthPolicy::default())
            .map_err(|e| AgentError::Llm(format!("{role} answer ({}): {e}", model.name())))?;
    spend.add(answer.usage);
    Ok(answer.json.to_string())
}

/// The evolve harness: its system prompt (the role-specific answer format is in each request)
/// and its output contract, the refiner's answer schema.
fn evolve_harness(root: &Path) -> Result<(String, Value)> {
    let h = Harness::load(root, "evolve")?;
    let contract = h.contract().map_err(|reason| AgentError::Invalid {
        path: harness::harness_dir(root, "evolve")
            .join("contract.schema.json")
            .display()
            .to_string(),
        reason,
    })?;
    let system = format!(
        "{}\n\n{}\n\n{}\n",
        h.file("instructions.md").trim(),
        h.file("validation.md").trim(),
        h.file("tools.md").trim()
    );
    Ok((system, contract))
}

fn archive_of(versions: &[recloop_journal::HarnessVersionView]) -> Vec<refine::Archived> {
    versions
        .iter()
        .filter(|v| !v.admitted)
        .map(|v| refine::Archived {
            version: v.version,
            category: v.evidence["category"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
            diff: v.diff.clone(),
            reason: v.evidence["reason"].as_str().unwrap_or("").to_string(),
            gain: v.evidence["paired"]["mean_gain"].as_f64(),
        })
        .collect()
}

#[allow(clippy::too_many_lines)]
fn run_round(
    root: &Path,
    manifest: &Manifest,
    journal: &Journal,
    opts: &EvolveOptions,
    models: &EvolveModels,
    round: u32,
) -> Result<RoundReport> {
    let agent = opts.agent.as_str();
    let all_versions = versions::list(journal, agent)?;
    let incumbent_view = versions::latest_admitted(&all_versions).ok_or_else(|| {
        AgentError::NotFound(format!(
            "no admitted harness version of {agent} in the journal"
        ))
    })?;
    let incumbent = versions::harness_of(agent, incumbent_view);
    let contract = incumbent.contract().map_err(|reason| AgentError::Invalid {
        path: format!("{agent} harness v{}", incumbent_view.version),
        reason,
    })?;
    let events = journal.events(&EventFilter::default()).map_err(jerr)?;
    let all = match opts.evidence {
        Evidence::Trajectories => tasks::build_tasks(&events, agent, &contract, opts.max_tasks),
        Evidence::History => {
            history::build_tasks(root, &events, manifest, &contract, opts.max_tasks)?.tasks
        }
    };
    if all.is_empty() {
        return Err(AgentError::NotFound(match opts.evidence {
            Evidence::Trajectories => format!(
                "no trajectories of {agent} in the journal to replay; run `recloop run` with an \
                 LLM brain first"
            ),
            Evidence::History => "no merged change survives the history filters (KEEPs in the \
                                  journal, commits of the production branch between 10 and 5,000 \
                                  lines that are not reverts, reformats or dependency bumps)"
                .to_string(),
        }));
    }
    let grader = models
        .grader
        .as_deref()
        .unwrap_or(models.evaluator.as_ref());
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, t) in all.into_iter().enumerate() {
        if i % 4 == 3 {
            held.push(t);
        } else {
            train.push(t);
        }
    }
    // with fewer than 4 tasks nothing is held out
    if train.is_empty() {
        std::mem::swap(&mut train, &mut held);
    }
    let base_seed = opts.seed.wrapping_add(u64::from(round));
    let before = models.ledger.as_ref().map(|l| l.report().run);
    let mut spend = Spend {
        usage: Usage::default(),
        cap: opts.max_tokens_per_round,
    };
    let (old_runs, u) = replay::run_all(
        models.agent.as_ref(),
        grader,
        &incumbent,
        &train,
        manifest,
        opts.replays,
        base_seed,
    )?;
    spend.add(u);
    let (system, refiner_contract) = evolve_harness(root)?;
    let g_text = ask(
        "evaluator",
        models.evaluator.as_ref(),
        &system,
        gradient::prompt(agent, &incumbent, &train, &old_runs),
        gradient::schema(),
        &mut spend,
    )?;
    let grad = gradient::parse(&g_text)?;
    let archive = archive_of(&all_versions);
    let elites = elites::elites(agent, &all_versions, incumbent_view.version);
    let r_text = ask(
        "refiner",
        models.refiner.as_ref(),
        &system,
        refine::prompt(
            agent,
            &incumbent,
            &grad,
            &archive,
            &elites,
            &refiner_contract,
        ),
        refiner_contract.clone(),
        &mut spend,
    )?;
    let edits = refine::parse(&r_text)?;

    struct Tried {
        edit: refine::CandidateEdit,
        /// The version the edit applies to: the incumbent or an alternative parent.
        parent: u32,
        safe: Option<refine::SafeEdit>,
        report: CandidateReport,
    }
    let mut tried: Vec<Tried> = Vec::new();
    for (version, edit) in (versions::next_number(&all_versions)..).zip(edits) {
        let mut report = CandidateReport {
            version,
            category: edit.category.clone(),
            admitted: false,
            refused: None,
            paired: None,
            reason: String::new(),
            parent: None,
        };
        // the base: the incumbent, or an alternative parent the refiner named
        let base = match edit.parent {
            None => Ok((&incumbent, incumbent_view.version)),
            Some(v) if v == incumbent_view.version => Ok((&incumbent, v)),
            Some(v) => elites
                .iter()
                .find(|e| e.version == v)
                .map(|e| (&e.harness, v))
                .ok_or_else(|| refine::Refusal {
                    check: "parent".into(),
                    reason: format!(
                        "v{v} is not an alternative parent (the incumbent v{}{})",
                        incumbent_view.version,
                        elites
                            .iter()
                            .map(|e| format!(", v{}", e.version))
                            .collect::<String>()
                    ),
                }),
        };
        let parent = base.as_ref().map_or(incumbent_view.version, |b| b.1);
        let safe = match base.and_then(|(h, _)| refine::check(h, &edit)) {
            Err(refusal) => {
                report.reason = format!("{} safety check: {}", refusal.check, refusal.reason);
                report.refused = Some(refusal);
                None
            }
            Ok(safe) if spend.exhausted() => {
                report.reason = format!(
                    "not replayed: the round's token budget ({} tokens) is spent",
                    opts.max_tokens_per_round.unwrap_or(0)
                );
                Some(safe)
            }
            Ok(safe) => {
                let (new_runs, u) = replay::run_all(
                    models.agent.as_ref(),
                    grader,
                    &safe.harness,
                    &train,
                    manifest,
                    opts.replays,
                    base_seed,
                )?;
                spend.add(u);
                let paired = replay::pair(&old_runs, &new_runs, opts.replays)?;
                let decision = replay::decide(&paired, opts.epsilon);
                report.admitted = decision.admissible;
                report.reason = decision.reason;
                report.paired = Some(paired);
                Some(safe)
            }
        };
        report.parent = Some(parent);
        tried.push(Tried {
            edit,
            parent,
            safe,
            report,
        });
    }
    // at most one admission: the largest gain; ties keep the earlier candidate
    let best = tried
        .iter()
        .enumerate()
        .filter(|(_, t)| t.report.admitted)
        .max_by(|(i, a), (j, b)| {
            let ga = a.report.paired.as_ref().map_or(f64::MIN, |p| p.mean_gain);
            let gb = b.report.paired.as_ref().map_or(f64::MIN, |p| p.mean_gain);
            ga.total_cmp(&gb).then(j.cmp(i))
        })
        .map(|(i, _)| i);
    for (i, t) in tried.iter_mut().enumerate() {
        if t.report.admitted && Some(i) != best {
            t.report.admitted = false;
            t.report.reason = format!(
                "{}; not admitted: another candidate of this round gained more",
                t.report.reason
            );
        }
    }
    let admitted = best.and_then(|i| tried[i].safe.as_ref().map(|s| (i, s.harness.clone())));
    let (held_out_before, held_out_after) = if held.is_empty() {
        (None, None)
    } else {
        let (before, u) = replay::run_all(
            models.agent.as_ref(),
            grader,
            &incumbent,
            &held,
            manifest,
            opts.replays,
            base_seed,
        )?;
        spend.add(u);
        let before = replay::mean_score(&before);
        let after = match &admitted {
            Some((_, h)) => {
                let (runs, u) = replay::run_all(
                    models.agent.as_ref(),
                    grader,
                    h,
                    &held,
                    manifest,
                    opts.replays,
                    base_seed,
                )?;
                spend.add(u);
                replay::mean_score(&runs)
            }
            None => before,
        };
        (Some(before), Some(after))
    };
    let report = RoundReport {
        agent: agent.to_string(),
        round,
        trigger: opts.trigger.clone(),
        evidence: opts.evidence,
        incumbent_version: incumbent_view.version,
        tasks: train.iter().map(|t| t.id.clone()).collect(),
        held_out: held.iter().map(|t| t.id.clone()).collect(),
        incumbent_score: replay::mean_score(&old_runs),
        evaluator_score: grad.score,
        diagnosis: grad.diagnosis.clone(),
        candidates: tried.iter().map(|t| t.report.clone()).collect(),
        admitted_version: admitted.as_ref().map(|(i, _)| tried[*i].report.version),
        held_out_before,
        held_out_after,
        tokens_in: spend.usage.input_tokens,
        tokens_out: spend.usage.output_tokens,
        usd: models
            .ledger
            .as_ref()
            .zip(before.as_ref())
            .map(|(l, b)| l.report().run.usd - b.usd),
        calls: models
            .ledger
            .as_ref()
            .zip(before.as_ref())
            .map(|(l, b)| l.report().run.calls - b.calls),
    };
    let mut batch = Vec::new();
    for t in &tried {
        let evidence = serde_json::json!({
            "round": round,
            "category": t.edit.category,
            "rationale": t.edit.rationale,
            "plan": t.edit.plan,
            "parent": t.parent,
            "reason": t.report.reason,
            "refused": t.report.refused,
            "paired": t.report.paired,
            "epsilon": opts.epsilon,
            "replays": opts.replays,
            "tasks": report.tasks,
            "changed_lines": t.safe.as_ref().map(|s| s.changed_lines),
            "added_chars": t.safe.as_ref().map(|s| s.added_chars),
            "evaluator_score": grad.score,
        });
        let spec = t
            .safe
            .as_ref()
            .map_or_else(|| incumbent.spec.clone(), |s| s.harness.spec.clone());
        let diff = t
            .safe
            .as_ref()
            .map_or_else(|| t.edit.diff.clone(), |s| s.diff.clone());
        let key = format!("{RUN_ID}/{agent}/{round}/v{}", t.report.version);
        batch.push(
            NewEvent::new(
                RUN_ID,
                round,
                Event::HarnessVersionCreated {
                    version: t.report.version,
                    parent_version: Some(t.parent),
                    admitted: t.report.admitted,
                    diagnosis: grad.summary(),
                    spec,
                    diff,
                    evidence,
                },
            )
            .key(key.clone())
            .with_id(crate::record::uuid_for(&key)),
        );
    }
    if let Some(usd) = report.usd {
        let key = format!("{RUN_ID}/{agent}/{round}/budget");
        batch.push(
            NewEvent::new(
                RUN_ID,
                round,
                Event::BudgetSpent {
                    agent: "evolve".into(),
                    model: models.refiner.name().to_string(),
                    calls: report.calls.unwrap_or(1),
                    tokens_in: report.tokens_in,
                    tokens_out: report.tokens_out,
                    usd,
                    price_table_version: recloop_llm::PRICES_VERSION.to_string(),
                },
            )
            .key(key.clone())
            .with_id(crate::record::uuid_for(&key)),
        );
    }
    let key = format!("{RUN_ID}/{agent}/{round}/finished");
    batch.push(
        NewEvent::new(
            RUN_ID,
            round,
            Event::EvolveRoundFinished {
                agent: agent.to_string(),
                round,
                admitted_version: report.admitted_version,
                summary: serde_json::to_value(&report).map_err(|e| AgentError::Invalid {
                    path: "evolve round".into(),
                    reason: e.to_string(),
                })?,
            },
        )
        .key(key.clone())
        .with_id(crate::record::uuid_for(&key)),
    );
    journal.append_batch(batch).map_err(jerr)?;
    if let Some((_, h)) = &admitted {
        versions::write(root, h)?;
    }
    Ok(report)
}

/// US dollars the evolve rounds started inside run `run_id` spent (their triggers are
/// `RUN/ITERATION`), every agent: what the run's budget is charged for evolution.
pub fn spent_in_run(journal: &Journal, run_id: &str) -> Result<f64> {
    let prefix = format!("{run_id}/");
    Ok(all_finished_rounds(journal)?
        .iter()
        .filter(|(_, _, summary)| {
            summary["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with(&prefix))
        })
        .filter_map(|(_, _, summary)| summary["usd"].as_f64())
        .sum())
}

/// Whether a round of `agent` was already started by `trigger` (a resumed run does not evolve
/// twice for the same iteration).
pub fn triggered(journal: &Journal, agent: &str, trigger: &str) -> Result<bool> {
    Ok(finished_rounds(journal, agent)?
        .iter()
        .any(|(_, summary)| summary["trigger"].as_str() == Some(trigger)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use recloop_journal::NewEvent;

    #[test]
    fn a_run_is_charged_for_the_evolve_rounds_it_started() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let round = |agent: &str, round: u32, trigger: Option<&str>, usd: Option<f64>| {
            let summary = serde_json::json!({"trigger": trigger, "usd": usd});
            j.append(NewEvent::new(
                RUN_ID,
                0,
                Event::EvolveRoundFinished {
                    agent: agent.into(),
                    round,
                    admitted_version: None,
                    summary,
                },
            ))
            .unwrap();
        };
        round("develop", 1, Some("run-1/2"), Some(0.25));
        round("brainstorm", 1, Some("run-1/2"), Some(0.125));
        round("develop", 2, Some("run-10/1"), Some(4.0)); // another run, whose id shares a prefix
        round("develop", 3, None, Some(8.0)); // `recloop evolve`, outside any run
        round("develop", 4, Some("run-1/4"), None); // models without prices
        assert_eq!(spent_in_run(&j, "run-1").unwrap(), 0.375);
        assert_eq!(spent_in_run(&j, "run-10").unwrap(), 4.0);
        assert_eq!(spent_in_run(&j, "run-2").unwrap(), 0.0);
    }
}
