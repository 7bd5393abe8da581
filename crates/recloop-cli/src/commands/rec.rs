//! `recloop rec ...`.

use clap::Subcommand;

/// Subcommands of `recloop rec`.
#[derive(Subcommand)]
pub enum Command {
    /// Placeholder until this command group lands.
    Todo,
}

/// Execute a `recloop rec` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Todo => anyhow::bail!("`recloop rec` is not available yet"),
    }
}
