//! Evaluate: the cascade, cheapest first — validation split → sealed holdout (pass/fail only) →
//! the online platform with ramp, health gate, harm veto and verdict. The decision is plain code.
//! Writes the knowledge assets (experiment record, verdict, failure asset, lesson).

use crate::error::{AgentError, Result};
use crate::evaluator::{OfflineEvaluator, Split, primary_value};
use crate::record::Recorder;
use recloop_core::manifest::EXTENSION_SCALE;
use recloop_core::{
    AssetKind, Candidate, Decision, FailureIndex, KnowledgeAsset, Lesson, LessonKind, LessonStatus,
    Manifest, MetricEffect, MetricValues, Proposal, Verdict,
};
use recloop_journal::Event;
use recloop_online::{Ack, ExperimentEvent, ExperimentReport, ExperimentSettings, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An online experiment platform (simulator or logs adapter) behind one trait.
pub trait OnlinePlatform: Send + Sync {
    /// `simulator`, `logs`, ...
    fn name(&self) -> String;
    /// Run a guarded A/B of `treatment` (a candidate worktree) against `control` (production).
    fn run(
        &self,
        manifest: &Manifest,
        control: &Path,
        treatment: &Path,
        settings: &ExperimentSettings,
        observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    ) -> std::result::Result<ExperimentReport, String>;
}

/// The sealed holdout: production's holdout metrics are cached outside the journal (agents never
/// see them); only pass/fail is recorded.
pub struct SealedHoldout {
    dir: PathBuf,
}

impl SealedHoldout {
    /// The sealed store of a workspace (`.recloop/sealed/`).
    pub fn new(workspace: &Path) -> SealedHoldout {
        SealedHoldout {
            dir: workspace.join(".recloop").join("sealed"),
        }
    }

    /// Holdout metrics of `commit` (checked out at `dir`), cached by commit.
    pub fn metrics(
        &self,
        evaluator: &dyn OfflineEvaluator,
        commit: &str,
        dir: &Path,
    ) -> std::result::Result<MetricValues, String> {
        let file = self.dir.join(format!("{commit}.json"));
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(m) = serde_json::from_str::<BTreeMap<String, Option<f64>>>(&text)
        {
            return Ok(m
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
                .collect());
        }
        let m = evaluator.evaluate(dir, Split::Holdout)?;
        let _ = std::fs::create_dir_all(&self.dir);
        if let Ok(text) = serde_json::to_string(&m) {
            let _ = std::fs::write(&file, text);
        }
        Ok(m)
    }
}

/// Inputs of Evaluate.
pub struct EvaluateCtx<'a> {
    /// Manifest.
    pub manifest: &'a Manifest,
    /// Journal.
    pub rec: &'a Recorder,
    /// Iteration.
    pub iteration: u32,
    /// Offline evaluator.
    pub evaluator: &'a dyn OfflineEvaluator,
    /// Sealed holdout store.
    pub holdout: &'a SealedHoldout,
    /// Online platform (None: offline cascade only, recorded as a caveat).
    pub online: Option<&'a dyn OnlinePlatform>,
    /// Production commit and its checkout directory.
    pub production: (&'a str, &'a Path),
    /// Production's validation metrics.
    pub production_metrics: &'a MetricValues,
    /// Candidate checkout directory.
    pub candidate_dir: &'a Path,
    /// Seed of the online experiment.
    pub seed: u64,
    /// Approve mode.
    pub approve: bool,
}

fn offline_verdict(
    decision: Decision,
    metric: &str,
    control: f64,
    treatment: f64,
    method: &str,
    reason: String,
) -> Verdict {
    let effect = treatment - control;
    Verdict {
        decision,
        effects: vec![MetricEffect {
            metric: metric.to_string(),
            control,
            treatment,
            effect,
            relative: if control != 0.0 {
                effect / control.abs()
            } else {
                0.0
            },
            ci: (None, None),
            p_value: 1.0,
        }],
        method: method.to_string(),
        window_days: 0,
        max_traffic: 0.0,
        guardrails: BTreeMap::new(),
        caveats: vec![],
        reason,
    }
}

