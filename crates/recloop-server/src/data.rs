//! What the pages and the API show, read from the journal (blocking calls; the handlers run
//! them on tokio's blocking pool). Every value here is plain, serialisable data: the JSON API
//! returns it as is and the templates render the same structures.

use crate::chart::Point;
use crate::error::{Result, ServerError};
use recloop_agents::approvals::{self, ApprovalStatus};
use recloop_core::{
    CodeQuality, Decision, Direction, GuardrailSpec, Manifest, Proposal, ScoreWeights, Verdict,
};
use recloop_journal::{
    Event, EventFilter, EventRecord, ExperimentQuery, ExperimentView, Journal, ProductionVersion,
    RunView, SearchFilter,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// Diffs longer than this are cut (the rest stays in the journal's artifact).
const MAX_DIFF_CHARS: usize = 200_000;
/// A run without `run_finished` whose newest event is older than this is shown as stopped.
const STALE_AFTER_S: i64 = 300;

/// Where the server reads from: the journal, and the workspace manifest when one was given
/// (it names the primary metric, the north star and the guardrail limits).
#[derive(Clone, Debug)]
pub struct Source {
    /// The journal.
    pub journal: Journal,
    /// The workspace manifest, when `--workspace` was given and it parses.
    pub manifest: Option<Manifest>,
}

fn agent_err(e: recloop_agents::AgentError) -> ServerError {
    match e {
        recloop_agents::AgentError::NotFound(m) => ServerError::NotFound(m),
        other => ServerError::Approval(other.to_string()),
    }
}

// ----- metrics ----------------------------------------------------------------------------------

/// The metrics a run is judged by.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsInfo {
    /// Primary metric name.
    pub primary: String,
    /// Its direction, when known.
    pub direction: Option<Direction>,
    /// Where the names come from: `manifest`, or `inferred` from the proposals' target metric.
    pub source: String,
    /// North-star metric, when the manifest names one.
    pub north_star: Option<String>,
    /// Guardrails with their limits (manifest only).
    pub guardrails: Vec<GuardrailSpec>,
}

impl Source {
    /// The metrics from the manifest, or inferred from the newest proposal.
    pub fn metrics(&self) -> Result<MetricsInfo> {
        if let Some(m) = &self.manifest {
            return Ok(MetricsInfo {
                primary: m.metrics.primary.name.clone(),
                direction: Some(m.metrics.primary.direction),
                source: "manifest".into(),
                north_star: m.metrics.north_star.as_ref().map(|n| n.name.clone()),
                guardrails: m.metrics.guardrails.clone(),
            });
        }
        let newest = self.journal.events(&EventFilter {
            types: vec!["proposal_made".into()],
            newest_first: true,
            limit: Some(1),
            ..EventFilter::default()
        })?;
        let proposal = newest.into_iter().find_map(|r| match r.event {
            Event::ProposalMade { proposal } => Some(proposal),
            _ => None,
        });
        Ok(MetricsInfo {
            primary: proposal
                .as_ref()
                .map(|p| p.target_metric.clone())
                .unwrap_or_default(),
            direction: proposal.map(|p| p.direction),
            source: "inferred".into(),
            north_star: None,
            guardrails: Vec::new(),
        })
    }
}

// ----- runs -------------------------------------------------------------------------------------

/// Money and tokens one agent (role) spent in a run.
#[derive(Debug, Clone, Serialize)]
pub struct Spend {
    /// Agent.
    pub agent: String,
    /// Model calls.
    pub calls: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// US dollars.
    pub usd: f64,
}

/// A metric value with its guardrail limits.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    /// Metric.
    pub name: String,
    /// The candidate's value (experiment page) or production's (runs page).
    pub value: Option<f64>,
    /// Production's value the candidate is compared with (experiment page).
    pub production: Option<f64>,
    /// value − production.
    pub delta: Option<f64>,
    /// `primary`, `north_star`, `guardrail` or empty.
    pub role: String,
    /// Guardrail limits in words (e.g. `attention 5% worse, hard 20% worse`).
    pub limits: String,
}

/// One pending approval, briefly.
#[derive(Debug, Clone, Serialize)]
pub struct PendingBrief {
    /// Approval id.
    pub id: String,
    /// The question.
    pub question: String,
}

