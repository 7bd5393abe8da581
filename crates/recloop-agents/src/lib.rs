//! Brainstorm, Develop, Evaluate and Evolve, and the orchestrator of the loop.
//!
//! - [`harness`]: each agent's text files (instructions, validation, contract, tools);
//! - [`git`], [`diff`], [`sandbox`], [`tools`]: worktrees, unified diffs, confined commands;
//! - [`space`], [`tpe`], [`brain`]: the built-in brain (typed mutations + TPE) and the LLM brain;
//! - [`develop`] (gates, repairs, Q_code), [`evaluate`] (cascade, verdict, knowledge assets);
//! - [`executor`]: evaluation jobs on the local sandbox or Slurm, journaled and retried;
//! - [`orchestrator`]: `recloop run`, resumable from the journal;
//! - [`evolve`]: SGPO — replay tasks, semantic gradient, bounded edits, paired-replay admission;
//! - [`bench`]: built-in brain vs random search.

pub mod admission;
pub mod analysis;
pub mod approvals;
pub mod bench;
pub mod brain;
pub mod calendar;
pub mod config_edit;
pub mod develop;
pub mod diff;
pub mod error;
pub mod evaluate;
pub mod evaluator;
pub mod evidence;
pub mod evolve;
pub mod example;
pub mod executor;
pub mod git;
pub mod harness;
pub mod history;
pub mod loops_bench;
pub mod offline_tools;
/// The online platforms (they live in `recloop-online`).
pub use recloop_online::platform as online;
pub mod orchestrator;
pub mod personas;
pub mod quality;
pub mod record;
pub mod sandbox;
pub mod space;
pub mod stages;
pub mod tools;
pub mod tpe;
pub mod workers;
pub mod workers_bench;

pub use brain::{Brain, builtin::BuiltinBrain, llm::LlmBrain};
pub use error::{AgentError, Result};
pub use orchestrator::{RunOptions, RunSummary, run};
