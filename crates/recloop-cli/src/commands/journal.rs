//! `recloop journal ...`: inspect, search, export and import the experiment journal.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use recloop_journal::{Event, EventFilter, Journal, SearchFilter};
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
        /// Only this run.
        #[arg(long)]
        run: Option<String>,
        /// Only events of these types (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// At most this many rows (newest).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show an experiment with its lineage (by proposal id), a harness version (`AGENT@N`, e.g.
    /// `develop@2`) or one event (by seq or uuid).
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

fn print_json<T: serde::Serialize>(out: &mut dyn Write, v: &T) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
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

/// Lesson statuses accepted by `lessons --status`.
const LESSON_STATUSES: &[&str] = &["contested", "confirmed", "falsified"];

/// The serde (snake_case) name of a unit enum value.
fn name_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Execute a `recloop journal` subcommand, printing to standard output.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    run_to(cmd, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Execute a `recloop journal` subcommand, writing its output (text, JSON or the export) to `out`.
pub fn run_to(cmd: Command, out: &mut dyn Write) -> anyhow::Result<()> {
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
                    return print_json(out, &evs);
                }
                if evs.is_empty() {
                    writeln!(out, "no events in {}", j.location())?;
                }
                for e in evs {
                    writeln!(
                        out,
                        "{:>6}  {}  {:<10} it{:<3} {:<24} {}{}",
                        e.seq,
                        e.timestamp.format("%Y-%m-%d %H:%M:%S"),
                        short(&e.run_id, 10),
                        e.iteration,
                        e.event.type_name(),
                        e.event.proposal_id().unwrap_or(""),
                        lease_detail(&e.event)
                    )?;
                }
            } else {
                let mut exps = j.experiments()?;
                if let Some(r) = &run {
                    exps.retain(|e| e.run_id.as_deref() == Some(r.as_str()));
                }
                if let Some(l) = limit {
                    let skip = exps.len().saturating_sub(l);
                    exps.drain(..skip);
                }
                if target.json {
                    return print_json(out, &exps);
                }
                if exps.is_empty() {
                    writeln!(out, "no experiments in {}", j.location())?;
                }
                for e in exps {
                    let metric = e
                        .offline_metrics
                        .get(&e.target_metric)
                        .map(|v| format!("{}={v:.4}", e.target_metric))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{:<16} {:<10} {:<8} {:<22} {}",
                        short(&e.proposal_id, 16),
                        e.status,
                        e.decision.map(|d| d.to_string()).unwrap_or_default(),
                        metric,
                        short(&e.title, 60)
                    )?;
                }
            }
        }
        Command::Show { target, id } => {
            let j = target.open()?;
            if let Some(e) = j.experiment(&id)? {
                let lineage = j.lineage(&id)?;
                if target.json {
                    return print_json(
                        out,
                        &serde_json::json!({"experiment": e, "lineage": lineage}),
                    );
                }
                writeln!(
                    out,
                    "experiment {} [{}] {}",
                    e.proposal_id, e.status, e.title
                )?;
                writeln!(out, "  hypothesis: {}", e.hypothesis)?;
                if let Some(d) = e.decision {
                    writeln!(
                        out,
                        "  verdict: {d} — {}",
                        e.verdict_reason.as_deref().unwrap_or("")
                    )?;
                }
                if let Some(r) = &e.reason {
                    writeln!(out, "  reason: {r}")?;
                }
                if !e.offline_metrics.is_empty() {
                    writeln!(out, "  offline: {:?}", e.offline_metrics)?;
                }
                if let Some(q) = recloop_agents::quality::of_experiment(&lineage) {
                    writeln!(out, "  Q_code: {q}")?;
                }
                writeln!(out, "  lineage:")?;
                for ev in lineage {
                    writeln!(out, "    #{:<6} {}", ev.seq, ev.event.type_name())?;
                }
                return Ok(());
            }
            if let Some((agent, n)) = id.split_once('@')
                && let Ok(n) = n.parse::<u32>()
            {
                let Some(v) = j
                    .harness_versions(Some(agent))?
                    .into_iter()
                    .find(|v| v.version == n)
                else {
                    bail!(
                        "no harness version {n} of {agent:?} in journal {}",
                        j.location()
                    );
                };
                if target.json {
                    return print_json(out, &v);
                }
                return print_harness_version(out, &v);
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
            print_json(out, &rec)?;
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
                return print_json(out, &hits);
            }
            if hits.is_empty() {
                writeln!(out, "no matches")?;
            }
            for h in hits {
                writeln!(
                    out,
                    "{:<28} {:<11} {:<10} {:<22} {}",
                    short(&h.doc_id, 28),
                    h.kind,
                    h.stage.as_deref().unwrap_or("-"),
                    short(h.lever.as_deref().unwrap_or("-"), 22),
                    short(&format!("{}: {}", h.title, h.body), 80)
                )?;
            }
        }
        Command::Lessons { target, status } => {
            if let Some(s) = &status
                && !LESSON_STATUSES.contains(&s.as_str())
            {
                bail!(
                    "unknown lesson status `{s}` (expected one of: {})",
                    LESSON_STATUSES.join(", ")
                );
            }
            let j = target.open()?;
            let lessons: Vec<_> = j
                .lessons()?
                .into_iter()
                .filter(|l| {
                    status
                        .as_deref()
                        .is_none_or(|s| name_of(&l.lesson.status) == s)
                })
                .collect();
            if target.json {
                return print_json(out, &lessons);
            }
            if lessons.is_empty() {
                writeln!(out, "no lessons")?;
            }
            for l in lessons {
                writeln!(
                    out,
                    "{:<16} {:<10} {:<13} runs={} {}",
                    short(&l.lesson.id, 16),
                    name_of(&l.lesson.status),
                    name_of(&l.lesson.kind),
                    l.lesson.supporting_runs.len(),
                    short(&l.lesson.text, 70)
                )?;
            }
        }
        Command::Export {
            target,
            jsonl: _,
            output,
            with_artifacts,
        } => {
            let j = target.open()?;
            match &output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    let summary = j.export_jsonl(std::io::BufWriter::new(f), with_artifacts)?;
                    if target.json {
                        return print_json(out, &summary);
                    }
                    writeln!(
                        out,
                        "exported {} events and {} artifacts to {}",
                        summary.events,
                        summary.artifacts,
                        p.display()
                    )?;
                }
                None => {
                    // The export itself goes to `out`; the summary to standard error.
                    let summary = j.export_jsonl(&mut *out, with_artifacts)?;
                    if target.json {
                        eprintln!("{}", serde_json::to_string(&summary)?);
                    } else {
                        eprintln!(
                            "exported {} events and {} artifacts",
                            summary.events, summary.artifacts
                        );
                    }
                }
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
                return print_json(out, &summary);
            }
            writeln!(
                out,
                "imported {} events and {} artifacts into {}",
                summary.events,
                summary.artifacts,
                j.location()
            )?;
        }
        Command::Verify { target } => {
            let j = target.open()?;
            let report = j.verify()?;
            if target.json {
                return print_json(out, &report);
            }
            writeln!(
                out,
                "ok: {} events, {} runs, sequence 1..{} without gaps, checksums and parents valid",
                report.events, report.runs, report.last_seq
            )?;
        }
        Command::Rebuild { target } => {
            let j = target.open()?;
            let n = j.rebuild_views()?;
            if target.json {
                return print_json(out, &serde_json::json!({"replayed": n}));
            }
            writeln!(out, "rebuilt every view from {n} events")?;
        }
    }
    Ok(())
}