/// One run with what it achieved so far.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// `running`, `waiting for approval`, `finished`, `budget exhausted`, `interrupted`,
    /// `failed` or `stopped` (no end recorded and no event for a while).
    pub status: String,
    /// The recorded outcome, once finished.
    pub outcome: Option<String>,
    /// Final summary.
    pub summary: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// Times resumed.
    pub resumes: u32,
    /// Time of the newest event.
    pub last_event: Option<String>,
    /// Iterations with at least one proposal.
    pub iterations: u64,
    /// Proposals.
    pub experiments: u64,
    /// KEEP verdicts.
    pub keeps: u64,
    /// EXTEND verdicts.
    pub extends: u64,
    /// DISCARD verdicts.
    pub discards: u64,
    /// Proposals rejected before development.
    pub rejected: u64,
    /// Current production commit of the run.
    pub production_commit: Option<String>,
    /// Primary metric at the start of the run and now.
    pub primary_start: Option<f64>,
    /// Primary metric of the current production.
    pub primary_now: Option<f64>,
    /// North star and guardrails of the current production (offline values where recorded).
    pub metrics: Vec<MetricRow>,
    /// Spending per role.
    pub spend: Vec<Spend>,
    /// Total spent.
    pub spend_usd: f64,
    /// Approvals waiting for a person.
    pub pending: Vec<PendingBrief>,
    /// The production metric over iterations (KEEP points marked).
    pub chart: Vec<Point>,
    /// Effective settings (secrets masked).
    pub config: serde_json::Value,
}

/// The Runs page.
#[derive(Debug, Clone, Serialize)]
pub struct RunsData {
    /// The metrics runs are judged by.
    pub metrics: MetricsInfo,
    /// Every run, newest first.
    pub runs: Vec<RunSummary>,
    /// Events in the journal (newest sequence number).
    pub latest_seq: u64,
}

/// One iteration of a run.
#[derive(Debug, Clone, Serialize)]
pub struct IterationRow {
    /// Iteration.
    pub iteration: u32,
    /// Proposals.
    pub experiments: u64,
    /// Rejected before development.
    pub rejected: u64,
    /// KEEP verdicts.
    pub keeps: u64,
    /// EXTEND verdicts.
    pub extends: u64,
    /// DISCARD verdicts.
    pub discards: u64,
    /// Primary metric of production at the end of the iteration.
    pub production: Option<f64>,
}

/// One run in detail.
#[derive(Debug, Clone, Serialize)]
pub struct RunData {
    /// The metrics.
    pub metrics: MetricsInfo,
    /// The run.
    pub run: RunSummary,
    /// Its iterations (paged, newest first).
    pub iterations: Vec<IterationRow>,
    /// Iterations in all.
    pub iterations_total: u64,
    /// Paging of the iterations.
    pub page: PageInfo,
}

/// Paging of a list.
#[derive(Debug, Clone, Serialize)]
pub struct PageInfo {
    /// Items that matched.
    pub total: u64,
    /// Page size.
    pub limit: usize,
    /// Skipped items.
    pub offset: usize,
    /// Offset of the previous page, if any.
    pub prev: Option<usize>,
    /// Offset of the next page, if any.
    pub next: Option<usize>,
}

impl PageInfo {
    /// Paging of `total` items at `offset` by `limit`.
    pub fn new(total: u64, limit: usize, offset: usize) -> PageInfo {
        let limit = limit.max(1);
        PageInfo {
            total,
            limit,
            offset,
            prev: (offset > 0).then(|| offset.saturating_sub(limit)),
            next: ((offset + limit) as u64)
                .lt(&total)
                .then_some(offset + limit),
        }
    }
}

fn run_status(run: &RunView, pending: bool, last: Option<&EventRecord>) -> String {
    match run.outcome.as_deref() {
        Some("completed") => "finished".into(),
        Some("budget_exhausted") => "budget exhausted".into(),
        Some(other) => other.replace('_', " "),
        None if pending => "waiting for approval".into(),
        None => {
            let age = last.map(|e| (chrono::Utc::now() - e.timestamp).num_seconds());
            if age.is_some_and(|a| a > STALE_AFTER_S) {
                "stopped".into()
            } else {
                "running".into()
            }
        }
    }
}

fn limits_text(g: &GuardrailSpec) -> String {
    let mut parts = Vec::new();
    let pct = |v: f64| format!("{:.1}% worse", v * 100.0);
    if let Some(a) = g.attention {
        parts.push(format!("attention {}", pct(a)));
    }
    if let Some(h) = g.hard {
        parts.push(format!("hard {}", pct(h)));
    }
    if let Some(a) = g.attention_max {
        parts.push(format!("attention above {a}"));
    }
    if let Some(m) = g.max {
        parts.push(format!("hard above {m}"));
    }
    if let Some(a) = g.attention_min {
        parts.push(format!("attention below {a}"));
    }
    if let Some(m) = g.min {
        parts.push(format!("hard below {m}"));
    }
    parts.join(", ")
}

