//! `recloop approvals`, `recloop approve ID`, `recloop reject ID --why TEXT`, and the terminal
//! prompter a run uses to ask the person at its terminal.

use recloop_agents::approvals::{self, Answer, ApprovalRequest, Prompter, Unattended};
use recloop_core::Approver;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// What happens to a decision that needs a person when nobody is at the terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UnattendedArg {
    /// Stop the run at the approval; `recloop approve ID` / `reject ID`, then `recloop run`.
    #[default]
    Wait,
    /// Decline it and go on (recorded as declined by policy; no person was asked).
    Reject,
}

impl From<UnattendedArg> for Unattended {
    fn from(a: UnattendedArg) -> Unattended {
        match a {
            UnattendedArg::Wait => Unattended::Wait,
            UnattendedArg::Reject => Unattended::Reject,
        }
    }
}

/// Asks the person at this terminal (stdin and stderr are terminals).
pub struct TerminalPrompter;

impl TerminalPrompter {
    /// A prompter when a person can be asked here, else None.
    pub fn if_interactive() -> Option<std::sync::Arc<dyn Prompter>> {
        (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
            .then(|| std::sync::Arc::new(TerminalPrompter) as std::sync::Arc<dyn Prompter>)
    }
}

/// A person answering `via` the terminal or the CLI, with their user name when known.
fn person(via: &str) -> Approver {
    Approver::Person {
        via: match std::env::var("USER") {
            Ok(user) => format!("{via}, user {user}"),
            Err(_) => via.to_string(),
        },
    }
}

fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

impl Prompter for TerminalPrompter {
    fn ask(&self, r: &ApprovalRequest) -> Option<Answer> {
        let mut err = std::io::stderr();
        let evidence = serde_json::to_string_pretty(&r.evidence).unwrap_or_default();
        let _ = writeln!(
            err,
            "\napproval {} ({}):\n{}\nevidence:\n{evidence}",
            r.id,
            r.kind.as_str(),
            r.question
        );
        let by = person("terminal");
        loop {
            let _ = write!(err, "approve? [y/n] ");
            let _ = err.flush();
            match read_line()?.to_ascii_lowercase().as_str() {
                "y" | "yes" => {
                    return Some(Answer {
                        approved: true,
                        by,
                        reason: String::new(),
                    });
                }
                "n" | "no" => {
                    let reason = loop {
                        let _ = write!(err, "why (one line): ");
                        let _ = err.flush();
                        let why = read_line()?;
                        if !why.is_empty() {
                            break why;
                        }
                    };
                    return Some(Answer {
                        approved: false,
                        by,
                        reason,
                    });
                }
                _ => {}
            }
        }
    }
}

/// Arguments of `recloop approvals`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Show answered approvals too.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recloop approve ID` and `recloop reject ID`.
#[derive(clap::Args)]
pub struct AnswerArgs {
    /// Approval id (from `recloop approvals`).
    pub id: String,
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Why (required to reject).
    #[arg(long)]
    pub why: Option<String>,
}

fn journal(workspace: &std::path::Path) -> anyhow::Result<recloop_journal::Journal> {
    Ok(recloop_journal::Journal::for_workspace(workspace, None)?)
}

/// List pending (or all) approvals.
pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let all = approvals::list(&journal(&args.workspace)?)?;
    let shown: Vec<_> = all
        .into_iter()
        .filter(|a| args.all || a.answer.is_none())
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    if shown.is_empty() {
        println!("no pending approvals");
    }
    for a in shown {
        let status = match &a.answer {
            None => "PENDING".to_string(),
            Some((true, by, _)) => format!("approved by {by}"),
            Some((false, by, why)) => format!("rejected by {by}: {why}"),
        };
        println!(
            "{}  [{}] {} ({}, iteration {})\n  {}\n  evidence: {}",
            a.id,
            a.kind.as_str(),
            status,
            a.run_id,
            a.iteration,
            a.question,
            a.evidence
        );
    }
    Ok(())
}

fn answer(args: AnswerArgs, approved: bool) -> anyhow::Result<()> {
    let why = args.why.unwrap_or_default();
    let by = person("cli");
    let a = approvals::answer(&journal(&args.workspace)?, &args.id, approved, &why, by)?;
    println!(
        "{} {}: {}\n`recloop run --workspace {}` continues the run from here.",
        if approved { "approved" } else { "rejected" },
        a.id,
        a.question,
        args.workspace.display()
    );
    Ok(())
}

/// `recloop approve ID`.
pub fn approve(args: AnswerArgs) -> anyhow::Result<()> {
    answer(args, true)
}

/// `recloop reject ID --why TEXT`.
pub fn reject(args: AnswerArgs) -> anyhow::Result<()> {
    if args.why.as_deref().is_none_or(|w| w.trim().is_empty()) {
        anyhow::bail!(
            "a rejection needs a reason: recloop reject {} --why TEXT",
            args.id
        );
    }
    answer(args, false)
}
