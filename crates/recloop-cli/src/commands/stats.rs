//! `recloop stats ...`.

use clap::Subcommand;

/// Subcommands of `recloop stats`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop stats` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop stats` is not available yet"),
    }
}
