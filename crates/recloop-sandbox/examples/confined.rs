//! Run one shell command confined, with the current directory as worktree:
//! `cargo run -p recloop-sandbox --example confined -- [--unconfined|--namespaces] 'COMMAND'`.
//! Without a flag the backend is [`Backend::detect`]'s choice. Prints the outcome as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_sandbox::{Backend, Sandbox};
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let backend = match args.first().map(String::as_str) {
        Some("--unconfined") => Backend::Unconfined,
        Some("--namespaces") => Backend::Namespaces,
        _ => {
            args.insert(0, String::new());
            Backend::detect()?
        }
    };
    let command = args.get(1..).unwrap_or_default().join(" ");
    let sb = Sandbox::new(backend, Duration::from_secs(60), 2048);
    let out = sb.run(&std::env::current_dir()?, &command)?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    eprintln!(
        "[{} | code {:?} | {} ms{}]",
        out.confinement,
        out.code,
        out.duration_ms,
        if out.timed_out { " | timed out" } else { "" }
    );
    std::process::exit(out.code.unwrap_or(1));
}
