//! The journal handles: [`AsyncJournal`] (for async code) and [`Journal`] (blocking facade with an
//! internal runtime, usable from plain code and from inside another tokio runtime).

use crate::artifact::ArtifactHash;
use crate::backend::{AnyBackend, Backend, Location};
use crate::error::{JournalError, Result};
use crate::event::{EVENT_SCHEMA_VERSION, EventId, EventRecord, NewEvent};
use crate::retrieval;
use crate::schema::{SCHEMA_VERSION, TableDef, VIEW_TABLES};
use crate::sql::{ColType, Dialect, Val};
use crate::store::{EVENT_COLUMNS, EVENT_TYPES, LogReport, record_from_row};
use crate::views::*;
use recloop_core::{Direction, Proposal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

fn table(name: &str) -> Result<&'static TableDef> {
    VIEW_TABLES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| JournalError::Internal(format!("unknown view table {name}")))
}

/// The journal for async code. Cheap to clone; all clones share the connections.
#[derive(Clone, Debug)]
pub struct AsyncJournal<B: Backend = AnyBackend> {
    backend: B,
}

impl AsyncJournal<AnyBackend> {
    /// Open a journal by URL or path (`postgres://…[?schema=NAME]`, `sqlite://PATH` or a path).
    pub async fn open(url_or_path: &str) -> Result<AsyncJournal> {
        AsyncJournal::open_location(&Location::parse(url_or_path)?).await
    }

    /// Open the journal at `location`, creating or migrating it when needed.
    pub async fn open_location(location: &Location) -> Result<AsyncJournal> {
        Ok(AsyncJournal {
            backend: AnyBackend::open(location).await?,
        })
    }
}

impl<B: Backend> AsyncJournal<B> {
    /// Wrap an opened backend.
    pub fn from_backend(backend: B) -> AsyncJournal<B> {
        AsyncJournal { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Printable location.
    pub fn location(&self) -> &str {
        self.backend.location()
    }

    async fn rows(
        &self,
        sql: String,
        params: Vec<Val>,
        types: Vec<ColType>,
    ) -> Result<Vec<Vec<Val>>> {
        self.backend.query(sql, params, types).await
    }

    async fn view_rows(
        &self,
        name: &str,
        where_sql: &str,
        params: Vec<Val>,
        order: &str,
    ) -> Result<(Vec<Vec<Val>>, &'static TableDef)> {
        let def = table(name)?;
        let (cols, types) = columns(def);
        let sql = format!("SELECT {cols} FROM {name} {where_sql} ORDER BY {order}");
        Ok((self.rows(sql, params, types).await?, def))
    }

    fn map<T>(
        &self,
        def: &'static TableDef,
        rows: Vec<Vec<Val>>,
        f: impl Fn(&RowMap) -> Result<T>,
    ) -> Result<Vec<T>> {
        rows.into_iter()
            .map(|row| {
                f(&RowMap {
                    def,
                    row,
                    location: self.location(),
                })
            })
            .collect()
    }

    // ----- writing -------------------------------------------------------------------------

    /// Append one event; returns its id. With an idempotency key already present, returns the
    /// existing event's id and writes nothing.
    pub async fn append(&self, event: NewEvent) -> Result<EventId> {
        let mut ids = self.backend.append_batch(vec![event]).await?;
        ids.pop()
            .ok_or_else(|| JournalError::Internal("append returned no id".into()))
    }

    /// Append several events in one transaction (all or none).
    pub async fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<EventId>> {
        self.backend.append_batch(events).await
    }

    /// Store an artifact (content-addressed); reference the hash from an event.
    pub async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactHash> {
        self.backend.put_artifact(bytes).await
    }

    /// Read an artifact.
    pub async fn get_artifact(&self, hash: &ArtifactHash) -> Result<Vec<u8>> {
        self.backend
            .get_artifact(hash.clone())
            .await?
            .ok_or_else(|| JournalError::NotFound {
                what: format!("artifact {hash}"),
                location: self.location().to_string(),
            })
    }

    /// Every stored artifact hash.
    pub async fn artifacts(&self) -> Result<Vec<ArtifactHash>> {
        self.backend.list_artifacts().await
    }

    /// Empty every view and rebuild it from the log. Returns events replayed.
    pub async fn rebuild_views(&self) -> Result<u64> {
        self.backend.rebuild_views().await
    }

    /// Check the log (gap-free sequence, checksums, parents) and the database file.
    pub async fn verify(&self) -> Result<LogReport> {
        self.backend.verify().await
    }

    /// Canonical text of every view, for comparing a rebuild with the incremental state.
    pub async fn dump_views(&self) -> Result<String> {
        self.backend.dump_views().await
    }

    /// Insert exported records into this (empty) journal.
    pub async fn import_records(&self, records: Vec<EventRecord>) -> Result<u64> {
        self.backend.import_records(records).await
    }

    // ----- the log ---------------------------------------------------------------------------

    /// Events matching `filter`, oldest first unless `newest_first`.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let mut wheres = Vec::new();
        let mut params = Vec::new();
        if let Some(r) = &filter.run_id {
            wheres.push("run_id = ?".to_string());
            params.push(Val::text(r));
        }
        if !filter.types.is_empty() {
            wheres.push(format!(
                "type IN ({})",
                vec!["?"; filter.types.len()].join(", ")
            ));
            params.extend(filter.types.iter().map(Val::text));
        }
        if let Some(p) = &filter.proposal_id {
            wheres.push("proposal_id = ?".into());
            params.push(Val::text(p));
        }
        if let Some(i) = filter.iteration {
            wheres.push("iteration = ?".into());
            params.push(Val::int(i64::from(i)));
        }
        if let Some(a) = filter.after_seq {
            wheres.push("seq > ?".into());
            params.push(Val::int(a as i64));
        }
        let where_sql = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let limit = filter
            .limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events {where_sql} ORDER BY seq {order}{limit}");
        let rows = self.rows(sql, params, EVENT_TYPES.to_vec()).await?;
        rows.iter()
            .map(|r| record_from_row(r, self.location(), false))
            .collect()
    }

    async fn one_event(&self, where_sql: &str, param: Val) -> Result<Option<EventRecord>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {where_sql} LIMIT 1");
        let rows = self.rows(sql, vec![param], EVENT_TYPES.to_vec()).await?;
        rows.first()
            .map(|r| record_from_row(r, self.location(), false))
            .transpose()
    }