/// Rows for the primary, north star and guardrails: `value` from `now`, `production` from `base`.
fn metric_rows(
    m: &MetricsInfo,
    now: &BTreeMap<String, f64>,
    base: Option<&BTreeMap<String, f64>>,
) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    let mut push = |name: &str, role: &str, limits: String| {
        let value = now.get(name).copied();
        let production = base.and_then(|b| b.get(name).copied());
        rows.push(MetricRow {
            name: name.to_string(),
            value,
            production,
            delta: value.zip(production).map(|(v, p)| v - p),
            role: role.into(),
            limits,
        });
    };
    if !m.primary.is_empty() {
        push(&m.primary, "primary", String::new());
    }
    if let Some(n) = &m.north_star {
        push(n, "north_star", String::new());
    }
    for g in &m.guardrails {
        push(&g.name, "guardrail", limits_text(g));
    }
    let shown: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    for (k, v) in now {
        if !shown.contains(k) {
            let production = base.and_then(|b| b.get(k).copied());
            rows.push(MetricRow {
                name: k.clone(),
                value: Some(*v),
                production,
                delta: production.map(|p| v - p),
                role: String::new(),
                limits: String::new(),
            });
        }
    }
    rows
}

impl Source {
    fn summaries(
        &self,
        only: Option<&str>,
    ) -> Result<(
        MetricsInfo,
        Vec<RunSummary>,
        Vec<recloop_journal::IterationCounts>,
    )> {
        let metrics = self.metrics()?;
        let runs: Vec<RunView> = self
            .journal
            .runs()?
            .into_iter()
            .filter(|r| only.is_none_or(|o| o == r.run_id))
            .collect();
        if runs.is_empty() {
            return Ok((metrics, Vec::new(), Vec::new()));
        }
        let counts = self.journal.iteration_counts(only)?;
        let board = self.journal.leaderboard()?;
        let budget = self.journal.budget()?;
        let pending: Vec<ApprovalStatus> = approvals::list(&self.journal)
            .map_err(agent_err)?
            .into_iter()
            .filter(|a| a.answer.is_none())
            .collect();
        let mut out = Vec::new();
        for run in runs.iter().rev() {
            let last = self.journal.last_completed_step(&run.run_id)?;
            let mine: Vec<&recloop_journal::IterationCounts> =
                counts.iter().filter(|c| c.run_id == run.run_id).collect();
            let versions: Vec<&ProductionVersion> = board
                .iter()
                .filter(|v| v.run_id.as_deref() == Some(run.run_id.as_str()))
                .collect();
            let chart: Vec<Point> = versions
                .iter()
                .filter_map(|v| {
                    v.metrics.get(&metrics.primary).map(|y| Point {
                        x: f64::from(v.iteration.unwrap_or(0)),
                        y: *y,
                        keep: v.proposal_id.is_some(),
                        label: match &v.proposal_id {
                            Some(p) => format!(
                                "KEEP {p} at iteration {}: {} = {y:.5}",
                                v.iteration.unwrap_or(0),
                                metrics.primary
                            ),
                            None => format!("start: {} = {y:.5}", metrics.primary),
                        },
                    })
                })
                .collect();
            // production holds until the run's latest iteration
            let mut chart = chart;
            let latest = mine
                .iter()
                .map(|c| f64::from(c.iteration))
                .fold(0.0, f64::max);
            if let Some(last) = chart.last().cloned()
                && latest > last.x
            {
                chart.push(Point {
                    x: latest,
                    y: last.y,
                    keep: false,
                    label: format!("iteration {latest}: {} = {:.5}", metrics.primary, last.y),
                });
            }
            let now = versions
                .last()
                .map(|v| v.metrics.clone())
                .unwrap_or_default();
            let start = versions.first().map(|v| v.metrics.clone());
            let spend: Vec<Spend> = budget
                .iter()
                .filter(|b| b.run_id == run.run_id)
                .map(|b| Spend {
                    agent: b.agent.clone(),
                    calls: b.calls,
                    tokens_in: b.tokens_in,
                    tokens_out: b.tokens_out,
                    usd: b.usd,
                })
                .collect();
            let run_pending: Vec<PendingBrief> = pending
                .iter()
                .filter(|a| a.run_id == run.run_id)
                .map(|a| PendingBrief {
                    id: a.id.clone(),
                    question: a.question.clone(),
                })
                .collect();
            out.push(RunSummary {
                run_id: run.run_id.clone(),
                status: run_status(run, !run_pending.is_empty(), last.as_ref()),
                outcome: run.outcome.clone(),
                summary: run.summary.clone(),
                seed: run.seed,
                resumes: run.resumes,
                last_event: last.map(|e| e.timestamp.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                iterations: mine.len() as u64,
                experiments: mine.iter().map(|c| c.experiments).sum(),
                keeps: mine.iter().map(|c| c.keeps).sum(),
                extends: mine.iter().map(|c| c.extends).sum(),
                discards: mine.iter().map(|c| c.discards).sum(),
                rejected: mine.iter().map(|c| c.rejected).sum(),
                production_commit: versions
                    .last()
                    .map(|v| v.commit.clone())
                    .or_else(|| run.production_commit.clone()),
                primary_start: start
                    .as_ref()
                    .and_then(|m| m.get(&metrics.primary).copied()),
                primary_now: now.get(&metrics.primary).copied(),
                metrics: metric_rows(&metrics, &now, None),
                spend_usd: spend.iter().map(|s| s.usd).sum(),
                spend,
                pending: run_pending,
                chart,
                config: run.config.clone(),
            });
        }
        Ok((metrics, out, counts))
    }

    /// The Runs page: every run, newest first.
    pub fn runs(&self) -> Result<RunsData> {
        let (metrics, runs, _) = self.summaries(None)?;
        Ok(RunsData {
            metrics,
            runs,
            latest_seq: self.latest_seq()?,
        })
    }

    /// One run with its iterations (newest first, paged).
    pub fn run(&self, run_id: &str, limit: usize, offset: usize) -> Result<RunData> {
        let (metrics, mut runs, counts) = self.summaries(Some(run_id))?;
        let Some(run) = runs.pop() else {
            return Err(ServerError::NotFound(format!("run {run_id}")));
        };
        // production value at the end of each iteration: the newest merge at or before it
        let merges: Vec<(u32, f64)> = run.chart.iter().map(|p| (p.x as u32, p.y)).collect();
        let total = counts.len() as u64;
        let iterations = counts
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|c| IterationRow {
                iteration: c.iteration,
                experiments: c.experiments,
                rejected: c.rejected,
                keeps: c.keeps,
                extends: c.extends,
                discards: c.discards,
                production: merges
                    .iter()
                    .rev()
                    .find(|(it, _)| *it <= c.iteration)
                    .map(|(_, v)| *v),
            })
            .collect();
        Ok(RunData {
            metrics,
            run,
            iterations,
            iterations_total: total,
            page: PageInfo::new(total, limit, offset),
        })
    }