/// Run the cascade for one candidate and record every step; returns the verdict.
pub fn evaluate(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
) -> Result<Verdict> {
    let pid = &proposal.id;
    let cid = &candidate.id;
    let primary = &ctx.manifest.metrics.primary;
    let sign = primary.direction.sign();
    let base =
        primary_value(ctx.production_metrics, ctx.manifest).map_err(|e| AgentError::Invalid {
            path: "production metrics".into(),
            reason: e,
        })?;
    let cand =
        primary_value(&candidate.offline, ctx.manifest).map_err(|e| AgentError::Invalid {
            path: format!("candidate {cid}"),
            reason: e,
        })?;
    // 1. validation split
    if sign * (cand - base) < primary.min_effect.max(1e-12) {
        let v = offline_verdict(
            Decision::Discard,
            &primary.name,
            base,
            cand,
            "offline validation (deterministic, same seed)",
            format!(
                "validation {} {cand:.5} vs production {base:.5}: does not clear the minimum effect {}",
                primary.name, primary.min_effect
            ),
        );
        return finish(ctx, proposal, candidate, v, None);
    }
    // 2. sealed holdout: pass/fail only
    let passed = {
        let prod = ctx
            .holdout
            .metrics(ctx.evaluator, ctx.production.0, ctx.production.1);
        let c = ctx.evaluator.evaluate(ctx.candidate_dir, Split::Holdout);
        match (prod, c) {
            (Ok(p), Ok(c)) => match (
                primary_value(&p, ctx.manifest),
                primary_value(&c, ctx.manifest),
            ) {
                (Ok(p), Ok(c)) => sign * (c - p) > 0.0,
                _ => false,
            },
            _ => false,
        }
    };
    ctx.rec.emit(
        ctx.iteration,
        &format!("evaluate/{pid}/holdout"),
        Event::HoldoutResult {
            proposal_id: pid.clone(),
            candidate_id: cid.clone(),
            passed,
        },
        None,
    )?;
    if !passed {
        let v = offline_verdict(
            Decision::Discard,
            &primary.name,
            base,
            cand,
            "offline validation + sealed holdout (pass/fail)",
            "the sealed holdout did not confirm the validation gain".into(),
        );
        return finish(ctx, proposal, candidate, v, None);
    }
    // 3. online
    let Some(platform) = ctx.online else {
        let mut v = offline_verdict(
            Decision::Keep,
            &primary.name,
            base,
            cand,
            "offline validation + sealed holdout (pass/fail)",
            format!(
                "validation {} {cand:.5} vs {base:.5} clears {} and the holdout passed",
                primary.name, primary.min_effect
            ),
        );
        v.caveats
            .push("no online platform configured: decided offline only".into());
        return finish(ctx, proposal, candidate, v, None);
    };
    // An inconclusive experiment that ran its course is extended: a new, independent experiment
    // with EXTENSION_SCALE times the users, judged on its own (`[online] extensions`).
    let mut extension = 0u32;
    let mut earlier: Vec<String> = Vec::new();
    loop {
        let (report, exp_id) = run_online(ctx, proposal, candidate, platform, extension)?;
        let mut verdict = report.verdict;
        let inconclusive =
            verdict.decision == Decision::Extend && report.outcome == Outcome::Completed;
        if inconclusive && extension < ctx.manifest.online.extensions {
            earlier.push(format!(
                "experiment {exp_id} was inconclusive ({}); extended to {}× the users",
                verdict.reason, EXTENSION_SCALE
            ));
            extension += 1;
            continue;
        }
        verdict.caveats.splice(0..0, earlier);
        return finish(ctx, proposal, candidate, verdict, Some(exp_id));
    }
}

