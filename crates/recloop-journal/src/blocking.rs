//! The journal for blocking code: a thin facade over [`AsyncJournal`] that runs each call on an
//! internal runtime and waits (usable from plain threads and from inside another runtime).

use crate::artifact::ArtifactHash;
use crate::backend::Location;
use crate::error::{JournalError, Result};
use crate::event::{EventId, EventRecord, NewEvent};
use crate::journal::AsyncJournal;
use crate::store::LogReport;
use crate::views::*;
use recloop_core::{Direction, Proposal};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

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
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T>
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

    /// One read-only SQL query over the journal's tables (see [`crate::analysis`]): at most
    /// `max_rows` rows (`truncated` says when there were more), stopped at `timeout`.
    pub fn query_read_only(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: std::time::Duration,
    ) -> Result<crate::analysis::QueryResult> {
        let sql = sql.to_string();
        self.run(move |j| async move { j.query_read_only(&sql, max_rows, timeout).await })
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
}

/// Run `fut` on `rt`: directly when the caller is outside any runtime, else on the runtime's
/// thread while this thread waits.
pub(crate) fn run_on<T, Fut>(rt: &tokio::runtime::Runtime, fut: Fut) -> Result<T>
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
