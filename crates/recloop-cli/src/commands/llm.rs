//! `recloop llm ...`.

use clap::Subcommand;

/// Subcommands of `recloop llm`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop llm` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop llm` is not available yet"),
    }
}
