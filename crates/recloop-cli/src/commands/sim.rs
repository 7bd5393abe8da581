//! `recloop sim ...`.

use clap::Subcommand;

/// Subcommands of `recloop sim`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop sim` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop sim` is not available yet"),
    }
}
