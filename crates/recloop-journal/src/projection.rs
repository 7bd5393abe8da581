//! The projection: ONE function from an event to the view rows it writes.
//!
//! [`project`] is pure: it turns a stored [`EventRecord`] into a list of [`ViewOp`]s (upsert a row,
//! add to a counter, ...). Appending runs the ops in the same transaction as the event insert;
//! rebuilding empties the view tables and runs the ops of every event in sequence order. Both go
//! through `viewbatch`, which applies a batch's ops in memory and writes each touched row once,
//! with the same result as running `ViewOp::to_sql` op by op (tested). Because both paths use
//! this function and the ops never read the clock or anything outside the event, a rebuilt view
//! is identical to the incrementally maintained one.
//!
//! The projection records what happened; it holds no business rules (e.g. it does not decide a
//! lesson's status — the agents do, with `Lesson::promoted_status` — it only keeps `falsified`
//! permanent, as the event contract says).

use crate::event::{Event, EventRecord};
use crate::sql::Val;
use serde::Serialize;

/// How an op writes its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Insert, or update the given columns of the existing row.
    Upsert,
    /// Insert unless a row with the key exists.
    InsertIgnore,
    /// Update the existing row; no-op when absent.
    Update,
}

/// How one column is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Assign {
    /// Overwrite.
    Set(Val),
    /// Add to the current value (NULL counts as 0).
    Add(Val),
    /// Write only when the current value is NULL (first writer wins).
    Keep(Val),
    /// Overwrite unless the current value equals the given text (e.g. `falsified` is permanent).
    SetUnless(Val, &'static str),
}

/// One write to a view table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewOp {
    pub table: &'static str,
    pub mode: Mode,
    pub key: Vec<(&'static str, Val)>,
    pub cols: Vec<(&'static str, Assign)>,
}

impl ViewOp {
    fn upsert(table: &'static str, key: Vec<(&'static str, Val)>) -> ViewOp {
        ViewOp {
            table,
            mode: Mode::Upsert,
            key,
            cols: Vec::new(),
        }
    }

    fn with_mode(mut self, mode: Mode) -> ViewOp {
        self.mode = mode;
        self
    }

    fn set(mut self, col: &'static str, v: Val) -> ViewOp {
        self.cols.push((col, Assign::Set(v)));
        self
    }

    fn add(mut self, col: &'static str, v: Val) -> ViewOp {
        self.cols.push((col, Assign::Add(v)));
        self
    }

    fn keep(mut self, col: &'static str, v: Val) -> ViewOp {
        self.cols.push((col, Assign::Keep(v)));
        self
    }

    fn set_unless(mut self, col: &'static str, v: Val, sticky: &'static str) -> ViewOp {
        self.cols.push((col, Assign::SetUnless(v, sticky)));
        self
    }

    /// The SQL statement (with `?` placeholders) and its parameters: the meaning of the op, and
    /// the one-statement-per-op reference `viewbatch` is tested against.
    #[cfg(test)]
    pub(crate) fn to_sql(&self) -> (String, Vec<Val>) {
        let t = self.table;
        let mut params = Vec::with_capacity(self.key.len() + self.cols.len());
        match self.mode {
            Mode::Upsert | Mode::InsertIgnore => {
                let mut names: Vec<&str> = self.key.iter().map(|(k, _)| *k).collect();
                names.extend(self.cols.iter().map(|(c, _)| *c));
                for (_, v) in &self.key {
                    params.push(v.clone());
                }
                for (_, a) in &self.cols {
                    params.push(match a {
                        Assign::Set(v) | Assign::Add(v) | Assign::Keep(v) => v.clone(),
                        Assign::SetUnless(v, _) => v.clone(),
                    });
                }
                let marks = vec!["?"; names.len()].join(", ");
                let keys: Vec<&str> = self.key.iter().map(|(k, _)| *k).collect();
                let mut sql = format!(
                    "INSERT INTO {t} ({}) VALUES ({marks}) ON CONFLICT ({}) ",
                    names.join(", "),
                    keys.join(", ")
                );
                if self.mode == Mode::InsertIgnore || self.cols.is_empty() {
                    sql.push_str("DO NOTHING");
                } else {
                    let sets: Vec<String> = self
                        .cols
                        .iter()
                        .map(|(c, a)| match a {
                            Assign::Set(_) => format!("{c} = excluded.{c}"),
                            Assign::Add(v) => {
                                format!("{c} = COALESCE({t}.{c}, {}) + excluded.{c}", zero(v))
                            }
                            Assign::Keep(_) => format!("{c} = COALESCE({t}.{c}, excluded.{c})"),
                            Assign::SetUnless(_, s) => format!(
                                "{c} = CASE WHEN {t}.{c} = '{s}' THEN {t}.{c} ELSE excluded.{c} END"
                            ),
                        })
                        .collect();
                    sql.push_str("DO UPDATE SET ");
                    sql.push_str(&sets.join(", "));
                }
                (sql, params)
            }
            Mode::Update => {
                let sets: Vec<String> = self
                    .cols
                    .iter()
                    .map(|(c, a)| match a {
                        Assign::Set(_) => format!("{c} = ?"),
                        Assign::Add(v) => format!("{c} = COALESCE({c}, {}) + ?", zero(v)),
                        Assign::Keep(_) => format!("{c} = COALESCE({c}, ?)"),
                        Assign::SetUnless(_, s) => {
                            format!("{c} = CASE WHEN {c} = '{s}' THEN {c} ELSE ? END")
                        }
                    })
                    .collect();
                for (_, a) in &self.cols {
                    params.push(match a {
                        Assign::Set(v) | Assign::Add(v) | Assign::Keep(v) => v.clone(),
                        Assign::SetUnless(v, _) => v.clone(),
                    });
                }
                let wheres: Vec<String> =
                    self.key.iter().map(|(k, _)| format!("{k} = ?")).collect();
                for (_, v) in &self.key {
                    params.push(v.clone());
                }
                (
                    format!(
                        "UPDATE {t} SET {} WHERE {}",
                        sets.join(", "),
                        wheres.join(" AND ")
                    ),
                    params,
                )
            }
        }
    }
}