    /// Sequence number of the newest event (0 for an empty journal).
    pub fn latest_seq(&self) -> Result<u64> {
        Ok(self
            .journal
            .events(&EventFilter {
                newest_first: true,
                limit: Some(1),
                ..EventFilter::default()
            })?
            .first()
            .map_or(0, |e| e.seq))
    }
}

// ----- experiments ------------------------------------------------------------------------------

/// One experiment in a list.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRow {
    /// Experiment (proposal) id.
    pub proposal_id: String,
    /// Run.
    pub run_id: Option<String>,
    /// Iteration.
    pub iteration: Option<u32>,
    /// Title.
    pub title: String,
    /// Lifecycle status.
    pub status: String,
    /// Decision.
    pub decision: Option<Decision>,
    /// Lever.
    pub lever: Option<String>,
    /// Stage.
    pub stage: Option<String>,
    /// Score S.
    pub score: Option<f64>,
    /// Q_code.
    pub q_code: Option<f64>,
    /// The candidate's primary metric (validation split).
    pub primary: Option<f64>,
}

/// A page of experiments.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentsData {
    /// Primary metric name.
    pub primary: String,
    /// The filter applied.
    pub filter: ExperimentQuery,
    /// Paging.
    pub page: PageInfo,
    /// The experiments.
    pub items: Vec<ExperimentRow>,
}

fn row(e: &ExperimentView, primary: &str) -> ExperimentRow {
    ExperimentRow {
        proposal_id: e.proposal_id.clone(),
        run_id: e.run_id.clone(),
        iteration: e.iteration,
        title: e.title.clone(),
        status: e.status.clone(),
        decision: e.decision,
        lever: e.lever.clone(),
        stage: e.stage.clone(),
        score: e.score,
        q_code: e.q_code,
        primary: e.offline_metrics.get(primary).copied(),
    }
}