/// Run extension `extension` (0: the first experiment) of the candidate's online experiment,
/// journaling its start and every ramp, hold, veto and escalation.
fn run_online(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    platform: &dyn OnlinePlatform,
    extension: u32,
) -> Result<(ExperimentReport, String)> {
    let pid = &proposal.id;
    let cid = &candidate.id;
    // step keys and ids of the first experiment are unchanged by extensions (resumable journals)
    let (exp_id, key) = if extension == 0 {
        (format!("x-{pid}"), format!("evaluate/{pid}/online"))
    } else {
        (
            format!("x-{pid}-ext{extension}"),
            format!("evaluate/{pid}/online-ext{extension}"),
        )
    };
    ctx.rec.emit(
        ctx.iteration,
        &format!("{key}/start"),
        Event::ExperimentStarted {
            proposal_id: pid.clone(),
            candidate_id: cid.clone(),
            experiment_id: exp_id.clone(),
            platform: platform.name(),
        },
        None,
    )?;
    let settings = ExperimentSettings {
        id: exp_id.clone(),
        seed: if extension == 0 {
            ctx.seed
        } else {
            ctx.seed ^ u64::from(extension).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        },
        approve: ctx.approve,
        population_scale: EXTENSION_SCALE.pow(extension),
        ..ExperimentSettings::default()
    };
    let mut n = 0u32;
    let mut journal_error: Option<String> = None;
    let mut step = 0u32;
    let mut observer = |e: &ExperimentEvent| -> Ack {
        n += 1;
        let event = match e {
            ExperimentEvent::RampAdvanced { to, .. } => {
                step += 1;
                Some(Event::RampAdvanced {
                    proposal_id: pid.clone(),
                    experiment_id: exp_id.clone(),
                    step,
                    traffic: *to,
                })
            }
            ExperimentEvent::Hold { srm_p, day, .. } => Some(Event::HealthHold {
                proposal_id: pid.clone(),
                experiment_id: exp_id.clone(),
                reason: format!("sample ratio mismatch on day {day}"),
                srm_p_value: Some(*srm_p),
            }),
            ExperimentEvent::Rollback {
                metric,
                relative,
                p_value,
                day,
                ..
            } => Some(Event::Veto {
                proposal_id: pid.clone(),
                experiment_id: exp_id.clone(),
                guardrail: metric.clone(),
                reason: format!(
                    "harm on {metric} ({:+.2}%, p = {p_value:.4}) on day {day}: rolled back",
                    relative * 100.0
                ),
            }),
            ExperimentEvent::Escalation {
                metric,
                relative_harm,
                threshold,
                ..
            } => Some(Event::AttentionEscalation {
                proposal_id: pid.clone(),
                experiment_id: exp_id.clone(),
                guardrail: metric.clone(),
                reason: format!(
                    "{metric} worse by {:.2}% (attention threshold {:.2}%)",
                    relative_harm * 100.0,
                    threshold * 100.0
                ),
                approved: if ctx.approve { None } else { Some(true) },
            }),
            _ => None,
        };
        if let Some(ev) = event
            && let Err(err) = ctx.rec.emit(ctx.iteration, &format!("{key}/{n}"), ev, None)
        {
            journal_error = Some(err.to_string());
            return Ack::Stop(err.to_string());
        }
        Ack::Continue
    };
    let report = platform.run(
        ctx.manifest,
        ctx.production.1,
        ctx.candidate_dir,
        &settings,
        &mut observer,
    );
    if let Some(e) = journal_error {
        return Err(AgentError::Journal(e));
    }
    let report = report.map_err(AgentError::Online)?;
    Ok((report, exp_id))
}

/// Record the verdict and the knowledge assets.
fn finish(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    verdict: Verdict,
    experiment_id: Option<String>,
) -> Result<Verdict> {
    let pid = &proposal.id;
    let it = ctx.iteration;
    ctx.rec.emit(
        it,
        &format!("evaluate/{pid}/verdict"),
        Event::Verdict {
            proposal_id: pid.clone(),
            candidate_id: candidate.id.clone(),
            experiment_id: experiment_id.clone(),
            verdict: verdict.clone(),
        },
        None,
    )?;
    for a in assets(ctx.manifest, proposal, &verdict) {
        let step = format!("evaluate/{pid}/asset/{}", a.id);
        ctx.rec
            .emit(it, &step, Event::KnowledgeAssetWritten { asset: a }, None)?;
    }
    Ok(verdict)
}

