//! `recloop serve`: the dashboard and JSON API over the journal (see `recloop-server`).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `recloop serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Workspace directory (its journal, and its manifest for metric names and limits).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Journal URL or path instead of the workspace's (`postgres://…`, `sqlite://PATH`, PATH).
    #[arg(long)]
    pub journal: Option<String>,
    /// Address to listen on. Loopback by default; any other address needs
    /// `RECLOOP_SERVE_TOKEN`, checked on every request.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
}

/// Serve until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let source = recloop_server::open_source(Some(&args.workspace), args.journal.as_deref())?;
    let env_token = std::env::var(recloop_server::TOKEN_ENV).ok();
    let config = recloop_server::ServeConfig::new(source, args.addr, env_token)?;
    let token = config.token.clone();
    let generated = config.token_generated;
    let reads = config.token_required_for_reads();
    recloop_server::serve_blocking(config, move |bound| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "recloop serve: listening on http://{bound}/");
        if generated {
            let _ = writeln!(
                out,
                "{} is not set: generated a token for this session; open \
                 http://{bound}/?token={token} to answer approvals from the dashboard",
                recloop_server::TOKEN_ENV
            );
        } else if reads {
            let _ = writeln!(
                out,
                "every request needs the token: Authorization: Bearer ${0}, or open \
                 http://{bound}/?token=${0} once",
                recloop_server::TOKEN_ENV
            );
        }
        let _ = out.flush();
    })?;
    Ok(())
}
