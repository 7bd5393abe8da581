//! The two brains behind one trait: the built-in brain (typed mutations searched by TPE, no model)
//! and the LLM brain (prompts from the harness, answers checked against the contract).

pub mod builtin;
pub mod declared;
pub mod llm;
pub mod policy;

use crate::error::Result;
use crate::harness::Harness;
use crate::history::History;
use crate::tools::Tools;
use recloop_core::{Manifest, Proposal, TrajectoryStep};
use recloop_rec::pipeline::PipelineSpec;
use std::path::Path;

/// What Brainstorm sees.
pub struct BrainstormInput<'a> {
    /// The workspace manifest.
    pub manifest: &'a Manifest,
    /// The production checkout (read-only use).
    pub workspace: &'a Path,
    /// Production's pipeline spec, when the workspace has a `pipeline.toml`.
    pub production_spec: Option<&'a PipelineSpec>,
    /// The journal condensed.
    pub history: &'a History,
    /// Evidence text for prompts (best-first deltas, similar experiments, lessons, failures).
    pub evidence: &'a str,
    /// Proposals wanted.
    pub batch_size: usize,
    /// Seed of this batch.
    pub seed: u64,
    /// Prefix of proposal ids (e.g. `r1-i03`).
    pub id_prefix: &'a str,
    /// The agent's harness.
    pub harness: &'a Harness,
    /// Where the brain records its model spending (journaled by the caller).
    pub spend: &'a SpendLog,
    /// The analysis tools (`run_sql_query`, `journal_search`), when the caller has a journal.
    pub analysis: Option<&'a crate::analysis::Analysis>,
    /// The persona proposing (`[[personas]]`): its scope, tools, instructions and model role;
    /// `None` for the generalist Brainstorm.
    pub persona: Option<&'a recloop_core::Persona>,
}

/// What one agent role spent on one model during a stage call (a `budget_spent` event).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpend {
    /// Agent role (`brainstorm`, `develop`, ...).
    pub agent: String,
    /// Model that answered.
    pub model: String,
    /// Model calls (length retries and repair rounds included).
    pub calls: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// US dollars.
    pub usd: f64,
    /// Where the prices came from (recloop-llm's price table version, or `recloop.toml`).
    pub price_table_version: String,
}

/// Model spending of one stage call, per agent role and model: a brain records every call it
/// makes here (failed stages included), the loop journals it as `budget_spent` events.
#[derive(Debug, Default)]
pub struct SpendLog {
    entries: std::sync::Mutex<Vec<ModelSpend>>,
}

impl SpendLog {
    /// An empty log.
    pub fn new() -> SpendLog {
        SpendLog::default()
    }

    /// Add one call of `agent` on `model`.
    pub fn record(
        &self,
        agent: &str,
        model: &str,
        tokens_in: u64,
        tokens_out: u64,
        usd: f64,
        prices: &str,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        match entries
            .iter_mut()
            .find(|e| e.agent == agent && e.model == model)
        {
            Some(e) => {
                e.calls += 1;
                e.tokens_in += tokens_in;
                e.tokens_out += tokens_out;
                e.usd += usd;
            }
            None => entries.push(ModelSpend {
                agent: agent.to_string(),
                model: model.to_string(),
                calls: 1,
                tokens_in,
                tokens_out,
                usd,
                price_table_version: prices.to_string(),
            }),
        }
    }

    /// Everything recorded so far, in first-call order; the log is empty afterwards.
    pub fn take(&self) -> Vec<ModelSpend> {
        self.entries
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

/// A proposal that failed admission, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The proposal (as far as it could be built).
    pub proposal: Proposal,
    /// Why.
    pub reason: String,
}

/// What Brainstorm produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BrainstormOutput {
    /// Admitted proposals, best S first.
    pub proposals: Vec<Proposal>,
    /// Rejected proposals with reasons.
    pub rejected: Vec<Rejection>,
    /// The agent's step for the trajectory log.
    pub trajectory: TrajectoryStep,
}

/// What Develop sees.
pub struct DevelopInput<'a> {
    /// The workspace manifest.
    pub manifest: &'a Manifest,
    /// The candidate's worktree.
    pub worktree: &'a Path,
    /// The proposal to implement.
    pub proposal: &'a Proposal,
    /// Repair instructions from failed gates (None on the first attempt).
    pub repair: Option<&'a str>,
    /// The agent's harness.
    pub harness: &'a Harness,
    /// The tools (list/read/search files, apply diff, schema, run command).
    pub tools: &'a Tools,
    /// The file map, the README's beginning and the journal's pitfalls for this proposal.
    pub context: &'a str,
    /// The conversation so far for this proposal (a language-model brain continues it in a
    /// repair round, so the model sees what it tried; others ignore it).
    pub transcript: &'a std::sync::Mutex<Vec<recloop_llm::Message>>,
    /// Where the brain records its model spending (journaled by the caller).
    pub spend: &'a SpendLog,
}

/// What Develop produced: the change was applied through the tools; this is the record.
#[derive(Debug, Clone, PartialEq)]
pub struct DevelopOutput {
    /// Summary of the change.
    pub summary: String,
    /// Files the agent reported changing.
    pub files_changed: Vec<String>,
    /// Fields or files referenced that do not exist (counted into Q_code).
    pub hallucinated_fields: u32,
    /// The agent's step for the trajectory log.
    pub trajectory: TrajectoryStep,
}

/// A brain: proposes and implements.
pub trait Brain: Send + Sync {
    /// `builtin`, `random` or `llm:<model>`.
    fn name(&self) -> String;
    /// Propose a batch.
    fn brainstorm(&self, input: &BrainstormInput<'_>) -> Result<BrainstormOutput>;
    /// Implement one proposal in its worktree (through `input.tools`).
    fn develop(&self, input: &DevelopInput<'_>) -> Result<DevelopOutput>;
    /// US dollars spent so far.
    fn spent_usd(&self) -> f64 {
        0.0
    }
    /// The numbers a search brain runs on (the built-in brain's policy), for the run's record.
    fn policy(&self) -> Option<serde_json::Value> {
        None
    }
    /// True when this brain writes arbitrary changes (code an LLM wrote), which the workspace's
    /// commands then run: those commands must be confined, and failed gates get repair rounds.
    /// False for typed edits of declared parameters (the built-in brain), whose commands run
    /// only the workspace's own code.
    fn writes_code(&self) -> bool {
        true
    }
}