/// The knowledge assets of an outcome: experiment record, verdict, and a failure asset with its
/// root-cause index when the candidate was not kept.
pub fn assets(manifest: &Manifest, proposal: &Proposal, verdict: &Verdict) -> Vec<KnowledgeAsset> {
    let pid = &proposal.id;
    let index = FailureIndex {
        stage: if proposal.stage.is_empty() {
            "other".into()
        } else {
            proposal.stage.clone()
        },
        objective: manifest.metrics.primary.name.clone(),
        segment: "all".into(),
        lever: proposal.lever.clone(),
    };
    let effect = verdict
        .effects
        .first()
        .map(|e| {
            format!(
                "{} {:.5} → {:.5} ({:+.5})",
                e.metric, e.control, e.treatment, e.effect
            )
        })
        .unwrap_or_default();
    let mut out = vec![
        KnowledgeAsset {
            id: format!("record-{pid}"),
            kind: AssetKind::ExperimentRecord,
            experiment: Some(pid.clone()),
            title: proposal.title.clone(),
            body: format!(
                "{}\nmechanism: {}\nlever: {}",
                proposal.hypothesis, proposal.mechanism, proposal.lever
            ),
            index: index.clone(),
        },
        KnowledgeAsset {
            id: format!("verdict-{pid}"),
            kind: AssetKind::Verdict,
            experiment: Some(pid.clone()),
            title: format!("{} {}", verdict.decision, proposal.title),
            body: format!(
                "{}; {effect}; method {}; window {} days; caveats: {}",
                verdict.reason,
                verdict.method,
                verdict.window_days,
                verdict.caveats.join("; ")
            ),
            index: index.clone(),
        },
    ];
    if verdict.decision != Decision::Keep {
        out.push(KnowledgeAsset {
            id: format!("failure-{pid}"),
            kind: AssetKind::Failure,
            experiment: Some(pid.clone()),
            title: format!("{} did not ship", proposal.lever),
            body: format!(
                "root cause: {} (stage {}, lever {})",
                verdict.reason, index.stage, index.lever
            ),
            index,
        });
    }
    out
}

