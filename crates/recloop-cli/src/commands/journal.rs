//! `recloop journal ...`: inspect, search, export and import the experiment journal.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use recloop_journal::{EventFilter, Journal, SearchFilter};
use std::io::Write;
use std::path::PathBuf;

/// Which journal to open.
#[derive(Args, Clone)]
pub struct Target {
    /// Workspace directory; the journal is `DIR/.recloop/journal.db`.
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Journal URL or path instead (`postgres://…[?schema=NAME]`); default `$RECLOOP_JOURNAL_URL`.
    #[arg(long)]
    pub url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Target {
    fn open(&self) -> anyhow::Result<Journal> {
        Ok(Journal::for_workspace(
            &self.workspace,
            self.url.as_deref(),
        )?)
    }
}

/// Subcommands of `recloop journal`.
#[derive(Subcommand)]
pub enum Command {
    /// List experiments (or events with `--events`).
    List {
        #[command(flatten)]
        target: Target,
        /// List raw events instead of experiments.
        #[arg(long)]
        events: bool,
        /// Only this run (events).
        #[arg(long)]
        run: Option<String>,
        /// Only events of these types (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// At most this many rows (newest).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show an experiment with its lineage (by proposal id) or one event (by seq or uuid).
    Show {
        #[command(flatten)]
        target: Target,
        /// Proposal id, event sequence number or event uuid.
        id: String,
    },
    /// Full-text search over hypotheses, diagnoses and lessons.
    Search {
        #[command(flatten)]
        target: Target,
        /// Words to find (all must match unless `--any`).
        text: String,
        /// Document kinds: hypothesis, failure, verdict, experiment_record, lesson, diagnosis.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Pipeline stage.
        #[arg(long)]
        stage: Option<String>,
        /// Objective (metric).
        #[arg(long)]
        objective: Option<String>,
        /// Segment.
        #[arg(long)]
        segment: Option<String>,
        /// Lever.
        #[arg(long)]
        lever: Option<String>,
        /// Status (lessons: contested, confirmed, falsified).
        #[arg(long)]
        status: Option<String>,
        /// Match any word.
        #[arg(long)]
        any: bool,
        /// Maximum hits.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Lessons with their status.
    Lessons {
        #[command(flatten)]
        target: Target,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Export the journal as JSONL.
    Export {
        #[command(flatten)]
        target: Target,
        /// JSON Lines format (the only format).
        #[arg(long, required = true)]
        jsonl: bool,
        /// Output file (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Include artifacts (hex-encoded).
        #[arg(long)]
        with_artifacts: bool,
    },
    /// Import a JSONL export into an empty journal.
    Import {
        #[command(flatten)]
        target: Target,
        /// Export file (`-` for standard input).
        file: PathBuf,
    },
    /// Check the log (sequence, checksums, parents) and the database file.
    Verify {
        #[command(flatten)]
        target: Target,
    },
    /// Drop and rebuild every view from the log.
    Rebuild {
        #[command(flatten)]
        target: Target,
    },
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

/// Execute a `recloop journal` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::List {
            target,
            events,
            run,
            types,
            limit,
        } => {
            let j = target.open()?;
            if events {
                let mut evs = j.events(&EventFilter {
                    run_id: run,
                    types,
                    limit,
                    newest_first: limit.is_some(),
                    ..EventFilter::default()
                })?;
                evs.sort_by_key(|e| e.seq);
                if target.json {
                    return print_json(&evs);
                }
                for e in evs {
                    println!(
                        "{:>6}  {}  {:<10} it{:<3} {:<24} {}",
                        e.seq,
                        e.timestamp.format("%Y-%m-%d %H:%M:%S"),
                        short(&e.run_id, 10),
                        e.iteration,
                        e.event.type_name(),
                        e.event.proposal_id().unwrap_or("")
                    );
                }
            } else {
                let mut exps = j.experiments()?;
                if let Some(l) = limit {
                    let skip = exps.len().saturating_sub(l);
                    exps.drain(..skip);
                }
                if target.json {
                    return print_json(&exps);
                }
                for e in exps {
                    let metric = e
                        .offline_metrics
                        .get(&e.target_metric)
                        .map(|v| format!("{}={v:.4}", e.target_metric))
                        .unwrap_or_default();
                    println!(
                        "{:<16} {:<10} {:<8} {:<22} {}",
                        short(&e.proposal_id, 16),
                        e.status,
                        e.decision.map(|d| d.to_string()).unwrap_or_default(),
                        metric,
                        short(&e.title, 60)
                    );
                }
            }
        }
        Command::Show { target, id } => {
            let j = target.open()?;
            if let Some(e) = j.experiment(&id)? {
                let lineage = j.lineage(&id)?;
                if target.json {
                    return print_json(&serde_json::json!({"experiment": e, "lineage": lineage}));
                }
                println!("experiment {} [{}] {}", e.proposal_id, e.status, e.title);
                println!("  hypothesis: {}", e.hypothesis);
                if let Some(d) = e.decision {
                    println!(
                        "  verdict: {d} — {}",
                        e.verdict_reason.as_deref().unwrap_or("")
                    );
                }
                if let Some(r) = &e.reason {
                    println!("  reason: {r}");
                }
                if !e.offline_metrics.is_empty() {
                    println!("  offline: {:?}", e.offline_metrics);
                }
                println!("  lineage:");
                for ev in lineage {
                    println!("    #{:<6} {}", ev.seq, ev.event.type_name());
                }
                return Ok(());
            }
            let rec = if let Ok(seq) = id.parse::<u64>() {
                j.event(seq)?
            } else if let Ok(uuid) = uuid::Uuid::parse_str(&id) {
                j.event_by_id(uuid)?
            } else {
                None
            };
            let Some(rec) = rec else {
                bail!(
                    "no experiment, event number or event id `{id}` in journal {}",
                    j.location()
                );
            };
            print_json(&rec)?;
        }
        Command::Search {
            target,
            text,
            kinds,
            stage,
            objective,
            segment,
            lever,
            status,
            any,
            limit,
        } => {
            let j = target.open()?;
            let hits = j.search(
                &text,
                &SearchFilter {
                    kinds,
                    stage,
                    objective,
                    segment,
                    lever,
                    status,
                    run_id: None,
                    any_word: any,
                    limit: Some(limit),
                },
            )?;
            if target.json {
                return print_json(&hits);
            }
            if hits.is_empty() {
                println!("no matches");
            }
            for h in hits {
                println!(
                    "{:<28} {:<11} {:<10} {:<22} {}",
                    short(&h.doc_id, 28),
                    h.kind,
                    h.stage.as_deref().unwrap_or("-"),
                    short(h.lever.as_deref().unwrap_or("-"), 22),
                    short(&format!("{}: {}", h.title, h.body), 80)
                );
            }
        }
        Command::Lessons { target, status } => {
            let j = target.open()?;
            let lessons: Vec<_> = j
                .lessons()?
                .into_iter()
                .filter(|l| {
                    status.as_deref().is_none_or(|s| {
                        serde_json::to_value(l.lesson.status)
                            .ok()
                            .and_then(|v| v.as_str().map(|x| x == s))
                            .unwrap_or(false)
                    })
                })
                .collect();
            if target.json {
                return print_json(&lessons);
            }
            for l in lessons {
                println!(
                    "{:<16} {:<10} {:<13} runs={} {}",
                    short(&l.lesson.id, 16),
                    format!("{:?}", l.lesson.status).to_lowercase(),
                    format!("{:?}", l.lesson.kind).to_lowercase(),
                    l.lesson.supporting_runs.len(),
                    short(&l.lesson.text, 70)
                );
            }
        }
        Command::Export {
            target,
            jsonl: _,
            output,
            with_artifacts,
        } => {
            let j = target.open()?;
            let summary = match &output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    j.export_jsonl(std::io::BufWriter::new(f), with_artifacts)?
                }
                None => {
                    let out = std::io::stdout();
                    j.export_jsonl(std::io::BufWriter::new(out.lock()), with_artifacts)?
                }
            };
            if output.is_some() || target.json {
                eprintln!(
                    "exported {} events, {} artifacts",
                    summary.events, summary.artifacts
                );
            }
        }
        Command::Import { target, file } => {
            let j = target.open()?;
            let summary = if file.as_os_str() == "-" {
                j.import_jsonl(std::io::stdin().lock(), "stdin")?
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                j.import_jsonl(std::io::BufReader::new(f), &file.display().to_string())?
            };
            if target.json {
                return print_json(&summary);
            }
            println!(
                "imported {} events and {} artifacts into {}",
                summary.events,
                summary.artifacts,
                j.location()
            );
        }
        Command::Verify { target } => {
            let j = target.open()?;
            let report = j.verify()?;
            if target.json {
                return print_json(&report);
            }
            println!(
                "ok: {} events, {} runs, sequence 1..{} without gaps, checksums and parents valid",
                report.events, report.runs, report.last_seq
            );
        }
        Command::Rebuild { target } => {
            let j = target.open()?;
            let n = j.rebuild_views()?;
            if target.json {
                return print_json(&serde_json::json!({"replayed": n}));
            }
            println!("rebuilt every view from {n} events");
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}
