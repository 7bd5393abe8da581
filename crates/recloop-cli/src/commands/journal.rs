//! `recloop journal ...`.

use clap::Subcommand;

/// Subcommands of `recloop journal`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop journal` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop journal` is not available yet"),
    }
}
