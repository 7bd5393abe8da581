//! `recloop init --example NAME DIR`.

use std::path::PathBuf;

/// Arguments of `recloop init`.
#[derive(clap::Args)]
pub struct Args {
    /// Built-in example to write (`movielens`).
    #[arg(long)]
    pub example: String,
    /// Directory to create.
    pub dir: PathBuf,
}

/// Write the example workspace.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "example {} not available yet ({})",
        args.example,
        args.dir.display()
    )
}