/// A gate check of a candidate.
#[derive(Debug, Clone, Serialize)]
pub struct GateRow {
    /// Gate.
    pub gate: String,
    /// Passed?
    pub passed: bool,
    /// Repair round.
    pub round: u32,
    /// Output / repair instruction.
    pub detail: String,
}

/// One online ramp step.
#[derive(Debug, Clone, Serialize)]
pub struct RampRow {
    /// Step (0-based).
    pub step: u32,
    /// Treatment traffic share.
    pub traffic: f64,
    /// When.
    pub time: String,
}

/// The online part of an experiment.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineData {
    /// Platform experiment id.
    pub experiment_id: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Ramp steps.
    pub ramp: Vec<RampRow>,
    /// Health holds: (reason, SRM p-value).
    pub holds: Vec<(String, Option<f64>)>,
    /// Vetoes: (guardrail, reason).
    pub vetoes: Vec<(String, String)>,
    /// Attention escalations: (guardrail, reason, answer).
    pub escalations: Vec<(String, String, Option<bool>)>,
}

/// Another experiment, briefly (lineage).
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentLink {
    /// Id.
    pub proposal_id: String,
    /// Title.
    pub title: String,
    /// Decision.
    pub decision: Option<Decision>,
}

/// A line of an experiment's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineRow {
    /// Sequence number.
    pub seq: u64,
    /// Time.
    pub time: String,
    /// Event type.
    pub kind: String,
}

/// Everything about one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentData {
    /// The view row (lifecycle, candidate, metrics, verdict).
    pub experiment: ExperimentView,
    /// The proposal.
    pub proposal: Option<Proposal>,
    /// Weights λ of the score S.
    pub weights: ScoreWeights,
    /// The unified diff (secrets masked, cut at 200,000 characters).
    pub diff: Option<String>,
    /// Why there is no diff, when there is none.
    pub diff_note: Option<String>,
    /// Gate checks in order.
    pub gates: Vec<GateRow>,
    /// The measurements behind Q_code.
    pub quality: Option<CodeQuality>,
    /// Offline metrics of the candidate vs the production it started from.
    pub offline: Vec<MetricRow>,
    /// Online experiment.
    pub online: Option<OnlineData>,
    /// The verdict.
    pub verdict: Option<Verdict>,
    /// Machinery failures: (stage, class, detail).
    pub stage_failures: Vec<(String, String, String)>,
    /// Approvals about this experiment.
    pub approvals: Vec<ApprovalStatus>,
    /// The experiment whose KEEP produced the production it started from.
    pub parent: Option<ExperimentLink>,
    /// Experiments that started from the production this one's KEEP produced.
    pub children: Vec<ExperimentLink>,
    /// Children in all (the list is cut at 100).
    pub children_total: u64,
    /// Its events.
    pub timeline: Vec<TimelineRow>,
}

impl Source {
    /// A page of experiments.
    pub fn experiments(&self, q: &ExperimentQuery) -> Result<ExperimentsData> {
        let primary = self.metrics()?.primary;
        let page = self.journal.experiments_page(q)?;
        let limit = q.limit.unwrap_or(50).clamp(1, 1000);
        Ok(ExperimentsData {
            items: page.items.iter().map(|e| row(e, &primary)).collect(),
            page: PageInfo::new(page.total, limit, q.offset),
            filter: q.clone(),
            primary,
        })
    }