    /// The event with sequence number `seq`.
    pub async fn event(&self, seq: u64) -> Result<Option<EventRecord>> {
        self.one_event("seq = ?", Val::int(seq as i64)).await
    }

    /// The event with uuid `id`.
    pub async fn event_by_id(&self, id: Uuid) -> Result<Option<EventRecord>> {
        self.one_event("id = ?", Val::text(id.to_string())).await
    }

    /// The event appended with idempotency key `key` (resumption: was this step done?).
    pub async fn find_by_key(&self, key: &str) -> Result<Option<EventRecord>> {
        self.one_event("idem_key = ?", Val::text(key)).await
    }

    /// The last completed step of run `run_id`: its newest event (every event is appended when
    /// its step completed). `None` when the run has no events.
    pub async fn last_completed_step(&self, run_id: &str) -> Result<Option<EventRecord>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
        );
        let rows = self
            .rows(sql, vec![Val::text(run_id)], EVENT_TYPES.to_vec())
            .await?;
        rows.first()
            .map(|r| record_from_row(r, self.location(), false))
            .transpose()
    }

    /// Every event of an experiment in order: its lineage proposal → … → verdict → merge.
    pub async fn lineage(&self, proposal_id: &str) -> Result<Vec<EventRecord>> {
        self.events(&EventFilter {
            proposal_id: Some(proposal_id.to_string()),
            ..EventFilter::default()
        })
        .await
    }

    /// Number of events.
    pub async fn event_count(&self) -> Result<u64> {
        let rows = self
            .rows(
                "SELECT COUNT(*) FROM events".into(),
                vec![],
                vec![ColType::Int],
            )
            .await?;
        Ok(rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0).max(0) as u64)
    }

    // ----- views -----------------------------------------------------------------------------

    /// Every run, oldest first.
    pub async fn runs(&self) -> Result<Vec<RunView>> {
        let (rows, def) = self
            .view_rows("v_runs", "", vec![], "started_seq, run_id")
            .await?;
        self.map(def, rows, run_view)
    }

    /// Every experiment, in the order they were proposed.
    pub async fn experiments(&self) -> Result<Vec<ExperimentView>> {
        let (rows, def) = self
            .view_rows("v_experiments", "", vec![], "proposal_seq, proposal_id")
            .await?;
        self.map(def, rows, experiment_view)
    }

    /// One experiment by proposal id.
    pub async fn experiment(&self, proposal_id: &str) -> Result<Option<ExperimentView>> {
        let (rows, def) = self
            .view_rows(
                "v_experiments",
                "WHERE proposal_id = ?",
                vec![Val::text(proposal_id)],
                "proposal_id",
            )
            .await?;
        Ok(self.map(def, rows, experiment_view)?.into_iter().next())
    }

    /// Production versions, oldest first (version 1 = the first run's starting production).
    pub async fn leaderboard(&self) -> Result<Vec<ProductionVersion>> {
        let (rows, def) = self.view_rows("v_leaderboard", "", vec![], "seq").await?;
        rows.into_iter()
            .enumerate()
            .map(|(i, row)| {
                production_version(
                    &RowMap {
                        def,
                        row,
                        location: self.location(),
                    },
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                )
            })
            .collect()
    }

    /// Knowledge assets, oldest first.
    pub async fn assets(&self) -> Result<Vec<AssetView>> {
        let (rows, def) = self
            .view_rows("v_assets", "", vec![], "seq, asset_id")
            .await?;
        self.map(def, rows, asset_view)
    }

    /// Lessons with their projected status, oldest first.
    pub async fn lessons(&self) -> Result<Vec<LessonView>> {
        let (rows, def) = self
            .view_rows("v_lessons", "", vec![], "created_seq, lesson_id")
            .await?;
        self.map(def, rows, lesson_view)
    }

    /// Agent steps of a run (all runs when `None`), in order.
    pub async fn trajectories(&self, run_id: Option<&str>) -> Result<Vec<TrajectoryView>> {
        let (rows, def) = match run_id {
            Some(r) => {
                self.view_rows(
                    "v_trajectories",
                    "WHERE run_id = ?",
                    vec![Val::text(r)],
                    "seq",
                )
                .await?
            }
            None => self.view_rows("v_trajectories", "", vec![], "seq").await?,
        };
        self.map(def, rows, trajectory_view)
    }

    /// Harness versions of an agent (all agents when `None`), by agent then version.
    pub async fn harness_versions(&self, agent: Option<&str>) -> Result<Vec<HarnessVersionView>> {
        let (rows, def) = match agent {
            Some(a) => {
                self.view_rows(
                    "v_harness_versions",
                    "WHERE agent = ?",
                    vec![Val::text(a)],
                    "agent, version",
                )
                .await?
            }
            None => {
                self.view_rows("v_harness_versions", "", vec![], "agent, version")
                    .await?
            }
        };
        self.map(def, rows, harness_view)
    }

    /// Spending per run and agent.
    pub async fn budget(&self) -> Result<Vec<BudgetView>> {
        let (rows, def) = self
            .view_rows("v_budget", "", vec![], "run_id, agent")
            .await?;
        self.map(def, rows, budget_view)
    }

    // ----- retrieval -------------------------------------------------------------------------

    /// Full-text search over hypotheses, diagnoses and lessons, filtered by index fields.
    /// Words are matched after stemming (English); all words must match unless
    /// `filter.any_word`. Empty `text` lists the newest documents matching the filter.
    pub async fn search(&self, text: &str, filter: &SearchFilter) -> Result<Vec<SearchHit>> {
        let dialect = self.backend.dialect();
        let terms = retrieval::words(text);
        let expr = retrieval::fts_expression(dialect, &terms, filter.any_word);
        let limit = filter.limit.unwrap_or(20).max(1);
        let mut wheres = Vec::new();
        let mut params = Vec::new();
        let cols = "d.doc_id, d.kind, d.title, d.body, d.stage, d.objective, d.segment, d.lever, \
                    d.status, d.run_id, d.seq";
        let (from, score, order) = match (&expr, dialect) {
            (Some(e), Dialect::Sqlite) => {
                wheres.push("search_fts MATCH ?".to_string());
                params.push(Val::text(e));
                (
                    // CROSS JOIN fixes the join order in SQLite: full-text index first, then
                    // the documents by rowid. Left to itself the planner may scan the filter
                    // index (kind, stage) and probe the FTS query once per document, which is
                    // 100x slower on a large journal.
                    "search_fts CROSS JOIN search_docs d ON d.rowid = search_fts.rowid".to_string(),
                    "-bm25(search_fts, 2.0, 1.0)",
                    "bm25(search_fts, 2.0, 1.0), d.seq",
                )
            }
            (Some(e), Dialect::Postgres) => {
                params.push(Val::text(e));
                wheres.push("d.tsv @@ q".to_string());
                (
                    "search_docs d, to_tsquery('english', ?) q".to_string(),
                    "CAST(ts_rank(d.tsv, q) AS DOUBLE PRECISION)",
                    "12 DESC, d.seq",
                )
            }
            (None, _) => (
                "search_docs d".to_string(),
                "CAST(0 AS DOUBLE PRECISION)",
                "d.seq DESC",
            ),
        };
        if !filter.kinds.is_empty() {
            wheres.push(format!(
                "d.kind IN ({})",
                vec!["?"; filter.kinds.len()].join(", ")
            ));
            params.extend(filter.kinds.iter().map(Val::text));
        }
        for (col, v) in [
            ("stage", &filter.stage),
            ("objective", &filter.objective),
            ("segment", &filter.segment),
            ("lever", &filter.lever),
            ("status", &filter.status),
            ("run_id", &filter.run_id),
        ] {
            if let Some(v) = v {
                wheres.push(format!("d.{col} = ?"));
                params.push(Val::text(v));
            }
        }
        let where_sql = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        let sql = format!(
            "SELECT {cols}, {score} FROM {from} {where_sql} ORDER BY {order} LIMIT {limit}"
        );
        let mut types = vec![ColType::Text; 10];
        types.push(ColType::Int);
        types.push(ColType::Real);
        let rows = self.rows(sql, params, types).await?;
        Ok(rows
            .into_iter()
            .map(|r| SearchHit {
                doc_id: r[0].string(),
                kind: r[1].string(),
                title: r[2].string(),
                body: r[3].string(),
                stage: r[4].as_str().map(str::to_string),
                objective: r[5].as_str().map(str::to_string),
                segment: r[6].as_str().map(str::to_string),
                lever: r[7].as_str().map(str::to_string),
                status: r[8].as_str().map(str::to_string),
                run_id: r[9].as_str().map(str::to_string),
                seq: r[10].as_i64().unwrap_or(0).max(0) as u64,
                score: r[11].as_f64().unwrap_or(0.0),
            })
            .collect())
    }

    /// Past experiments most similar to `proposal` (itself excluded), most similar first.
    /// Candidates come from full-text search over hypotheses (any word) and from experiments on
    /// the same lever; they are scored by [`SimilarExperiment::similarity`] in plain code, so both
    /// backends rank identically.
    pub async fn similar_experiments(
        &self,
        proposal: &Proposal,
        limit: usize,
    ) -> Result<Vec<SimilarExperiment>> {
        let mut text = retrieval::content_words(&format!(
            "{} {} {} {}",
            proposal.title, proposal.hypothesis, proposal.mechanism, proposal.lever
        ));
        text.truncate(32);
        let hits = self
            .search(
                &text.join(" "),
                &SearchFilter {
                    kinds: vec!["hypothesis".into()],
                    any_word: true,
                    limit: Some(200),
                    ..SearchFilter::default()
                },
            )
            .await?;
        let mut ids: BTreeSet<String> = hits
            .iter()
            .filter_map(|h| h.doc_id.strip_prefix("hypothesis:").map(str::to_string))
            .collect();
        if !proposal.lever.is_empty() {
            let rows = self
                .rows(
                    "SELECT proposal_id FROM v_experiments WHERE lever = ? ORDER BY proposal_seq LIMIT 200"
                        .into(),
                    vec![Val::text(&proposal.lever)],
                    vec![ColType::Text],
                )
                .await?;
            ids.extend(rows.iter().map(|r| r[0].string()));
        }
        ids.remove(&proposal.id);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let (rows, def) = self
            .view_rows(
                "v_experiments",
                &format!("WHERE proposal_id IN ({})", vec!["?"; ids.len()].join(", ")),
                ids.iter().map(Val::text).collect(),
                "proposal_seq, proposal_id",
            )
            .await?;
        let mut out: Vec<SimilarExperiment> = self
            .map(def, rows, experiment_view)?
            .into_iter()
            .map(|e| SimilarExperiment {
                similarity: retrieval::similarity(proposal, &e),
                experiment: e,
            })
            .filter(|s| s.similarity > 0.0)
            .collect();
        out.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.experiment.proposal_seq.cmp(&b.experiment.proposal_seq))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// Experiments with a validation value of `metric`, best first in `direction`, each with its
    /// delta against the production version it started from and a compact one-line summary.
    pub async fn best_first(
        &self,
        metric: &str,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RankedExperiment>> {
        let (rows, def) = self
            .view_rows(
                "v_experiments",
                "WHERE offline_metrics IS NOT NULL",
                vec![],
                "proposal_seq, proposal_id",
            )
            .await?;
        let experiments = self.map(def, rows, experiment_view)?;
        let base: BTreeMap<String, f64> = self
            .leaderboard()
            .await?
            .into_iter()
            .filter_map(|v| v.metrics.get(metric).map(|m| (v.commit, *m)))
            .collect();
        Ok(retrieval::rank(
            experiments,
            metric,
            direction,
            |commit| base.get(commit).copied(),
            limit,
        ))
    }

    /// Close the connections (also happens on drop of the last handle of a [`Journal`]).
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

/// First line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always `recloop-journal`.
    pub format: String,
    /// Database schema version of the source.
    pub schema_version: i64,
    /// Event JSON version of the source.
    pub event_schema_version: u32,
    /// Events that follow.
    pub events: u64,
}