#[cfg(test)]
fn zero(v: &Val) -> &'static str {
    match v {
        Val::Real(_) => "0.0",
        _ => "0",
    }
}

/// The snake_case/kebab-case serde name of a unit enum value.
pub(crate) fn enum_name<T: Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Compact JSON text (maps are sorted, so the text is deterministic).
pub(crate) fn json<T: Serialize>(t: &T) -> Val {
    Val::Text(serde_json::to_string(t).ok())
}

fn int(v: u64) -> Val {
    Val::int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn experiment(pid: &str, seq: i64) -> ViewOp {
    ViewOp::upsert("v_experiments", vec![("proposal_id", Val::text(pid))])
        .set("updated_seq", Val::int(seq))
}

fn search_doc(doc_id: String) -> ViewOp {
    ViewOp::upsert("search_docs", vec![("doc_id", Val::Text(Some(doc_id)))])
}

fn lesson_ops(rec: &EventRecord, lesson: &recloop_core::Lesson) -> Vec<ViewOp> {
    let seq = seq_of(rec);
    let status = Val::text(enum_name(&lesson.status));
    let kind = enum_name(&lesson.kind);
    vec![
        ViewOp::upsert("v_lessons", vec![("lesson_id", Val::text(&lesson.id))])
            .set("kind", Val::text(&kind))
            .set_unless("status", status.clone(), "falsified")
            .set("text", Val::text(&lesson.text))
            .set("stage", Val::text_or_null(&lesson.index.stage))
            .set("objective", Val::text_or_null(&lesson.index.objective))
            .set("segment", Val::text_or_null(&lesson.index.segment))
            .set("lever", Val::text_or_null(&lesson.index.lever))
            .set("supporting_runs", json(&lesson.supporting_runs))
            .set(
                "supporting_experiments",
                json(&lesson.supporting_experiments),
            )
            .set(
                "falsification_failed",
                Val::int(i64::from(lesson.falsification_failed)),
            )
            .keep("created_seq", Val::int(seq))
            .set("updated_seq", Val::int(seq)),
        search_doc(format!("lesson:{}", lesson.id))
            .set("kind", Val::text("lesson"))
            .set("title", Val::text(&kind))
            .set("body", Val::text(&lesson.text))
            .set("stage", Val::text_or_null(&lesson.index.stage))
            .set("objective", Val::text_or_null(&lesson.index.objective))
            .set("segment", Val::text_or_null(&lesson.index.segment))
            .set("lever", Val::text_or_null(&lesson.index.lever))
            .set_unless("status", status, "falsified")
            .set("run_id", Val::text(&rec.run_id))
            .set("seq", Val::int(seq)),
    ]
}

fn seq_of(rec: &EventRecord) -> i64 {
    i64::try_from(rec.seq).unwrap_or(i64::MAX)
}

/// The view writes of one event.
pub(crate) fn project(rec: &EventRecord) -> Vec<ViewOp> {
    let seq = seq_of(rec);
    let run = || Val::text(&rec.run_id);
    let iteration = || Val::int(i64::from(rec.iteration));
    match &rec.event {
        Event::RunStarted {
            seed,
            production_commit,
            baseline,
            config,
        } => {
            let mut ops = vec![
                ViewOp::upsert("v_runs", vec![("run_id", run())])
                    .keep("started_seq", Val::int(seq))
                    .set("seed", Val::Text(seed.map(|s| s.to_string())))
                    .set("production_commit", Val::text(production_commit))
                    .set("config", json(config)),
            ];
            if !production_commit.is_empty() {
                ops.push(
                    ViewOp::upsert(
                        "v_leaderboard",
                        vec![("commit_id", Val::text(production_commit))],
                    )
                    .with_mode(Mode::InsertIgnore)
                    .set("seq", Val::int(seq))
                    .set("run_id", run())
                    .set("iteration", iteration())
                    .set("proposal_id", Val::Text(None))
                    .set("candidate_id", Val::Text(None))
                    .set("metrics", json(baseline)),
                );
            }
            ops
        }
        Event::RunResumed { .. } => {
            vec![ViewOp::upsert("v_runs", vec![("run_id", run())]).add("resumes", Val::int(1))]
        }
        Event::RunFinished { outcome, summary } => vec![
            ViewOp::upsert("v_runs", vec![("run_id", run())])
                .set("outcome", Val::text(outcome.as_str()))
                .set("summary", Val::text(summary))
                .set("finished_seq", Val::int(seq)),
        ],
        Event::ProposalMade { proposal: p } => vec![
            experiment(&p.id, seq)
                .set("run_id", run())
                .set("iteration", iteration())
                .set("title", Val::text(&p.title))
                .set("hypothesis", Val::text(&p.hypothesis))
                .set("mechanism", Val::text(&p.mechanism))
                .set("target_metric", Val::text(&p.target_metric))
                .set("direction", Val::text(enum_name(&p.direction)))
                .set("kind", Val::text(enum_name(&p.kind)))
                .set("maturity", Val::text(enum_name(&p.maturity)))
                .set("stage", Val::text_or_null(&p.stage))
                .set("lever", Val::text_or_null(&p.lever))
                .set("score", Val::real(p.score))
                .set("status", Val::text("proposed"))
                .set("proposal", json(p))
                .set("proposal_seq", Val::int(seq)),
            search_doc(format!("hypothesis:{}", p.id))
                .set("kind", Val::text("hypothesis"))
                .set("title", Val::text(&p.title))
                .set(
                    "body",
                    Val::text(format!("{}\n\n{}", p.hypothesis, p.mechanism)),
                )
                .set("stage", Val::text_or_null(&p.stage))
                .set("objective", Val::text_or_null(&p.target_metric))
                .set("segment", Val::Text(None))
                .set("lever", Val::text_or_null(&p.lever))
                .set("status", Val::Text(None))
                .set("run_id", run())
                .set("seq", Val::int(seq)),
        ],
        Event::ProposalAdmitted { proposal_id } => {
            vec![experiment(proposal_id, seq).set("status", Val::text("admitted"))]
        }
        Event::ProposalRejected {
            proposal_id,
            reason,
        } => vec![
            experiment(proposal_id, seq)
                .set("status", Val::text("rejected"))
                .set("reason", Val::text(reason)),
        ],
        Event::WorktreeCreated {
            proposal_id,
            candidate_id,
            path,
            branch,
            base_commit,
        } => vec![
            experiment(proposal_id, seq)
                .set("status", Val::text("developing"))
                .set("candidate_id", Val::text(candidate_id))
                .set("worktree", Val::text(path))
                .set("branch", Val::text(branch))
                .set("base_commit", Val::text(base_commit)),
        ],
        Event::GatePassed { proposal_id, .. } => {
            vec![experiment(proposal_id, seq).add("gates_passed", Val::int(1))]
        }
        Event::GateFailed { proposal_id, .. } => {
            vec![experiment(proposal_id, seq).add("gates_failed", Val::int(1))]
        }
        Event::CandidateReady { candidate: c } => {
            let mut op = experiment(&c.proposal, seq)
                .set("status", Val::text("candidate"))
                .set("candidate_id", Val::text(&c.id))
                .set("branch", Val::text(&c.branch))
                .set("base_commit", Val::text(&c.base_commit))
                .set("candidate_commit", Val::text(&c.commit))
                .set("diff_hash", Val::text_or_null(&c.diff_hash))
                .set("q_code", Val::real(c.quality.score()))
                .set("candidate_seq", Val::int(seq));
            if !c.offline.is_empty() {
                op = op.set("offline_metrics", json(&c.offline));
            }
            vec![op]
        }
        Event::OfflineResult {
            proposal_id,
            split,
            metrics,
            ..
        } => {
            if split == "validation" {
                vec![experiment(proposal_id, seq).set("offline_metrics", json(metrics))]
            } else {
                vec![experiment(proposal_id, seq)]
            }
        }
        Event::HoldoutResult {
            proposal_id,
            passed,
            ..
        } => vec![experiment(proposal_id, seq).set("holdout_passed", Val::int(i64::from(*passed)))],
        Event::ExperimentStarted {
            proposal_id,
            candidate_id,
            experiment_id,
            platform,
        } => vec![
            experiment(proposal_id, seq)
                .set("status", Val::text("online"))
                .set("candidate_id", Val::text(candidate_id))
                .set("experiment_id", Val::text(experiment_id))
                .set("platform", Val::text(platform)),
        ],
        Event::RampAdvanced {
            proposal_id,
            traffic,
            ..
        } => vec![experiment(proposal_id, seq).set("max_traffic", Val::real(*traffic))],
        Event::HealthHold { proposal_id, .. } => {
            vec![experiment(proposal_id, seq).add("health_holds", Val::int(1))]
        }
        Event::AttentionEscalation { proposal_id, .. } => {
            vec![experiment(proposal_id, seq).add("attention", Val::int(1))]
        }
        Event::Veto {
            proposal_id,
            guardrail,
            reason,
            ..
        } => vec![
            experiment(proposal_id, seq)
                .set("status", Val::text("vetoed"))
                .set("vetoed", Val::int(1))
                .set("reason", Val::text(format!("{guardrail}: {reason}"))),
        ],
        Event::Verdict {
            proposal_id,
            candidate_id,
            experiment_id,
            verdict,
        } => {
            let mut op = experiment(proposal_id, seq)
                .set("status", Val::text("decided"))
                .set("candidate_id", Val::text(candidate_id))
                .set("decision", Val::text(verdict.decision.to_string()))
                .set("verdict", json(verdict))
                .set("verdict_reason", Val::text(&verdict.reason))
                .set("verdict_seq", Val::int(seq));
            if let Some(x) = experiment_id {
                op = op.set("experiment_id", Val::text(x));
            }
            vec![op]
        }
        Event::MergedIntoProduction {
            proposal_id,
            candidate_id,
            commit,
            metrics,
        } => vec![
            experiment(proposal_id, seq)
                .set("status", Val::text("merged"))
                .set("merged_commit", Val::text(commit)),
            ViewOp::upsert("v_leaderboard", vec![("commit_id", Val::text(commit))])
                .with_mode(Mode::InsertIgnore)
                .set("seq", Val::int(seq))
                .set("run_id", run())
                .set("iteration", iteration())
                .set("proposal_id", Val::text(proposal_id))
                .set("candidate_id", Val::text(candidate_id))
                .set("metrics", json(metrics)),
        ],
        Event::KnowledgeAssetWritten { asset: a } => {
            let kind = enum_name(&a.kind);
            vec![
                ViewOp::upsert("v_assets", vec![("asset_id", Val::text(&a.id))])
                    .set("kind", Val::text(&kind))
                    .set("experiment_id", Val::Text(a.experiment.clone()))
                    .set("title", Val::text(&a.title))
                    .set("body", Val::text(&a.body))
                    .set("stage", Val::text_or_null(&a.index.stage))
                    .set("objective", Val::text_or_null(&a.index.objective))
                    .set("segment", Val::text_or_null(&a.index.segment))
                    .set("lever", Val::text_or_null(&a.index.lever))
                    .set("run_id", run())
                    .set("seq", Val::int(seq)),
                search_doc(format!("asset:{}", a.id))
                    .set("kind", Val::text(&kind))
                    .set("title", Val::text(&a.title))
                    .set("body", Val::text(&a.body))
                    .set("stage", Val::text_or_null(&a.index.stage))
                    .set("objective", Val::text_or_null(&a.index.objective))
                    .set("segment", Val::text_or_null(&a.index.segment))
                    .set("lever", Val::text_or_null(&a.index.lever))
                    .set("status", Val::Text(None))
                    .set("run_id", run())
                    .set("seq", Val::int(seq)),
            ]
        }
        Event::LessonProposed { lesson } | Event::LessonPromoted { lesson } => {
            lesson_ops(rec, lesson)
        }
        Event::LessonDemoted { lesson_id, reason } => vec![
            ViewOp::upsert("v_lessons", vec![("lesson_id", Val::text(lesson_id))])
                .with_mode(Mode::Update)
                .set_unless("status", Val::text("contested"), "falsified")
                .set("reason", Val::text(reason))
                .set("updated_seq", Val::int(seq)),
            search_doc(format!("lesson:{lesson_id}"))
                .with_mode(Mode::Update)
                .set_unless("status", Val::text("contested"), "falsified"),
        ],
        Event::LessonFalsified { lesson_id, reason } => vec![
            ViewOp::upsert("v_lessons", vec![("lesson_id", Val::text(lesson_id))])
                .with_mode(Mode::Update)
                .set("status", Val::text("falsified"))
                .set("reason", Val::text(reason))
                .set("updated_seq", Val::int(seq)),
            search_doc(format!("lesson:{lesson_id}"))
                .with_mode(Mode::Update)
                .set("status", Val::text("falsified")),
        ],
        Event::HarnessVersionCreated {
            version,
            parent_version,
            admitted,
            diagnosis,
            spec,
            diff,
            evidence,
        } => {
            let mut ops = vec![
                ViewOp::upsert(
                    "v_harness_versions",
                    vec![
                        ("agent", Val::text(&spec.agent)),
                        ("version", Val::int(i64::from(*version))),
                    ],
                )
                .set("parent_version", Val::Int(parent_version.map(i64::from)))
                .set("admitted", Val::int(i64::from(*admitted)))
                .set("diagnosis", Val::text(diagnosis))
                .set("spec", json(&spec.files))
                .set("diff", Val::text(diff))
                .set("evidence", json(evidence))
                .set("run_id", run())
                .set("seq", Val::int(seq)),
            ];
            if !diagnosis.is_empty() {
                ops.push(
                    search_doc(format!("diagnosis:{}:{}", spec.agent, version))
                        .set("kind", Val::text("diagnosis"))
                        .set(
                            "title",
                            Val::text(format!("harness {} v{}", spec.agent, version)),
                        )
                        .set("body", Val::text(diagnosis))
                        .set("stage", Val::text(format!("harness:{}", spec.agent)))
                        .set("objective", Val::Text(None))
                        .set("segment", Val::Text(None))
                        .set("lever", Val::Text(None))
                        .set(
                            "status",
                            Val::text(if *admitted { "admitted" } else { "rejected" }),
                        )
                        .set("run_id", run())
                        .set("seq", Val::int(seq)),
                );
            }
            ops
        }
        Event::BudgetSpent {
            agent,
            calls,
            tokens_in,
            tokens_out,
            usd,
            price_table_version,
            ..
        } => vec![
            ViewOp::upsert(
                "v_budget",
                vec![("run_id", run()), ("agent", Val::text(agent))],
            )
            .add("calls", int(*calls))
            .add("tokens_in", int(*tokens_in))
            .add("tokens_out", int(*tokens_out))
            .add("usd", Val::real(*usd))
            .set("price_table_version", Val::text(price_table_version)),
        ],
        Event::TrajectoryStep { proposal_id, step } => vec![
            ViewOp::upsert("v_trajectories", vec![("seq", Val::int(seq))])
                .set("run_id", run())
                .set("iteration", iteration())
                .set("proposal_id", Val::Text(proposal_id.clone()))
                .set("agent", Val::text(&step.agent))
                .set("input", Val::text(&step.input))
                .set("output", Val::text(&step.output))
                .set("tool_calls", json(&step.tool_calls))
                .set("tokens_in", int(step.tokens_in))
                .set("tokens_out", int(step.tokens_out))
                .set("cost_usd", Val::real(step.cost_usd))
                .set("duration_ms", int(step.duration_ms)),
        ],
        Event::ApprovalRequested {
            proposal_id: Some(pid),
            ..
        } => vec![experiment(pid, seq).set("status", Val::text("awaiting_approval"))],
        Event::StageFailed {
            proposal_id: Some(pid),
            stage,
            class,
            detail,
        } => vec![experiment(pid, seq).set("status", Val::text("error")).set(
            "reason",
            Val::text(format!("{} failure in {stage}: {detail}", class.as_str())),
        )],
        Event::ApprovalRequested { .. }
        | Event::ApprovalAnswered { .. }
        | Event::StageFailed { .. }
        | Event::EvolveRoundFinished { .. }
        | Event::OffPolicyResult { .. }
        | Event::JobSubmitted { .. }
        | Event::JobEnded { .. }
        | Event::LeaseAcquired { .. }
        | Event::LeaseExpired { .. }
        | Event::LeaseTakenOver { .. }
        | Event::CandidateState { .. }
        | Event::Note { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_sql_uses_excluded_and_counters() {
        let op = ViewOp::upsert("v_budget", vec![("run_id", Val::text("r"))])
            .add("calls", Val::int(1))
            .keep("first", Val::int(3))
            .set_unless("status", Val::text("x"), "falsified");
        let (sql, params) = op.to_sql();
        assert_eq!(
            sql,
            "INSERT INTO v_budget (run_id, calls, first, status) VALUES (?, ?, ?, ?) \
             ON CONFLICT (run_id) DO UPDATE SET calls = COALESCE(v_budget.calls, 0) + excluded.calls, \
             first = COALESCE(v_budget.first, excluded.first), \
             status = CASE WHEN v_budget.status = 'falsified' THEN v_budget.status ELSE excluded.status END"
        );
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn update_sql_binds_sets_then_keys() {
        let op = ViewOp::upsert("v_lessons", vec![("lesson_id", Val::text("l1"))])
            .with_mode(Mode::Update)
            .set("reason", Val::text("why"));
        let (sql, params) = op.to_sql();
        assert_eq!(sql, "UPDATE v_lessons SET reason = ? WHERE lesson_id = ?");
        assert_eq!(params, vec![Val::text("why"), Val::text("l1")]);
    }
}
