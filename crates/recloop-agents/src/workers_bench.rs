//! `recloop bench workers`: the MovieLens loop with 1, 2, 4, … worker processes on one
//! PostgreSQL journal, each worker in its own clone of the workspace with a local bare
//! repository as the shared remote. Reports candidates per hour and the journal's write load
//! (events per second, rows, lease statements) per configuration and repetition.

use crate::error::{AgentError, Result};
use crate::git::git;
use recloop_journal::{Event, EventFilter, Journal, Leases};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct WorkersBench {
    /// The `recloop` binary the workers run.
    pub binary: PathBuf,
    /// PostgreSQL URL (each repetition uses a fresh schema in it).
    pub postgres: String,
    /// Worker counts to compare.
    pub workers: Vec<u32>,
    /// Repetitions per worker count.
    pub repeat: u32,
    /// Iterations of each run.
    pub iterations: u32,
    /// Candidates per iteration (`[run] batch_size`).
    pub batch: u32,
    /// Dataset of the MovieLens example (`ml-100k`, `ml-1m`, `synthetic`).
    pub dataset: String,
    /// Where to put the workspaces (kept for inspection).
    pub dir: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkersSample {
    /// Worker processes.
    pub workers: u32,
    /// Repetition, from 1.
    pub repetition: u32,
    /// Wall time from the first worker's start to the last one's end, seconds.
    pub wall_s: f64,
    /// Candidates decided (developed and evaluated, or failed).
    pub candidates: u64,
    /// Candidates per hour of wall time.
    pub candidates_per_hour: f64,
    /// Events appended to the journal.
    pub events: u64,
    /// Events per second of wall time.
    pub events_per_s: f64,
    /// Rows written to the journal's tables (inserted + updated, events and views included).
    pub rows_written: u64,
    /// Lease statements (index and sequential scans of `worker_leases`).
    pub lease_statements: u64,
    /// Lease statements per second.
    pub lease_statements_per_s: f64,
    /// Lease events journaled (acquired, expired, taken over).
    pub lease_events: u64,
}

fn run_err(what: String) -> AgentError {
    AgentError::Invalid {
        path: "recloop bench workers".into(),
        reason: what,
    }
}

/// Measure every configuration; `report` is called with each sample as it is measured.
pub fn bench_workers(
    b: &WorkersBench,
    report: &mut dyn FnMut(&WorkersSample),
) -> Result<Vec<WorkersSample>> {
    let mut out = Vec::new();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for &n in &b.workers {
        for rep in 1..=b.repeat {
            let root = b.dir.join(format!("w{n}-r{rep}"));
            if root.exists() {
                std::fs::remove_dir_all(&root).map_err(|e| AgentError::io(&root, e))?;
            }
            std::fs::create_dir_all(&root).map_err(|e| AgentError::io(&root, e))?;
            let clones = setup(b, &root, n)?;
            let sep = if b.postgres.contains('?') { '&' } else { '?' };
            let url = format!("{}{sep}schema=bench_{stamp}_w{n}_r{rep}", b.postgres);
            let start = Instant::now();
            let mut children = Vec::new();
            for ws in &clones {
                let log = std::fs::File::create(ws.with_extension("log"))
                    .map_err(|e| AgentError::io(ws, e))?;
                let child = Command::new(&b.binary)
                    .args(["run", "--workspace"])
                    .arg(ws)
                    .args(["--journal", &url, "--iterations"])
                    .arg(b.iterations.to_string())
                    .args(["--unattended", "reject", "--json"])
                    .env_remove("RECLOOP_JOURNAL_URL")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .map_err(|e| AgentError::io(&b.binary, e))?;
                children.push((ws.clone(), child));
            }
            for (ws, mut c) in children {
                let st = c.wait().map_err(|e| AgentError::io(&b.binary, e))?;
                if !st.success() {
                    return Err(run_err(format!(
                        "worker in {} failed ({st}); see {}",
                        ws.display(),
                        ws.with_extension("log").display()
                    )));
                }
            }
            let wall = start.elapsed().as_secs_f64();
            // table statistics reach the server's view within a second of a backend's end
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let s = measure(&url, n, rep, wall)?;
            report(&s);
            out.push(s);
        }
    }
    Ok(out)
}

/// A seed workspace, its bare remote, and `n` clones of it.
fn setup(b: &WorkersBench, root: &Path, n: u32) -> Result<Vec<PathBuf>> {
    let seed = root.join("seed");
    let st = Command::new(&b.binary)
        .args(["init", "--example", "movielens", "--dataset", &b.dataset])
        .arg(&seed)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| AgentError::io(&b.binary, e))?;
    if !st.success() {
        return Err(run_err(format!("recloop init failed ({st})")));
    }
    let remote = root.join("remote.git");
    let manifest = seed.join("recloop.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| AgentError::io(&manifest, e))?;
    let text = format!(
        "{text}\n[workers]\nremote = \"{}\"\npoll_s = 0.2\n\n[run]\nbatch_size = {}\n",
        remote.display(),
        b.batch
    );
    std::fs::write(&manifest, text).map_err(|e| AgentError::io(&manifest, e))?;
    git(&seed, &["commit", "-qam", "bench: workers"])?;
    let s = |p: &Path| p.display().to_string();
    git(root, &["clone", "-q", "--bare", &s(&seed), &s(&remote)])?;
    let mut clones = Vec::new();
    for i in 1..=n {
        let ws = root.join(format!("worker-{i}"));
        git(root, &["clone", "-q", &s(&remote), &s(&ws)])?;
        clones.push(ws);
    }
    Ok(clones)
}

fn measure(url: &str, n: u32, rep: u32, wall: f64) -> Result<WorkersSample> {
    let jerr = |e: recloop_journal::JournalError| AgentError::Journal(e.to_string());
    let j = Journal::open(url).map_err(jerr)?;
    let events = j.events(&EventFilter::default()).map_err(jerr)?;
    let candidates = events
        .iter()
        .filter(|e| {
            matches!(&e.event, Event::Note { topic, text, .. }
                if topic == "step" && text.starts_with("candidate/"))
        })
        .count() as u64;
    let lease_events = events
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::LeaseAcquired { .. }
                    | Event::LeaseExpired { .. }
                    | Event::LeaseTakenOver { .. }
            )
        })
        .count() as u64;
    let leases = Leases::open(&j)
        .map_err(jerr)?
        .ok_or_else(|| run_err("the benchmark's journal is not PostgreSQL".into()))?;
    let activity = leases.table_activity().map_err(jerr)?;
    let rows_written = activity.iter().map(|(_, i, u, _)| i + u).sum();
    let lease_statements = activity
        .iter()
        .filter(|(t, ..)| t == "worker_leases")
        .map(|(_, _, _, scans)| *scans)
        .sum::<u64>();
    let hours = wall / 3600.0;
    Ok(WorkersSample {
        workers: n,
        repetition: rep,
        wall_s: wall,
        candidates,
        candidates_per_hour: candidates as f64 / hours,
        events: events.len() as u64,
        events_per_s: events.len() as f64 / wall,
        rows_written,
        lease_statements,
        lease_statements_per_s: lease_statements as f64 / wall,
        lease_events,
    })
}

/// The median of `xs` (NaN when empty).
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[m - 1] + xs[m]) / 2.0
    } else {
        xs[m]
    }
}
