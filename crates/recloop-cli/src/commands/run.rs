//! `recloop run`, `recloop brainstorm`, `recloop develop ID`, `recloop evaluate ID`.

use std::path::PathBuf;

/// Arguments of `recloop run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Workspace directory (holds `recloop.toml`).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Iterations to run.
    #[arg(long)]
    pub iterations: Option<u32>,
    /// Candidates in flight at once.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Spending limit in US dollars for language-model calls.
    #[arg(long)]
    pub budget_usd: Option<f64>,
    /// Wait for a person's approval when a guardrail crosses its attention threshold.
    #[arg(long)]
    pub approve: bool,
}

/// Arguments of a single stage.
#[derive(clap::Args)]
pub struct StageArgs {
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Proposal or candidate id (not used by brainstorm).
    pub id: Option<String>,
}

/// Run the loop.
pub fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`recloop run` is not available yet")
}

/// Run Brainstorm only.
pub fn brainstorm(_args: StageArgs) -> anyhow::Result<()> {
    anyhow::bail!("`recloop brainstorm` is not available yet")
}

/// Run Develop only.
pub fn develop(_args: StageArgs) -> anyhow::Result<()> {
    anyhow::bail!("`recloop develop` is not available yet")
}

/// Run Evaluate only.
pub fn evaluate(_args: StageArgs) -> anyhow::Result<()> {
    anyhow::bail!("`recloop evaluate` is not available yet")
}