    /// One experiment with its lineage.
    pub fn experiment(&self, id: &str) -> Result<ExperimentData> {
        let Some(exp) = self.journal.experiment(id)? else {
            return Err(ServerError::NotFound(format!("experiment {id}")));
        };
        let metrics = self.metrics()?;
        let events = self.journal.lineage(id)?;
        let mut gates = Vec::new();
        let mut quality = None;
        let mut ramp = Vec::new();
        let mut holds = Vec::new();
        let mut vetoes = Vec::new();
        let mut escalations = Vec::new();
        let mut stage_failures = Vec::new();
        let mut started = None;
        for r in &events {
            match &r.event {
                Event::GatePassed {
                    gate,
                    round,
                    detail,
                    ..
                }
                | Event::GateFailed {
                    gate,
                    round,
                    detail,
                    ..
                } => gates.push(GateRow {
                    gate: serde_json::to_value(gate)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    passed: matches!(r.event, Event::GatePassed { .. }),
                    round: *round,
                    detail: detail.clone(),
                }),
                Event::CandidateReady { candidate } => quality = Some(candidate.quality),
                Event::ExperimentStarted {
                    experiment_id,
                    platform,
                    ..
                } => started = Some((experiment_id.clone(), platform.clone())),
                Event::RampAdvanced { step, traffic, .. } => ramp.push(RampRow {
                    step: *step,
                    traffic: *traffic,
                    time: r.timestamp.format("%Y-%m-%d %H:%M:%S").to_string(),
                }),
                Event::HealthHold {
                    reason,
                    srm_p_value,
                    ..
                } => holds.push((reason.clone(), *srm_p_value)),
                Event::Veto {
                    guardrail, reason, ..
                } => vetoes.push((guardrail.clone(), reason.clone())),
                Event::AttentionEscalation {
                    guardrail,
                    reason,
                    approved,
                    ..
                } => escalations.push((guardrail.clone(), reason.clone(), *approved)),
                Event::StageFailed {
                    stage,
                    class,
                    detail,
                    ..
                } => {
                    stage_failures.push((stage.clone(), class.as_str().to_string(), detail.clone()))
                }
                _ => {}
            }
        }
        let online = (started.is_some() || !ramp.is_empty()).then(|| OnlineData {
            experiment_id: started.as_ref().map(|s| s.0.clone()),
            platform: started.as_ref().map(|s| s.1.clone()),
            ramp,
            holds,
            vetoes,
            escalations,
        });
        let (diff, diff_note) = match exp.diff_hash.as_deref().filter(|h| !h.is_empty()) {
            None => (
                None,
                Some("no candidate was built, so there is no diff".to_string()),
            ),
            Some(h) => match recloop_journal::ArtifactHash::parse(h) {
                Err(_) => (None, Some(format!("diff hash {h} is not a sha256"))),
                Ok(hash) => match self.journal.get_artifact(&hash) {
                    Ok(bytes) => {
                        let mut t = String::from_utf8_lossy(&bytes).into_owned();
                        if t.len() > MAX_DIFF_CHARS {
                            let mut cut = MAX_DIFF_CHARS;
                            while !t.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            t.truncate(cut);
                            t.push_str("\n… (cut; the whole diff is in the journal's artifact)");
                        }
                        (Some(t), None)
                    }
                    Err(recloop_journal::JournalError::NotFound { .. }) => (
                        None,
                        Some(format!("the diff artifact {h} is not in the journal")),
                    ),
                    Err(e) => return Err(e.into()),
                },
            },
        };
        let board = self.journal.leaderboard()?;
        let base = exp
            .base_commit
            .as_ref()
            .and_then(|c| board.iter().rev().find(|v| &v.commit == c));
        let parent = match base.and_then(|b| b.proposal_id.clone()) {
            Some(p) => self.journal.experiment(&p)?.map(|e| ExperimentLink {
                proposal_id: e.proposal_id,
                title: e.title,
                decision: e.decision,
            }),
            None => None,
        };
        let (children, children_total) = match &exp.merged_commit {
            Some(c) => {
                let page = self.journal.experiments_page(&ExperimentQuery {
                    base_commit: Some(c.clone()),
                    limit: Some(100),
                    ..ExperimentQuery::default()
                })?;
                (
                    page.items
                        .into_iter()
                        .map(|e| ExperimentLink {
                            proposal_id: e.proposal_id,
                            title: e.title,
                            decision: e.decision,
                        })
                        .collect(),
                    page.total,
                )
            }
            None => (Vec::new(), 0),
        };
        let approvals: Vec<ApprovalStatus> = approvals::list(&self.journal)
            .map_err(agent_err)?
            .into_iter()
            .filter(|a| a.proposal_id.as_deref() == Some(id))
            .collect();
        let offline = metric_rows(&metrics, &exp.offline_metrics, base.map(|b| &b.metrics));
        Ok(ExperimentData {
            proposal: exp.proposal.clone(),
            weights: ScoreWeights::default(),
            verdict: exp.verdict.clone(),
            diff,
            diff_note,
            gates,
            quality,
            offline,
            online,
            stage_failures,
            approvals,
            parent,
            children,
            children_total,
            timeline: events
                .iter()
                .map(|r| TimelineRow {
                    seq: r.seq,
                    time: r.timestamp.format("%Y-%m-%d %H:%M:%S").to_string(),
                    kind: r.event.type_name().to_string(),
                })
                .collect(),
            experiment: exp,
        })
    }
}

