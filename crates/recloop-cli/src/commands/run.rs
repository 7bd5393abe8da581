//! `recloop run`, `recloop brainstorm`, `recloop develop ID`, `recloop evaluate ID`.

use super::approvals::{TerminalPrompter, UnattendedArg};
use recloop_agents::approvals::Approvals;
use recloop_agents::executor::CancelToken;
use recloop_agents::orchestrator::{RunOptions, RunSummary};
use recloop_agents::stages;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Arguments of `recloop run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Workspace directory (holds `recloop.toml`).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Iterations to run.
    #[arg(long)]
    pub iterations: Option<u32>,
    /// Candidates in flight at once.
    #[arg(long)]
    pub workers: Option<u32>,
    /// End the run after the iteration in which its online experiments reach this many days
    /// (on the simulator, simulated days: weeks of the loop in minutes).
    #[arg(long)]
    pub simulated_days: Option<u32>,
    /// Spending limit in US dollars for language-model calls.
    #[arg(long)]
    pub budget_usd: Option<f64>,
    /// Every KEEP waits for a person's approval before it is merged (attention-level guardrails,
    /// offline-only KEEPs and probe-first proposals always do).
    #[arg(long)]
    pub approve: bool,
    /// When nobody is at the terminal to answer an approval: `wait` stops the run at it
    /// (answer with `recloop approve ID` / `recloop reject ID --why TEXT`, then `recloop run`
    /// continues), `reject` declines it (recorded as declined by policy).
    #[arg(long, value_enum, default_value_t = UnattendedArg::Wait)]
    pub unattended: UnattendedArg,
    /// Seed (default: `[run] seed` of the manifest).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Which brain proposes and implements.
    #[arg(long, value_enum, default_value_t = BrainArg::Auto)]
    pub brain: BrainArg,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The journal: `postgres://…` lets several `recloop run` workers (each in its own clone
    /// of the workspace, `[workers]` in recloop.toml) share one loop; default
    /// `$RECLOOP_JOURNAL_URL`, else the workspace's SQLite journal (one process).
    #[arg(long)]
    pub journal: Option<String>,
}

/// `--brain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BrainArg {
    /// The LLM brain when `[llm]` is configured, else the built-in brain.
    Auto,
    /// Typed mutations of the pipeline searched by TPE (no model).
    Builtin,
    /// Uniformly random mutations (the baseline).
    Random,
    /// The LLM brain (`[llm]` required).
    Llm,
}

impl BrainArg {
    /// The name `stages::brain_for` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BrainArg::Auto => "auto",
            BrainArg::Builtin => "builtin",
            BrainArg::Random => "random",
            BrainArg::Llm => "llm",
        }
    }
}

