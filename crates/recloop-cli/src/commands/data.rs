//! `recloop data ...`.

use clap::Subcommand;

/// Subcommands of `recloop data`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop data` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop data` is not available yet"),
    }
}