// ----- knowledge --------------------------------------------------------------------------------

/// A lesson row.
#[derive(Debug, Clone, Serialize)]
pub struct LessonRow {
    /// Id.
    pub id: String,
    /// `playbook` / `anti_pattern`.
    pub kind: String,
    /// `contested` / `confirmed` / `falsified`.
    pub status: String,
    /// Text.
    pub text: String,
    /// Runs that agreed.
    pub supporting_runs: Vec<String>,
    /// Experiments that support it.
    pub supporting_experiments: Vec<String>,
    /// Whether a falsification check failed to refute it.
    pub falsification_failed: bool,
    /// Reason of a demotion or falsification.
    pub reason: Option<String>,
}

/// A failure asset found by the search.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRow {
    /// Document id.
    pub doc_id: String,
    /// Title.
    pub title: String,
    /// Root cause text.
    pub body: String,
    /// Stage.
    pub stage: Option<String>,
    /// Objective.
    pub objective: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Lever.
    pub lever: Option<String>,
}

/// Search of failure assets.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct KnowledgeQuery {
    /// Words (empty: the newest).
    pub q: Option<String>,
    /// Stage.
    pub stage: Option<String>,
    /// Objective.
    pub objective: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Lever.
    pub lever: Option<String>,
    /// Lesson status filter.
    pub status: Option<String>,
    /// Page size (default 50).
    pub limit: Option<usize>,
    /// Lessons skipped.
    pub offset: Option<usize>,
}

/// The Knowledge page.
#[derive(Debug, Clone, Serialize)]
pub struct KnowledgeData {
    /// The query.
    pub query: KnowledgeQuery,
    /// Lessons (paged).
    pub lessons: Vec<LessonRow>,
    /// Paging of the lessons.
    pub lessons_page: PageInfo,
    /// Lessons per status.
    pub lesson_counts: BTreeMap<String, u64>,
    /// Failure assets matching the search (at most `limit`).
    pub failures: Vec<FailureRow>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Source {
    /// Lessons and a failure search.
    pub fn knowledge(&self, q: &KnowledgeQuery) -> Result<KnowledgeData> {
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let offset = q.offset.unwrap_or(0);
        let all = self.journal.lessons()?;
        let mut lesson_counts = BTreeMap::new();
        for l in &all {
            *lesson_counts.entry(snake(&l.lesson.status)).or_insert(0u64) += 1;
        }
        let status = nonempty(&q.status);
        let matching: Vec<_> = all
            .iter()
            .rev()
            .filter(|l| {
                status
                    .as_ref()
                    .is_none_or(|s| *s == snake(&l.lesson.status))
            })
            .collect();
        let lessons = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|l| LessonRow {
                id: l.lesson.id.clone(),
                kind: snake(&l.lesson.kind),
                status: snake(&l.lesson.status),
                text: l.lesson.text.clone(),
                supporting_runs: l.lesson.supporting_runs.clone(),
                supporting_experiments: l.lesson.supporting_experiments.clone(),
                falsification_failed: l.lesson.falsification_failed,
                reason: l.reason.clone(),
            })
            .collect();
        let hits = self.journal.search(
            nonempty(&q.q).as_deref().unwrap_or(""),
            &SearchFilter {
                kinds: vec!["failure".into()],
                stage: nonempty(&q.stage),
                objective: nonempty(&q.objective),
                segment: nonempty(&q.segment),
                lever: nonempty(&q.lever),
                limit: Some(limit),
                ..SearchFilter::default()
            },
        )?;
        let failures = hits
            .into_iter()
            .map(|h| FailureRow {
                doc_id: h.doc_id,
                title: h.title,
                body: h.body,
                stage: h.stage,
                objective: h.objective,
                segment: h.segment,
                lever: h.lever,
            })
            .collect();
        Ok(KnowledgeData {
            lessons_page: PageInfo::new(matching.len() as u64, limit, offset),
            query: q.clone(),
            lessons,
            lesson_counts,
            failures,
        })
    }
}

// ----- harness ----------------------------------------------------------------------------------

/// One harness version.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessRow {
    /// Version.
    pub version: u32,
    /// Parent version.
    pub parent_version: Option<u32>,
    /// Admitted (false: archived rejected edit).
    pub admitted: bool,
    /// Diagnosis (semantic gradient) or origin.
    pub diagnosis: String,
    /// Run.
    pub run_id: Option<String>,
    /// Event.
    pub seq: u64,
    /// File names.
    pub files: Vec<String>,
    /// Unified diff against the parent version (empty for a first version).
    pub diff: String,
    /// Lines added and removed against the parent.
    pub changed_lines: (usize, usize),
}