/// An artifact line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ArtifactLine {
    artifact: ArtifactHash,
    hex: String,
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// Events.
    pub events: u64,
    /// Artifacts.
    pub artifacts: u64,
}

struct SyncInner {
    runtime: Option<tokio::runtime::Runtime>,
    journal: AsyncJournal,
}

impl Drop for SyncInner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_err() {
                rt.block_on(self.journal.close());
            }
            rt.shutdown_background();
        }
    }
}

/// The journal for blocking code: every method runs on an internal runtime and waits.
///
/// Safe to call from plain threads and from inside a tokio runtime (the work then runs on the
/// journal's own thread while the caller's thread waits). Cheap to clone.
///
/// ```no_run
/// use recloop_journal::{Journal, NewEvent, Event, EventFilter};
/// let j = Journal::for_workspace(std::path::Path::new("."), None)?;
/// let started = j.append(
///     NewEvent::new("run-1", 0, Event::RunStarted {
///         seed: Some(7), production_commit: "abc".into(),
///         baseline: Default::default(), config: serde_json::Value::Null,
///     }).key("run-1/start"),
/// )?;
/// let events = j.events(&EventFilter { run_id: Some("run-1".into()), ..Default::default() })?;
/// # Ok::<(), recloop_journal::JournalError>(())
/// ```
#[derive(Clone)]
pub struct Journal {
    inner: Arc<SyncInner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("location", &self.location())
            .finish()
    }
}