/// Update the lesson about `(lever, direction)` with this outcome and apply the promotion rule:
/// `confirmed` needs ≥ 2 independent runs agreeing and a falsification check (a search for a
/// contradicting outcome in the journal) that fails to refute it.
pub fn update_lesson(
    existing: Option<&Lesson>,
    proposal: &Proposal,
    decision: Decision,
    run_id: &str,
    contradicting: usize,
) -> Option<Lesson> {
    if decision == Decision::Extend {
        return None;
    }
    let kind = if decision == Decision::Keep {
        LessonKind::Playbook
    } else {
        LessonKind::AntiPattern
    };
    let dir = proposal
        .change
        .get("direction")
        .and_then(|d| d.as_i64())
        .unwrap_or(0);
    let id = format!(
        "lesson:{}:{}:{}",
        proposal.lever,
        dir,
        if kind == LessonKind::Playbook {
            "do"
        } else {
            "avoid"
        }
    );
    let mut l = existing.cloned().unwrap_or(Lesson {
        id,
        kind,
        status: LessonStatus::Contested,
        text: match kind {
            LessonKind::Playbook => format!(
                "{} tends to help {}",
                proposal.title, proposal.target_metric
            ),
            LessonKind::AntiPattern => format!(
                "{} tends not to help {}",
                proposal.title, proposal.target_metric
            ),
        },
        index: FailureIndex {
            stage: proposal.stage.clone(),
            objective: proposal.target_metric.clone(),
            segment: "all".into(),
            lever: proposal.lever.clone(),
        },
        supporting_runs: vec![],
        supporting_experiments: vec![],
        falsification_failed: false,
    });
    if l.status == LessonStatus::Falsified {
        return None;
    }
    if !l.supporting_runs.iter().any(|r| r == run_id) {
        l.supporting_runs.push(run_id.to_string());
    }
    if !l.supporting_experiments.contains(&proposal.id) {
        l.supporting_experiments.push(proposal.id.clone());
    }
    l.falsification_failed = contradicting == 0;
    if contradicting > l.supporting_experiments.len() {
        l.status = LessonStatus::Falsified;
    } else {
        l.status = l.promoted_status();
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recloop_journal::{EventFilter, Journal, fixtures};
    use recloop_online::DayReport;
    use std::sync::Mutex;

    /// An online platform that answers with scripted decisions and records what it was asked.
    struct Scripted {
        decisions: Vec<Decision>,
        calls: Mutex<Vec<(u32, u64, String)>>,
    }

    impl OnlinePlatform for Scripted {
        fn name(&self) -> String {
            "scripted".into()
        }

        fn run(
            &self,
            _manifest: &Manifest,
            _control: &Path,
            _treatment: &Path,
            settings: &ExperimentSettings,
            _observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
        ) -> std::result::Result<ExperimentReport, String> {
            let mut calls = self.calls.lock().map_err(|e| e.to_string())?;
            let decision = self.decisions[calls.len()];
            calls.push((
                settings.population_scale,
                settings.seed,
                settings.id.clone(),
            ));
            let mut verdict = fixtures::verdict(decision, 0.01);
            verdict.reason = format!("scripted {decision} #{}", calls.len());
            Ok(ExperimentReport {
                verdict,
                outcome: recloop_online::Outcome::Completed,
                days: 14,
                max_share: 0.5,
                escalations: 0,
                last_report: DayReport::default(),
            })
        }
    }

    /// Candidate worktrees (named `cand`) score 0.5, production 0.3.
    struct Fixed;

    impl OfflineEvaluator for Fixed {
        fn evaluate(&self, dir: &Path, _split: Split) -> std::result::Result<MetricValues, String> {
            let v = if dir.ends_with("cand") { 0.5 } else { 0.3 };
            Ok([("ndcg@10".to_string(), v)].into_iter().collect())
        }
    }

    /// Evaluate one candidate against `decisions` with `[online] extensions = extensions`:
    /// the verdict, the platform's calls, and the journaled experiment ids.
    fn run(
        decisions: &[Decision],
        extensions: u32,
    ) -> (Verdict, Vec<(u32, u64, String)>, Vec<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "[project]\nname = \"t\"\neditable = [\"pipeline.toml\"]\n[commands]\noffline_eval = \"true\"\n[metrics]\nprimary = {{ name = \"ndcg@10\", direction = \"increase\", min_effect = 0.002 }}\n[online]\nextensions = {extensions}\n"
        );
        let manifest = Manifest::parse(&text, &tmp.path().join("recloop.toml")).unwrap();
        let journal = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
        let rec = Recorder::new(journal.clone(), "run-t");
        let platform = Scripted {
            decisions: decisions.to_vec(),
            calls: Mutex::new(Vec::new()),
        };
        let holdout = SealedHoldout::new(tmp.path());
        let production_metrics: MetricValues = [("ndcg@10".to_string(), 0.3)].into_iter().collect();
        let (prod, cand) = (tmp.path().join("prod"), tmp.path().join("cand"));
        let ctx = EvaluateCtx {
            manifest: &manifest,
            rec: &rec,
            iteration: 1,
            evaluator: &Fixed,
            holdout: &holdout,
            online: Some(&platform),
            production: ("base", &prod),
            production_metrics: &production_metrics,
            candidate_dir: &cand,
            seed: 7,
            approve: false,
        };
        let proposal = fixtures::proposal("p1", "t", "h", "ranking", "model.ease.lambda");
        let candidate = fixtures::candidate("p1", "base", 0.5);
        let verdict = evaluate(&ctx, &proposal, &candidate).unwrap();
        let started = journal
            .events(&EventFilter {
                types: vec!["experiment_started".into()],
                ..EventFilter::default()
            })
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.event {
                Event::ExperimentStarted { experiment_id, .. } => Some(experiment_id),
                _ => None,
            })
            .collect();
        let calls = platform.calls.into_inner().unwrap();
        (verdict, calls, started)
    }

    #[test]
    fn an_inconclusive_experiment_is_extended_once_four_times_larger_and_journaled() {
        let (v, calls, started) = run(&[Decision::Extend, Decision::Keep], 1);
        assert_eq!(v.decision, Decision::Keep);
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].0, calls[1].0), (1, EXTENSION_SCALE));
        assert_ne!(calls[0].1, calls[1].1, "an extension needs its own seed");
        assert_eq!(started, vec!["x-p1".to_string(), "x-p1-ext1".to_string()]);
        assert!(
            v.caveats[0].contains("x-p1 was inconclusive (scripted EXTEND #1)"),
            "{:?}",
            v.caveats
        );
    }

    #[test]
    fn extend_stands_after_the_last_extension_and_extensions_can_be_off() {
        let (v, calls, _) = run(&[Decision::Extend, Decision::Extend], 1);
        assert_eq!((v.decision, calls.len()), (Decision::Extend, 2));
        let (v, calls, started) = run(&[Decision::Extend], 0);
        assert_eq!((v.decision, calls.len()), (Decision::Extend, 1));
        assert_eq!(started, vec!["x-p1".to_string()]);
        let (v, calls, _) = run(&[Decision::Discard], 1);
        assert_eq!((v.decision, calls.len()), (Decision::Discard, 1));
    }
}