/// One agent's harness history.
#[derive(Debug, Clone, Serialize)]
pub struct AgentHarness {
    /// Agent.
    pub agent: String,
    /// Versions, oldest first.
    pub versions: Vec<HarnessRow>,
    /// Edits proposed by Evolve (versions after the first).
    pub edits: usize,
    /// Edits admitted.
    pub admitted_edits: usize,
}

/// The Harness page.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessData {
    /// Agents.
    pub agents: Vec<AgentHarness>,
}

fn files_diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> (String, (usize, usize)) {
    let mut out = String::new();
    let (mut add, mut del) = (0, 0);
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let a = old.get(name).map(String::as_str).unwrap_or("");
        let b = new.get(name).map(String::as_str).unwrap_or("");
        if a == b {
            continue;
        }
        let patch = diffy::create_patch(a, b).to_string();
        for line in patch.lines().skip(2) {
            if line.starts_with('+') {
                add += 1;
            } else if line.starts_with('-') {
                del += 1;
            }
        }
        out.push_str(&format!("--- a/{name}\n+++ b/{name}\n"));
        out.push_str(&patch.lines().skip(2).collect::<Vec<_>>().join("\n"));
        out.push('\n');
    }
    (out, (add, del))
}

impl Source {
    /// Every agent's harness versions with diffs.
    pub fn harness(&self) -> Result<HarnessData> {
        let all = self.journal.harness_versions(None)?;
        let mut by_agent: BTreeMap<String, Vec<recloop_journal::HarnessVersionView>> =
            BTreeMap::new();
        for h in all {
            by_agent.entry(h.agent.clone()).or_default().push(h);
        }
        let agents = by_agent
            .into_iter()
            .map(|(agent, versions)| {
                let rows: Vec<HarnessRow> = versions
                    .iter()
                    .map(|h| {
                        let parent = h
                            .parent_version
                            .and_then(|p| versions.iter().find(|v| v.version == p));
                        let (diff, changed_lines) = match parent {
                            Some(p) => files_diff(&p.files, &h.files),
                            None => (String::new(), (0, 0)),
                        };
                        HarnessRow {
                            version: h.version,
                            parent_version: h.parent_version,
                            admitted: h.admitted,
                            diagnosis: h.diagnosis.clone(),
                            run_id: h.run_id.clone(),
                            seq: h.seq,
                            files: h.files.keys().cloned().collect(),
                            diff,
                            changed_lines,
                        }
                    })
                    .collect();
                let edits = rows.iter().filter(|r| r.parent_version.is_some()).count();
                let admitted_edits = rows
                    .iter()
                    .filter(|r| r.parent_version.is_some() && r.admitted)
                    .count();
                AgentHarness {
                    agent,
                    versions: rows,
                    edits,
                    admitted_edits,
                }
            })
            .collect();
        Ok(HarnessData { agents })
    }
}

// ----- approvals --------------------------------------------------------------------------------

/// The Approvals page.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalsData {
    /// Waiting for a person, oldest first.
    pub pending: Vec<ApprovalStatus>,
    /// Answered, newest first (at most 100).
    pub answered: Vec<ApprovalStatus>,
}

impl Source {
    /// Pending and answered approvals.
    pub fn approvals(&self) -> Result<ApprovalsData> {
        let all = approvals::list(&self.journal).map_err(agent_err)?;
        let (pending, mut answered): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|a| a.answer.is_none());
        answered.reverse();
        answered.truncate(100);
        Ok(ApprovalsData { pending, answered })
    }

    /// Answer approval `id` through the same function as `recloop approve` / `reject`.
    pub fn answer(
        &self,
        id: &str,
        approved: bool,
        reason: &str,
        via: &str,
    ) -> Result<ApprovalStatus> {
        approvals::answer(
            &self.journal,
            id,
            approved,
            reason,
            recloop_core::Approver::Person { via: via.into() },
        )
        .map_err(agent_err)
    }

    /// A page of the raw event log (oldest first after `after_seq`).
    pub fn events(
        &self,
        after_seq: u64,
        limit: usize,
        run_id: Option<String>,
    ) -> Result<Vec<EventRecord>> {
        Ok(self.journal.events(&EventFilter {
            after_seq: Some(after_seq),
            limit: Some(limit.clamp(1, 1000)),
            run_id,
            ..EventFilter::default()
        })?)
    }
}