impl Journal {
    /// Open a journal by URL or path: `postgres://…[?schema=NAME]`, `sqlite://PATH` or a path
    /// to the database file (created, with its directory, when missing).
    pub fn open(url_or_path: &str) -> Result<Journal> {
        Journal::open_location(&Location::parse(url_or_path)?)
    }

    /// The journal of a workspace: `url` if given, else `$RECLOOP_JOURNAL_URL`, else
    /// `WORKSPACE/.recloop/journal.db`.
    pub fn for_workspace(workspace: &Path, url: Option<&str>) -> Result<Journal> {
        Journal::open_location(&Location::for_workspace(workspace, url)?)
    }

    /// Open the journal at `location`.
    pub fn open_location(location: &Location) -> Result<Journal> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("recloop-journal")
            .enable_all()
            .build()
            .map_err(|e| {
                JournalError::Internal(format!("cannot start the journal runtime: {e}"))
            })?;
        let loc = location.clone();
        let journal = run_on(
            &runtime,
            async move { AsyncJournal::open_location(&loc).await },
        )?;
        Ok(Journal {
            inner: Arc::new(SyncInner {
                runtime: Some(runtime),
                journal,
            }),
        })
    }

    /// Run `f` with the async handle on the internal runtime and wait for its result.
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(AsyncJournal) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let rt =
            self.inner.runtime.as_ref().ok_or_else(|| {
                JournalError::Internal("journal runtime already shut down".into())
            })?;
        run_on(rt, f(self.inner.journal.clone()))
    }

    /// Printable location (passwords hidden).
    pub fn location(&self) -> &str {
        self.inner.journal.location()
    }

    /// Append one event; returns its id (the existing id when the idempotency key is known).
    pub fn append(&self, event: NewEvent) -> Result<EventId> {
        self.run(|j| async move { j.append(event).await })
    }

    /// Append several events in one transaction (all or none).
    pub fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<EventId>> {
        self.run(|j| async move { j.append_batch(events).await })
    }

    /// Store an artifact; returns its sha256.
    pub fn put_artifact(&self, bytes: &[u8]) -> Result<ArtifactHash> {
        let bytes = bytes.to_vec();
        self.run(|j| async move { j.put_artifact(bytes).await })
    }

    /// Read an artifact (hash checked).
    pub fn get_artifact(&self, hash: &ArtifactHash) -> Result<Vec<u8>> {
        let hash = hash.clone();
        self.run(|j| async move { j.get_artifact(&hash).await })
    }

    /// Events matching `filter`.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let filter = filter.clone();
        self.run(|j| async move { j.events(&filter).await })
    }

    /// The event with sequence number `seq`.
    pub fn event(&self, seq: u64) -> Result<Option<EventRecord>> {
        self.run(|j| async move { j.event(seq).await })
    }

    /// The event with uuid `id`.
    pub fn event_by_id(&self, id: Uuid) -> Result<Option<EventRecord>> {
        self.run(|j| async move { j.event_by_id(id).await })
    }

    /// The event appended with idempotency key `key`.
    pub fn find_by_key(&self, key: &str) -> Result<Option<EventRecord>> {
        let key = key.to_string();
        self.run(|j| async move { j.find_by_key(&key).await })
    }

    /// The last completed step (newest event) of a run.
    pub fn last_completed_step(&self, run_id: &str) -> Result<Option<EventRecord>> {
        let run_id = run_id.to_string();
        self.run(|j| async move { j.last_completed_step(&run_id).await })
    }

    /// Every event of an experiment, in order.
    pub fn lineage(&self, proposal_id: &str) -> Result<Vec<EventRecord>> {
        let p = proposal_id.to_string();
        self.run(|j| async move { j.lineage(&p).await })
    }

    /// Number of events.
    pub fn event_count(&self) -> Result<u64> {
        self.run(|j| async move { j.event_count().await })
    }

    /// Every run.
    pub fn runs(&self) -> Result<Vec<RunView>> {
        self.run(|j| async move { j.runs().await })
    }

    /// Every experiment with its lineage.
    pub fn experiments(&self) -> Result<Vec<ExperimentView>> {
        self.run(|j| async move { j.experiments().await })
    }

    /// One experiment.
    pub fn experiment(&self, proposal_id: &str) -> Result<Option<ExperimentView>> {
        let p = proposal_id.to_string();
        self.run(|j| async move { j.experiment(&p).await })
    }

    /// Production versions, oldest first.
    pub fn leaderboard(&self) -> Result<Vec<ProductionVersion>> {
        self.run(|j| async move { j.leaderboard().await })
    }

    /// Knowledge assets.
    pub fn assets(&self) -> Result<Vec<AssetView>> {
        self.run(|j| async move { j.assets().await })
    }

    /// Lessons with status.
    pub fn lessons(&self) -> Result<Vec<LessonView>> {
        self.run(|j| async move { j.lessons().await })
    }

    /// Agent steps of a run (all when `None`).
    pub fn trajectories(&self, run_id: Option<&str>) -> Result<Vec<TrajectoryView>> {
        let r = run_id.map(str::to_string);
        self.run(|j| async move { j.trajectories(r.as_deref()).await })
    }

    /// Harness versions of an agent (all when `None`).
    pub fn harness_versions(&self, agent: Option<&str>) -> Result<Vec<HarnessVersionView>> {
        let a = agent.map(str::to_string);
        self.run(|j| async move { j.harness_versions(a.as_deref()).await })
    }

    /// Spending per run and agent.
    pub fn budget(&self) -> Result<Vec<BudgetView>> {
        self.run(|j| async move { j.budget().await })
    }

    /// Full-text search with filters.
    pub fn search(&self, text: &str, filter: &SearchFilter) -> Result<Vec<SearchHit>> {
        let text = text.to_string();
        let filter = filter.clone();
        self.run(|j| async move { j.search(&text, &filter).await })
    }

    /// Past experiments similar to a proposal.
    pub fn similar_experiments(
        &self,
        proposal: &Proposal,
        limit: usize,
    ) -> Result<Vec<SimilarExperiment>> {
        let p = proposal.clone();
        self.run(|j| async move { j.similar_experiments(&p, limit).await })
    }

    /// Experiments ranked by a metric, best first, with compact deltas.
    pub fn best_first(
        &self,
        metric: &str,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RankedExperiment>> {
        let m = metric.to_string();
        self.run(|j| async move { j.best_first(&m, direction, limit).await })
    }

    /// Drop and rebuild every view from the log.
    pub fn rebuild_views(&self) -> Result<u64> {
        self.run(|j| async move { j.rebuild_views().await })
    }

    /// Verify the log and the database.
    pub fn verify(&self) -> Result<LogReport> {
        self.run(|j| async move { j.verify().await })
    }

    /// Canonical dump of every view.
    pub fn dump_views(&self) -> Result<String> {
        self.run(|j| async move { j.dump_views().await })
    }

    /// Write the whole journal as JSONL: a header line, one [`EventRecord`] per line, then (with
    /// `with_artifacts`) one `{"artifact": HASH, "hex": BYTES}` line per artifact.
    pub fn export_jsonl<W: Write>(
        &self,
        mut out: W,
        with_artifacts: bool,
    ) -> Result<TransferSummary> {
        let count = self.event_count()?;
        let header = ExportHeader {
            format: "recloop-journal".into(),
            schema_version: SCHEMA_VERSION,
            event_schema_version: EVENT_SCHEMA_VERSION,
            events: count,
        };
        let io = |e: std::io::Error| JournalError::io("export output", e);
        let line = |v: &dyn erased::Json| v.to_line();
        writeln!(out, "{}", line(&header)?).map_err(io)?;
        let mut after = 0u64;
        let mut events = 0u64;
        loop {
            let page = self.events(&EventFilter {
                after_seq: Some(after),
                limit: Some(2000),
                ..EventFilter::default()
            })?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for rec in &page {
                writeln!(out, "{}", line(rec)?).map_err(io)?;
                events += 1;
            }
        }
        let mut artifacts = 0u64;
        if with_artifacts {
            for hash in self.run(|j| async move { j.artifacts().await })? {
                let bytes = self.get_artifact(&hash)?;
                let l = ArtifactLine {
                    artifact: hash,
                    hex: hex::encode(bytes),
                };
                writeln!(out, "{}", line(&l)?).map_err(io)?;
                artifacts += 1;
            }
        }
        out.flush().map_err(io)?;
        Ok(TransferSummary { events, artifacts })
    }

    /// Read a JSONL export into this journal, which must be empty. Every line is checked
    /// (format, gap-free sequence, checksums, parents) and the import is one transaction.
    pub fn import_jsonl<R: BufRead>(&self, input: R, source_name: &str) -> Result<TransferSummary> {
        let err = |line: usize, reason: String| JournalError::Import {
            source_name: source_name.to_string(),
            line,
            reason,
        };
        let mut records = Vec::new();
        let mut artifacts = Vec::new();
        let mut saw_header = false;
        for (i, line) in input.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| err(n, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            if !saw_header {
                let h: ExportHeader = serde_json::from_str(&line)
                    .map_err(|e| err(n, format!("expected the export header line ({e})")))?;
                if h.format != "recloop-journal" {
                    return Err(err(
                        n,
                        format!("format `{}` is not recloop-journal", h.format),
                    ));
                }
                if h.schema_version > SCHEMA_VERSION
                    || h.event_schema_version > EVENT_SCHEMA_VERSION
                {
                    return Err(JournalError::FutureSchema {
                        location: source_name.to_string(),
                        found: h.schema_version.max(i64::from(h.event_schema_version)),
                        supported: SCHEMA_VERSION,
                    });
                }
                saw_header = true;
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| err(n, format!("not JSON ({e})")))?;
            if value.get("artifact").is_some() {
                let a: ArtifactLine = serde_json::from_value(value)
                    .map_err(|e| err(n, format!("malformed artifact line ({e})")))?;
                let bytes = hex::decode(&a.hex)
                    .map_err(|e| err(n, format!("artifact bytes are not hex ({e})")))?;
                if ArtifactHash::of(&bytes) != a.artifact {
                    return Err(err(
                        n,
                        format!("artifact {} does not match its content", a.artifact),
                    ));
                }
                artifacts.push(bytes);
            } else {
                let rec: EventRecord = serde_json::from_value(value)
                    .map_err(|e| err(n, format!("malformed event record ({e})")))?;
                records.push((n, rec));
            }
        }
        if !saw_header {
            return Err(err(1, "empty input: no export header".into()));
        }
        for (i, (n, rec)) in records.iter().enumerate() {
            if rec.seq != i as u64 + 1 {
                return Err(err(
                    *n,
                    format!("expected event #{}, found #{}", i + 1, rec.seq),
                ));
            }
        }
        let n_art = artifacts.len() as u64;
        for bytes in artifacts {
            self.put_artifact(&bytes)?;
        }
        let records: Vec<EventRecord> = records.into_iter().map(|(_, r)| r).collect();
        let events = self.run(|j| async move { j.import_records(records).await })?;
        Ok(TransferSummary {
            events,
            artifacts: n_art,
        })
    }
}