/// A harness version: parent, admission, diagnosis, paired-replay numbers and diff.
fn print_harness_version(
    out: &mut dyn std::io::Write,
    v: &recloop_journal::HarnessVersionView,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "harness {} v{} (parent {}) {}",
        v.agent,
        v.version,
        v.parent_version
            .map_or_else(|| "none".to_string(), |p| format!("v{p}")),
        if v.admitted {
            "admitted"
        } else {
            "archived (not admitted)"
        }
    )?;
    let e = &v.evidence;
    if let Some(r) = e["reason"].as_str() {
        writeln!(out, "  decision: {r}")?;
    } else if let Some(src) = e["source"].as_str() {
        writeln!(out, "  source: {src}")?;
    }
    if let Some(p) = e.get("paired").filter(|p| !p.is_null()) {
        writeln!(
            out,
            "  paired replay: {} tasks x {} replays, mean {:.3} -> {:.3}, gain {:+.3} (epsilon {})",
            p["per_task"].as_object().map_or(0, |m| m.len()),
            p["replays"],
            p["old_mean"].as_f64().unwrap_or(f64::NAN),
            p["new_mean"].as_f64().unwrap_or(f64::NAN),
            p["mean_gain"].as_f64().unwrap_or(f64::NAN),
            e["epsilon"]
        )?;
        if let Some(rates) = p["old_pass"].as_object() {
            for (k, old) in rates {
                writeln!(
                    out,
                    "    verifier {k}: pass rate {:.3} -> {:.3}",
                    old.as_f64().unwrap_or(f64::NAN),
                    p["new_pass"][k].as_f64().unwrap_or(f64::NAN)
                )?;
            }
        }
    }
    if !v.diagnosis.is_empty() {
        writeln!(out, "  diagnosis:")?;
        for line in v.diagnosis.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    if !v.diff.is_empty() {
        writeln!(out, "  diff:")?;
        for line in v.diff.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// The worker and step of a lease event, for the event list.
fn lease_detail(e: &Event) -> String {
    match e {
        Event::LeaseAcquired {
            key, worker, epoch, ..
        } => format!("  {key}: {worker} (lease #{epoch})"),
        Event::LeaseExpired {
            key,
            worker,
            epoch,
            expired_at,
            ..
        } => format!("  {key}: lease #{epoch} of {worker} expired at {expired_at}"),
        Event::LeaseTakenOver {
            key,
            worker,
            from_worker,
            epoch,
            ..
        } => format!("  {key}: {worker} took over from {from_worker} (lease #{epoch})"),
        Event::Note { topic, .. }
            if topic.starts_with("worker.") || topic.starts_with("merge.") =>
        {
            format!("  {topic}")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use recloop_journal::{NewEvent, fixtures};
    use serde_json::Value;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Command,
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "recloop-cli-journal-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }

        fn path(&self, name: &str) -> String {
            self.0.join(name).display().to_string()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn call(args: &[&str]) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("journal").chain(args.iter().copied()))?;
        let mut buf = Vec::new();
        run_to(cli.cmd, &mut buf)?;
        Ok(String::from_utf8(buf)?)
    }

    fn json(args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = call(&a).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
    }

    /// A journal with a simulated loop, every event type, and an artifact.
    fn filled(url: &str) {
        let j = Journal::open(url).unwrap();
        let art = j.put_artifact(b"diff --git a/x b/x\n").unwrap();
        let mut stream = fixtures::loop_stream("r1", 3, 400);
        stream[10] = stream[10].clone().artifact(art);
        j.append_batch(stream).unwrap();
        let mut parent = None;
        for (i, e) in fixtures::one_of_each("r2").into_iter().enumerate() {
            let id = j
                .append(NewEvent::new("r2", i as u32 / 5, e).parent(parent))
                .unwrap();
            parent = Some(id.id);
        }
    }

    #[test]
    fn export_then_import_reproduces_every_view() {
        let dir = Scratch::new();
        let (a, b) = (dir.path("a/journal.db"), dir.path("b/journal.db"));
        let (file, again) = (dir.path("export.jsonl"), dir.path("again.jsonl"));
        filled(&a);
        let exported = json(&[
            "export",
            "--jsonl",
            "--with-artifacts",
            "--url",
            &a,
            "-o",
            &file,
        ]);
        let count = Journal::open(&a).unwrap().event_count().unwrap();
        assert_eq!(exported["events"], count);
        assert_eq!(exported["artifacts"], 1);
        let imported = json(&["import", "--url", &b, &file]);
        assert_eq!(imported, exported);

        let (ja, jb) = (Journal::open(&a).unwrap(), Journal::open(&b).unwrap());
        assert_eq!(ja.dump_views().unwrap(), jb.dump_views().unwrap());
        jb.verify().unwrap();
        for args in [
            vec!["list"],
            vec!["list", "--events"],
            vec!["lessons"],
            vec!["search", "diversity", "--limit", "50"],
            vec!["show", "p-1"],
        ] {
            let mut on_a = args.clone();
            on_a.extend(["--url", a.as_str()]);
            let mut on_b = args.clone();
            on_b.extend(["--url", b.as_str()]);
            assert_eq!(json(&on_a), json(&on_b), "{args:?}");
        }
        // Exporting the copy gives the same bytes.
        call(&[
            "export",
            "--jsonl",
            "--with-artifacts",
            "--url",
            &b,
            "-o",
            &again,
        ])
        .unwrap();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(&again).unwrap()
        );
        // Import needs an empty journal.
        let err = call(&["import", "--url", &b, &file]).unwrap_err();
        assert!(err.to_string().contains("empty journal"), "{err}");
    }

    #[test]
    fn commands_print_text_and_json() {
        let dir = Scratch::new();
        let url = dir.path("w/journal.db");
        filled(&url);
        let u = url.as_str();

        let list = json(&["list", "--url", u]);
        let exps = list.as_array().unwrap();
        assert!(exps.iter().any(|e| e["proposal_id"] == "p-1"));
        let text = call(&["list", "--url", u, "--run", "r2"]).unwrap();
        assert!(text.contains("p-1") && text.contains("merged"), "{text}");
        assert!(!text.contains("r1-p"), "{text}");

        let verdicts = json(&["list", "--events", "--type", "verdict", "--url", u]);
        let verdicts = verdicts.as_array().unwrap();
        assert!(!verdicts.is_empty());
        assert!(verdicts.iter().all(|v| v["event"]["type"] == "verdict"));
        let last2 = json(&["list", "--events", "--limit", "2", "--url", u]);
        let last2 = last2.as_array().unwrap();
        assert_eq!(last2.len(), 2);
        assert!(last2[0]["seq"].as_u64() < last2[1]["seq"].as_u64());

        let show = json(&["show", "p-1", "--url", u]);
        assert_eq!(show["experiment"]["proposal_id"], "p-1");
        assert_eq!(show["lineage"][0]["event"]["type"], "proposal_made");
        let text = call(&["show", "p-1", "--url", u]).unwrap();
        assert!(
            text.contains("lineage:") && text.contains("verdict"),
            "{text}"
        );
        assert_eq!(json(&["show", "1", "--url", u])["seq"], 1);
        let err = call(&["show", "nope", "--url", u]).unwrap_err();
        assert!(err.to_string().contains("no experiment"), "{err}");

        let hits = json(&["search", "penalised twice", "--url", u]);
        assert_eq!(hits.as_array().unwrap().len(), 1);
        assert_eq!(hits[0]["doc_id"], "asset:a-1");
        let hits = json(&[
            "search",
            "root cause",
            "--kind",
            "failure",
            "--lever",
            "blend.weights",
            "--url",
            u,
        ]);
        assert!(
            hits.as_array()
                .unwrap()
                .iter()
                .all(|h| h["lever"] == "blend.weights" && h["kind"] == "failure")
        );
        assert!(
            call(&["search", "zzzzqqq", "--url", u])
                .unwrap()
                .contains("no matches")
        );

        let falsified = json(&["lessons", "--status", "falsified", "--url", u]);
        let falsified = falsified.as_array().unwrap();
        assert_eq!(falsified.len(), 1);
        assert_eq!(falsified[0]["lesson"]["id"], "l-1");
        let text = call(&["lessons", "--url", u]).unwrap();
        assert!(text.contains("l-1") && text.contains("falsified"), "{text}");
        let err = call(&["lessons", "--status", "maybe", "--url", u]).unwrap_err();
        assert!(err.to_string().contains("contested, confirmed"), "{err}");

        let report = json(&["verify", "--url", u]);
        let count = Journal::open(u).unwrap().event_count().unwrap();
        assert_eq!(report["events"], count);
        assert_eq!(json(&["rebuild", "--url", u])["replayed"], count);

        // Export to standard output: a header line, then one line per event.
        let text = call(&["export", "--jsonl", "--url", u]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, count + 1);
        assert!(lines[0].contains("\"format\":\"recloop-journal\""));
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = Scratch::new();
        let notes = dir.path("notes.txt");
        std::fs::write(&notes, "just some notes\n").unwrap();
        let err = call(&["list", "--url", &notes]).unwrap_err();
        assert!(err.to_string().contains("not a SQLite database"), "{err}");
        let url = dir.path("j/journal.db");
        let junk = dir.path("junk.jsonl");
        std::fs::write(&junk, "{\"hello\": 1}\n").unwrap();
        let err = call(&["import", "--url", &url, &junk]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = call(&["import", "--url", &url, &dir.path("missing.jsonl")]).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        // `--jsonl` is required: the format is explicit.
        assert!(call(&["export", "--url", &url]).is_err());
    }
}