/// Arguments of `recloop brainstorm` (no id: it proposes from the current production).
#[derive(clap::Args)]
pub struct BrainstormArgs {
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of a single stage.
#[derive(clap::Args)]
pub struct StageArgs {
    /// Workspace directory.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Proposal id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit status of `recloop run` and `recloop demo` when the run ran out of budget (the summary
/// is printed and `run_finished` records `budget_exhausted`).
pub const EXIT_BUDGET_EXHAUSTED: u8 = 3;
/// Exit status when the run stopped at a decision that waits for a person.
pub const EXIT_WAITING_FOR_APPROVAL: u8 = 4;

/// The approvals of a run: the person at this terminal when there is one, then the policy.
pub fn approvals(unattended: UnattendedArg) -> Approvals {
    Approvals {
        prompter: TerminalPrompter::if_interactive(),
        unattended: unattended.into(),
    }
}

/// Build the run options from the arguments.
pub fn options(args: &RunArgs, progress: bool) -> anyhow::Result<RunOptions> {
    let brain = stages::brain_with_budget(&args.workspace, args.brain.as_str(), args.budget_usd)?;
    Ok(RunOptions {
        iterations: args.iterations,
        workers: args.workers,
        budget_usd: args.budget_usd,
        approve: args.approve,
        approvals: approvals(args.unattended),
        seed: args.seed,
        progress,
        brain: Some(brain),
        online: None,
        evaluator: None,
        stop_after_steps: None,
        simulated_days: args.simulated_days,
        cancel: Default::default(),
        evolve_models: None,
        journal: args.journal.clone(),
    })
}

/// Signals (SIGINT, SIGTERM) received since [`cancel_on_signal`] installed its handler.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// When the workspace runs evaluation jobs on an executor (`[executor]`), the first Ctrl-C (or
/// SIGTERM) cancels the run: its jobs are cancelled and journaled, and the run stops, resumable
/// by `recloop run`. A second signal, or 60 s without the run stopping, exits at once (status
/// 130). Without `[executor]` the signals keep their default effect.
fn cancel_on_signal(workspace: &std::path::Path, token: &CancelToken) {
    let has_executor = recloop_core::Manifest::load(workspace).is_ok_and(|m| m.executor.is_some());
    if !has_executor {
        return;
    }
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let token = token.clone();
    let spawned = std::thread::Builder::new()
        .name("recloop-signals".into())
        .spawn(move || {
            while SIGNALS.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "\ncancelling the run: its evaluation jobs are being cancelled \
                 (signal again to quit at once)"
            );
            token.cancel();
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(130);
        });
    if let Err(e) = spawned {
        eprintln!("warning: Ctrl-C will not cancel evaluation jobs: {e}");
    }
}

/// Print a summary (and, for a run that stopped early, what to do next); returns the exit
/// status: 0 completed, [`EXIT_BUDGET_EXHAUSTED`], [`EXIT_WAITING_FOR_APPROVAL`].
pub fn print_summary(
    s: &RunSummary,
    json: bool,
    workspace: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        println!("{s}");
    }
    Ok(match s.outcome.as_str() {
        "budget_exhausted" => {
            eprintln!("the run's budget is exhausted (exit status {EXIT_BUDGET_EXHAUSTED})");
            ExitCode::from(EXIT_BUDGET_EXHAUSTED)
        }
        "waiting_for_approval" => {
            let ws = workspace.display();
            eprintln!(
                "the run stopped at a decision that needs a person (exit status {EXIT_WAITING_FOR_APPROVAL}):\n  \
                 recloop approvals --workspace {ws}\n  recloop approve ID --workspace {ws}   or   \
                 recloop reject ID --why TEXT --workspace {ws}\nthen `recloop run --workspace {ws}` continues it"
            );
            ExitCode::from(EXIT_WAITING_FOR_APPROVAL)
        }
        _ => ExitCode::SUCCESS,
    })
}

/// Run the loop.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args, !args.json)?;
    cancel_on_signal(&args.workspace, &opts.cancel);
    let summary = match recloop_agents::orchestrator::run(&args.workspace, &opts) {
        Err(recloop_agents::AgentError::Cancelled) => {
            eprintln!(
                "the run was cancelled, and its evaluation jobs with it (exit status 130); \
                 `recloop run --workspace {}` continues it",
                args.workspace.display()
            );
            return Ok(ExitCode::from(130));
        }
        r => r?,
    };
    print_summary(&summary, args.json, &args.workspace)
}

/// Run Brainstorm only.
pub fn brainstorm(args: BrainstormArgs) -> anyhow::Result<()> {
    let proposals = stages::brainstorm(&args.workspace)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&proposals)?);
    } else {
        for p in proposals {
            println!("{}  S={:.3}  [{:?}]  {}", p.id, p.score, p.kind, p.title);
        }
    }
    Ok(())
}

/// Run Develop only.
pub fn develop(args: StageArgs) -> anyhow::Result<()> {
    let r = stages::develop(&args.workspace, &args.id)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// Run Evaluate only.
pub fn evaluate(args: StageArgs) -> anyhow::Result<()> {
    let v = stages::evaluate(&args.workspace, &args.id, &approvals(UnattendedArg::Wait))?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
