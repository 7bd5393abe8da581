//! `recloop init --example NAME DIR`.

use crate::choices::ExampleArg;
use std::path::PathBuf;

/// Arguments of `recloop init`.
#[derive(clap::Args)]
pub struct Args {
    /// Built-in example to write.
    #[arg(long, value_enum)]
    pub example: ExampleArg,
    /// Dataset the example evaluates on, instead of its default (`ml-100k`, `ml-1m`, `synthetic`).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Directory to create (must be empty or absent).
    pub dir: PathBuf,
}

/// Write the example workspace as a git repository with one commit.
pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = recloop_agents::example::ExampleOptions {
        dataset: args.dataset.clone(),
        ..Default::default()
    };
    recloop_agents::example::init_example(args.example.as_str(), &args.dir, &opts, None)?;
    println!(
        "wrote the {} example to {} (git repository on branch main)",
        args.example.as_str(),
        args.dir.display()
    );
    Ok(())
}
