//! The journal's API for async code, [`AsyncJournal`]: append, read, views, search. The blocking
//! facade is [`crate::Journal`] (`blocking.rs`); the JSONL transfer format is in `transfer.rs`.

use crate::artifact::ArtifactHash;
use crate::backend::{AnyBackend, Backend, Location};
use crate::error::{JournalError, Result};
use crate::event::{EventId, EventRecord, NewEvent};
use crate::retrieval;
use crate::schema::{TableDef, VIEW_TABLES};
use crate::sql::{ColType, Dialect, Val};
use crate::store::{EVENT_COLUMNS, EVENT_TYPES, LogReport, record_from_row};
use crate::views::*;
use recloop_core::{Direction, Proposal};
use std::collections::{BTreeMap, BTreeSet};
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

    /// One read-only SQL query over the journal's tables (see [`crate::analysis`]).
    pub async fn query_read_only(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: std::time::Duration,
    ) -> Result<crate::analysis::QueryResult> {
        self.backend
            .query_read_only(sql.to_string(), max_rows, timeout)
            .await
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