/// Run `fut` on `rt`: directly when the caller is outside any runtime, else on the runtime's
/// thread while this thread waits.
fn run_on<T, Fut>(rt: &tokio::runtime::Runtime, fut: Fut) -> Result<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| JournalError::Internal("journal task stopped before answering".into()))?
}

mod erased {
    use crate::error::{JournalError, Result};

    /// Serialise anything to one JSON line (object-safe helper for the export writer).
    pub(super) trait Json {
        fn to_line(&self) -> Result<String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_line(&self) -> Result<String> {
            serde_json::to_string(self)
                .map_err(|e| JournalError::Internal(format!("cannot serialise export line: {e}")))
        }
    }
}

// ----- paged reads (large journals) -------------------------------------------------------------

impl<B: Backend> AsyncJournal<B> {
    /// One page of experiments matching `q`, with the number that matched.
    pub async fn experiments_page(
        &self,
        q: &crate::paging::ExperimentQuery,
    ) -> Result<crate::paging::ExperimentPage> {
        let mut wheres = Vec::new();
        let mut params = Vec::new();
        for (col, v) in [
            ("run_id", q.run_id.clone()),
            ("status", q.status.clone()),
            ("decision", q.decision.map(|d| d.to_string())),
            ("base_commit", q.base_commit.clone()),
        ] {
            if let Some(v) = v {
                wheres.push(format!("{col} = ?"));
                params.push(Val::text(v));
            }
        }
        let where_sql = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        let count = self
            .rows(
                format!("SELECT COUNT(*) FROM v_experiments {where_sql}"),
                params.clone(),
                vec![ColType::Int],
            )
            .await?;
        let total = count
            .first()
            .and_then(|r| r[0].as_i64())
            .unwrap_or(0)
            .max(0) as u64;
        let limit = q.limit.unwrap_or(50).clamp(1, 1000);
        let order = if q.newest_first {
            "proposal_seq DESC, proposal_id DESC"
        } else {
            "proposal_seq, proposal_id"
        };
        // Sort and cut the keys first, then read the page's rows: sorting whole rows (with
        // their proposal and verdict JSON) is ~10x slower on a large journal.
        let page_sql = format!(
            "WHERE proposal_id IN (SELECT proposal_id FROM v_experiments {where_sql} \
             ORDER BY {order} LIMIT {limit} OFFSET {})",
            q.offset
        );
        let (rows, def) = self
            .view_rows("v_experiments", &page_sql, params, order)
            .await?;
        Ok(crate::paging::ExperimentPage {
            total,
            items: self.map(def, rows, experiment_view)?,
        })
    }

