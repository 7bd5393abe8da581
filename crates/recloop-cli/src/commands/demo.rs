//! `recloop demo`: the main job on the embedded defaults.

/// Arguments of `recloop demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to create the example workspace.
    #[arg(long, default_value = "recloop-demo")]
    pub dir: std::path::PathBuf,
}

/// Run the main job.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`recloop demo` is not available yet")
}