    /// Per run (one run when `run_id` is given) and iteration: proposals, rejections and
    /// verdicts, by run then iteration.
    pub async fn iteration_counts(
        &self,
        run_id: Option<&str>,
    ) -> Result<Vec<crate::paging::IterationCounts>> {
        let (where_sql, params) = match run_id {
            Some(r) => ("WHERE run_id = ?", vec![Val::text(r)]),
            None => ("WHERE run_id IS NOT NULL", vec![]),
        };
        let sql = format!(
            "SELECT run_id, COALESCE(iteration, 0), COUNT(*), \
             SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN decision = 'KEEP' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN decision = 'EXTEND' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN decision = 'DISCARD' THEN 1 ELSE 0 END) \
             FROM v_experiments {where_sql} GROUP BY run_id, COALESCE(iteration, 0) \
             ORDER BY run_id, COALESCE(iteration, 0)"
        );
        let rows = self
            .rows(
                sql,
                params,
                vec![
                    ColType::Text,
                    ColType::Int,
                    ColType::Int,
                    ColType::Int,
                    ColType::Int,
                    ColType::Int,
                    ColType::Int,
                ],
            )
            .await?;
        let n = |v: &Val| v.as_i64().unwrap_or(0).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| crate::paging::IterationCounts {
                run_id: r[0].string(),
                iteration: u32::try_from(n(&r[1])).unwrap_or(u32::MAX),
                experiments: n(&r[2]),
                rejected: n(&r[3]),
                keeps: n(&r[4]),
                extends: n(&r[5]),
                discards: n(&r[6]),
            })
            .collect())
    }
}

impl Journal {
    /// One page of experiments matching `q`, with the number that matched.
    pub fn experiments_page(
        &self,
        q: &crate::paging::ExperimentQuery,
    ) -> Result<crate::paging::ExperimentPage> {
        let q = q.clone();
        self.run(|j| async move { j.experiments_page(&q).await })
    }

    /// Per run and iteration: proposals, rejections and verdicts.
    pub fn iteration_counts(
        &self,
        run_id: Option<&str>,
    ) -> Result<Vec<crate::paging::IterationCounts>> {
        let r = run_id.map(str::to_string);
        self.run(|j| async move { j.iteration_counts(r.as_deref()).await })
    }
}
