//! Evaluate: the cascade, cheapest first — validation split → sealed holdout (pass/fail only) →
//! the online platform with ramp, health gate, harm veto and verdict. The decision is plain code.
//! Writes the knowledge assets (experiment record, verdict, failure asset, lesson).

use crate::approvals::{ApprovalRequest, Approvals};
use crate::error::{AgentError, Result};
use crate::evaluator::{EvalError, JobContext, OfflineEvaluator, Split, primary_value};
use crate::record::Recorder;
use recloop_core::manifest::EXTENSION_SCALE;
use recloop_core::{
    ApprovalKind, AssetKind, Candidate, Decision, ErrorClass, FailureIndex, GuardrailCheck,
    GuardrailLevel, GuardrailStatus, KnowledgeAsset, Lesson, LessonKind, LessonStatus, Manifest,
    Maturity, MetricEffect, MetricValues, Proposal, Verdict,
};
use recloop_journal::Event;
pub use recloop_online::platform::{OnlinePlatform, PlatformError};
use recloop_online::{Ack, ExperimentEvent, ExperimentReport, ExperimentSettings, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

    /// Holdout metrics of `commit` (checked out at `dir`), cached by commit; `job` places the
    /// evaluation in the journal when it runs as a job.
    pub fn metrics(
        &self,
        evaluator: &dyn OfflineEvaluator,
        commit: &str,
        dir: &Path,
        job: &JobContext<'_>,
    ) -> std::result::Result<MetricValues, EvalError> {
        let file = self.dir.join(format!("{commit}.json"));
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(m) = serde_json::from_str::<BTreeMap<String, Option<f64>>>(&text)
        {
            return Ok(m
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
                .collect());
        }
        let m = evaluator.evaluate_job(dir, Split::Holdout, job)?;
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
    /// `--approve`: every KEEP waits for a person.
    pub approve: bool,
    /// Where approvals are answered.
    pub approvals: &'a Approvals,
    /// Asked after an inconclusive experiment whether its extension runs (the dual loop's slow
    /// loop continues only candidates still in its top K); `None`: always, up to
    /// `[online] extensions`. The answer is journaled and replayed on resume.
    pub continuation: Option<&'a (dyn Fn(&Verdict) -> Continuation + Sync)>,
}

/// Whether an inconclusive online experiment is extended, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Continuation {
    /// Run the extension.
    pub extend: bool,
    /// Why, with the numbers.
    pub reason: String,
}

/// The primary metric of production and of the candidate, and what the offline stages found
/// so far: the base of every verdict reached before any traffic. Serializable: the dual loop
/// keeps a candidate that passed the offline stages in its pool, across steps and restarts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OfflineEvidence {
    /// The primary metric's name.
    pub metric: String,
    /// Production's validation value of the primary.
    pub production: f64,
    /// The candidate's validation value of the primary.
    pub candidate: f64,
    /// Offline guardrail statuses.
    pub guardrails: BTreeMap<String, GuardrailStatus>,
    /// Caveats the offline stages recorded.
    pub caveats: Vec<String>,
    /// When a persona's proxy judged the candidate offline: the proxy with production's and the
    /// candidate's values.
    #[serde(default)]
    pub proxy: Option<ProxyEvidence>,
}

/// The offline proxy that judged a persona's candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProxyEvidence {
    /// The proxy metric.
    pub metric: recloop_core::MetricSpec,
    /// Production's validation value.
    pub production: f64,
    /// The candidate's validation value.
    pub candidate: f64,
}

impl OfflineEvidence {
    /// The relative offline gain that passed the candidate, signed so that higher is better:
    /// on its persona's proxy when one judged it, else on the primary (`sign`: the primary's
    /// direction).
    pub fn judged_lift(&self, sign: f64) -> f64 {
        match &self.proxy {
            Some(p) => {
                p.metric.direction.sign() * (p.candidate - p.production)
                    / p.production.abs().max(1e-12)
            }
            None => sign * (self.candidate - self.production) / self.production.abs().max(1e-12),
        }
    }
}

/// Where the offline stages left a candidate.
#[derive(Debug, Clone)]
pub enum OfflineOutcome {
    /// A stage decided before any traffic (the verdict is journaled).
    Decided(Verdict),
    /// Every offline stage passed: the online stage decides.
    Passed(OfflineEvidence),
}

impl OfflineEvidence {
    /// A verdict decided offline: the primary's effect, the guardrail statuses and caveats so
    /// far, no interval and no traffic.
    fn verdict(&self, decision: Decision, method: &str, reason: String) -> Verdict {
        let (control, treatment) = (self.production, self.candidate);
        let effect = treatment - control;
        Verdict {
            decision,
            effects: vec![MetricEffect {
                metric: self.metric.to_string(),
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
            guardrails: self.guardrails.clone(),
            caveats: self.caveats.clone(),
            reason,
        }
    }
}

/// Run the cascade for one candidate and record every step; returns the verdict.
///
/// Order, cheapest first: the validation primary against its minimum effect, the offline
/// guardrails against their limits, the sealed holdout (pass/fail), a person's go-ahead for a
/// `probe-first` proposal, the online experiment (or, with `[online] platform = "none"`, a
/// person's approval of an offline-only KEEP), and under `--approve` a person's approval of the
/// KEEP. Failures of the machinery (holdout, platform) are journaled as `stage_failed` and
/// returned as [`AgentError::Stage`], never as a verdict.
pub fn evaluate(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
) -> Result<Verdict> {
    match evaluate_offline(ctx, proposal, candidate)? {
        OfflineOutcome::Decided(v) => Ok(v),
        OfflineOutcome::Passed(evidence) => evaluate_online(ctx, proposal, candidate, evidence),
    }
}

/// The offline half of [`evaluate`]: validation, offline guardrails, sealed holdout, off-policy
/// replay and a probe-first go-ahead. A verdict reached here is journaled; a candidate that
/// passes returns its evidence for [`evaluate_online`].
pub fn evaluate_offline(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
) -> Result<OfflineOutcome> {
    let primary = &ctx.manifest.metrics.primary;
    let mut evidence = OfflineEvidence {
        metric: primary.name.clone(),
        production: primary_value(ctx.production_metrics, ctx.manifest).map_err(|e| {
            AgentError::Invalid {
                path: "production metrics".into(),
                reason: e,
            }
        })?,
        candidate: primary_value(&candidate.offline, ctx.manifest).map_err(|e| {
            AgentError::Invalid {
                path: format!("candidate {}", candidate.id),
                reason: e,
            }
        })?,
        guardrails: BTreeMap::new(),
        caveats: Vec::new(),
        proxy: None,
    };
    // the offline stages, in order; the first that decides ends the cascade
    let mut stopped = validation_stage(ctx, proposal, candidate, &mut evidence);
    if stopped.is_none() {
        stopped = guardrail_stage(ctx, proposal, candidate, &mut evidence)?;
    }
    if stopped.is_none() {
        stopped = holdout_stage(ctx, proposal, candidate, &evidence)?;
    }
    if stopped.is_none() {
        stopped = off_policy_stage(ctx, proposal, candidate, &mut evidence)?;
    }
    if stopped.is_none() {
        stopped = probe_stage(ctx, proposal, candidate, &mut evidence)?;
    }
    match stopped {
        Some(v) => Ok(OfflineOutcome::Decided(finish(
            ctx, proposal, candidate, v, None,
        )?)),
        None => Ok(OfflineOutcome::Passed(evidence)),
    }
}

/// The online half of [`evaluate`] for a candidate that passed the offline stages: the online
/// experiment (or, with `[online] platform = "none"`, a person's approval of an offline-only
/// KEEP), then under `--approve` a person's approval of the KEEP.
pub fn evaluate_online(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    evidence: OfflineEvidence,
) -> Result<Verdict> {
    let primary = &ctx.manifest.metrics.primary;
    let (mut verdict, experiment_id) = match ctx.online {
        Some(platform) => {
            let (v, id) = online_cascade(ctx, proposal, candidate, platform)?;
            (v, Some(id))
        }
        None if ctx.manifest.online.platform == "none" => {
            let reason = match &evidence.proxy {
                Some(p) => format!(
                    "proxy {} {:.5} vs {:.5} clears {} with validation {} {:.5} vs {:.5} within \
                     tolerance; the offline guardrails and the holdout pass",
                    p.metric.name,
                    p.candidate,
                    p.production,
                    p.metric.min_effect,
                    primary.name,
                    evidence.candidate,
                    evidence.production
                ),
                None => format!(
                    "validation {} {:.5} vs {:.5} clears {}, the offline guardrails and the holdout",
                    primary.name, evidence.candidate, evidence.production, primary.min_effect
                ),
            };
            let mut v = evidence.verdict(
                Decision::Keep,
                "offline validation + offline guardrails + sealed holdout (pass/fail)",
                reason,
            );
            v.caveats.push(
                "offline only: no online experiment ran ([online] platform = \"none\")".into(),
            );
            (v, None)
        }
        None => {
            return Err(AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: format!(
                    "[online] platform = {:?} but no platform was built for this run",
                    ctx.manifest.online.platform
                ),
            });
        }
    };
    if experiment_id.is_some() {
        verdict.caveats.splice(0..0, evidence.caveats);
    }
    let verdict = keep_approval_stage(ctx, proposal, verdict, experiment_id.is_none())?;
    finish(ctx, proposal, candidate, verdict, experiment_id)
}

/// Stage 1: the validation primary must clear the minimum effect.
fn validation_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    e: &mut OfflineEvidence,
) -> Option<Verdict> {
    let primary = &ctx.manifest.metrics.primary;
    if let Some(persona) = ctx.manifest.persona(&proposal.persona)
        && let Some(proxy) = &persona.proxy
    {
        return proxy_stage(ctx, &persona, proxy, candidate, e);
    }
    let gain = primary.direction.sign() * (e.candidate - e.production);
    (gain < primary.min_effect.max(1e-12)).then(|| {
        e.verdict(
            Decision::Discard,
            "offline validation (deterministic, same seed)",
            format!(
                "validation {} {:.5} vs production {:.5}: does not clear the minimum effect {}",
                primary.name, e.candidate, e.production, primary.min_effect
            ),
        )
    })
}

/// Stage 1 for a persona judged by a proxy (the reward persona: a changed reward changes what
/// the primary's loss rewards): the proxy must clear its minimum effect and the primary may be
/// at most the persona's tolerance worse than production.
fn proxy_stage(
    ctx: &EvaluateCtx<'_>,
    persona: &recloop_core::Persona,
    proxy: &recloop_core::MetricSpec,
    candidate: &Candidate,
    e: &mut OfflineEvidence,
) -> Option<Verdict> {
    let primary = &ctx.manifest.metrics.primary;
    let method = format!(
        "offline proxy {} of the {} persona + {} within {} (deterministic, same seed)",
        proxy.name, persona.name, primary.name, persona.primary_tolerance
    );
    let discard =
        |e: &OfflineEvidence, reason: String| Some(e.verdict(Decision::Discard, &method, reason));
    let (Some(&prod), Some(&cand)) = (
        ctx.production_metrics.get(&proxy.name),
        candidate.offline.get(&proxy.name),
    ) else {
        return discard(
            e,
            format!(
                "the offline evaluation does not report {} for {} (the {} persona's proxy)",
                proxy.name,
                if ctx.production_metrics.contains_key(&proxy.name) {
                    "the candidate"
                } else {
                    "production"
                },
                persona.name
            ),
        );
    };
    e.proxy = Some(ProxyEvidence {
        metric: proxy.clone(),
        production: prod,
        candidate: cand,
    });
    let gain = proxy.direction.sign() * (cand - prod);
    if gain < proxy.min_effect.max(1e-12) {
        return discard(
            e,
            format!(
                "proxy {} {cand:.5} vs production {prod:.5}: does not clear the minimum effect {}",
                proxy.name, proxy.min_effect
            ),
        );
    }
    let loss = -primary.direction.sign() * (e.candidate - e.production);
    if loss > persona.primary_tolerance {
        return discard(
            e,
            format!(
                "proxy {} {cand:.5} vs {prod:.5} clears {}, but validation {} {:.5} vs {:.5} is more \
             than {} worse",
                proxy.name,
                proxy.min_effect,
                primary.name,
                e.candidate,
                e.production,
                persona.primary_tolerance
            ),
        );
    }
    None
}

/// Stage 2: the offline guardrails against production, in plain code: past a hard limit
/// DISCARD, past an attention level a person decides.
fn guardrail_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    e: &mut OfflineEvidence,
) -> Result<Option<Verdict>> {
    let guard = offline_guardrails(ctx.manifest, ctx.production_metrics, &candidate.offline);
    e.guardrails = guard.statuses();
    e.caveats.extend(guard.caveats.iter().cloned());
    if let Some(hard) = guard
        .checks
        .iter()
        .find(|c| c.level == GuardrailLevel::Hard)
    {
        return Ok(Some(e.verdict(
            Decision::Discard,
            "offline validation + offline guardrails",
            format!("offline guardrail blocked: {hard}"),
        )));
    }
    let pid = &proposal.id;
    for c in guard
        .checks
        .iter()
        .filter(|c| c.level == GuardrailLevel::Attention)
    {
        let request = ApprovalRequest {
            id: format!("{pid}-guardrail-{}", c.name),
            proposal_id: Some(pid.clone()),
            kind: ApprovalKind::GuardrailAttention,
            question: format!(
                "{}: {c}. Continue with this candidate ({} {:.4} -> {:.4})?",
                proposal.title, e.metric, e.production, e.candidate
            ),
            evidence: serde_json::json!({ "check": c, "primary": {
                "metric": e.metric, "production": e.production, "candidate": e.candidate } }),
        };
        let what = format!("offline guardrail past its attention level ({c})");
        let method = "offline validation + offline guardrails + approval";
        if let Some(v) = ask_offline(ctx, e, &request, method, &what)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Stage 3: the sealed holdout, pass/fail only; an evaluation that fails is an error, not a verdict.
fn holdout_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    e: &OfflineEvidence,
) -> Result<Option<Verdict>> {
    let pid = &proposal.id;
    // a persona judged by a proxy is confirmed on the proxy, as validation judged it
    let persona = ctx
        .manifest
        .persona(&proposal.persona)
        .filter(|p| p.proxy.is_some());
    let passed = match holdout_passed(ctx, candidate, persona.as_ref()) {
        Ok(p) => p,
        Err(HoldoutError::Cancelled) => return Err(AgentError::Cancelled),
        Err(HoldoutError::Failed(detail)) => {
            return Err(stage_failed(
                ctx,
                pid,
                "evaluate/holdout",
                ErrorClass::Holdout,
                detail,
            )?);
        }
    };
    ctx.rec.emit(
        ctx.iteration,
        &format!("evaluate/{pid}/holdout"),
        Event::HoldoutResult {
            proposal_id: pid.clone(),
            candidate_id: candidate.id.clone(),
            passed,
        },
        None,
    )?;
    Ok((!passed).then(|| {
        e.verdict(
            Decision::Discard,
            "offline validation + offline guardrails + sealed holdout (pass/fail)",
            match &persona {
                Some(p) => format!(
                    "the sealed holdout did not confirm the {} persona's judgement: {} not \
                     better than production's, or {} more than {} worse",
                    p.name,
                    p.proxy.as_ref().map_or("", |x| x.name.as_str()),
                    ctx.manifest.metrics.primary.name,
                    p.primary_tolerance
                ),
                None => "the sealed holdout did not confirm the validation gain".into(),
            },
        )
    }))
}

/// Whether the holdout metrics `cand` confirm what validation found against `prod`: the
/// primary better, or for a persona judged by a proxy, the proxy better and the primary at
/// most its tolerance worse. A metric missing from either map is an error naming it.
fn holdout_confirms(
    manifest: &recloop_core::Manifest,
    persona: Option<&recloop_core::Persona>,
    prod: &BTreeMap<String, f64>,
    cand: &BTreeMap<String, f64>,
) -> std::result::Result<bool, String> {
    let sign = manifest.metrics.primary.direction.sign();
    let p = primary_value(prod, manifest).map_err(|e| format!("production holdout: {e}"))?;
    let c = primary_value(cand, manifest).map_err(|e| format!("candidate holdout: {e}"))?;
    let Some((persona, proxy)) = persona.and_then(|x| x.proxy.as_ref().map(|p| (x, p))) else {
        return Ok(sign * (c - p) > 0.0);
    };
    let value = |m: &BTreeMap<String, f64>, who: &str| {
        m.get(&proxy.name).copied().ok_or_else(|| {
            format!(
                "{who} holdout does not report {} (the {} persona's proxy)",
                proxy.name, persona.name
            )
        })
    };
    let (pp, cp) = (value(prod, "production")?, value(cand, "candidate")?);
    Ok(proxy.direction.sign() * (cp - pp) > 0.0 && -sign * (c - p) <= persona.primary_tolerance)
}

/// Stage 3b (`[online.off_policy]`): the candidate's policy against production's on logged
/// bandit feedback, before any traffic. An interval of the difference wholly below zero is a
/// DISCARD; otherwise the replay becomes a caveat of the verdict.
fn off_policy_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    e: &mut OfflineEvidence,
) -> Result<Option<Verdict>> {
    let Some(spec) = &ctx.manifest.online.off_policy else {
        return Ok(None);
    };
    let pid = &proposal.id;
    let check = match recloop_online::off_policy::off_policy_check(
        spec,
        ctx.production.1,
        ctx.candidate_dir,
        ctx.manifest.online.alpha,
    ) {
        Ok(c) => c,
        Err(detail) => {
            return Err(stage_failed(
                ctx,
                pid,
                "evaluate/off_policy",
                ErrorClass::Platform,
                detail,
            )?);
        }
    };
    ctx.rec.emit(
        ctx.iteration,
        &format!("evaluate/{pid}/off_policy"),
        Event::OffPolicyResult {
            proposal_id: pid.clone(),
            candidate_id: candidate.id.clone(),
            dataset: check.dataset.clone(),
            estimator: check.estimator.clone(),
            rounds: check.rounds,
            production: check.production,
            candidate: check.candidate,
            difference: check.difference,
            ci: check.ci,
            harm: check.harm,
        },
        None,
    )?;
    if check.harm {
        return Ok(Some(e.verdict(
            Decision::Discard,
            "off-policy replay before traffic",
            format!(
                "{}: the interval lies below zero, so the candidate got no traffic",
                check.summary()
            ),
        )));
    }
    e.caveats.push(check.summary());
    Ok(None)
}

/// Stage 4: a probe-first proposal has had its cheap probe (the stages above); a person
/// decides whether it goes further.
fn probe_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    e: &mut OfflineEvidence,
) -> Result<Option<Verdict>> {
    if proposal.maturity != Maturity::ProbeFirst {
        return Ok(None);
    }
    let request = ApprovalRequest {
        id: format!("{}-probe", proposal.id),
        proposal_id: Some(proposal.id.clone()),
        kind: ApprovalKind::ProbeFirst,
        question: format!(
            "probe-first proposal \"{}\" passed its offline probe ({} {:.4} -> {:.4}, holdout passed): take it further?",
            proposal.title, e.metric, e.production, e.candidate
        ),
        evidence: serde_json::json!({ "risks": proposal.risks,
            "validation": proposal.validation, "offline": candidate.offline }),
    };
    ask_offline(
        ctx,
        e,
        &request,
        "offline probe + approval",
        "probe-first: the offline probe passed",
    )
}

/// Ask `request` before any traffic: a refusal ends the cascade with a DISCARD that says what
/// was declined, by whom and why; an approval becomes a caveat saying who approved it.
fn ask_offline(
    ctx: &EvaluateCtx<'_>,
    e: &mut OfflineEvidence,
    request: &ApprovalRequest,
    method: &str,
    what: &str,
) -> Result<Option<Verdict>> {
    let answer = ctx.approvals.ask(ctx.rec, ctx.iteration, request)?;
    if !answer.approved {
        let reason = format!("{what}; declined by {}: {}", answer.by, answer.reason);
        return Ok(Some(e.verdict(Decision::Discard, method, reason)));
    }
    e.caveats.push(format!("{what}; approved by {}", answer.by));
    Ok(None)
}

/// Stage 6 (after the online stage 5): a KEEP decided offline only, or any KEEP under
/// `--approve`, waits for a person; a declined KEEP becomes a DISCARD that says who declined it
/// and why.
fn keep_approval_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    verdict: Verdict,
    offline_only: bool,
) -> Result<Verdict> {
    let verdict = online_attention_stage(ctx, proposal, verdict, offline_only)?;
    if verdict.decision != Decision::Keep || !(offline_only || ctx.approve) {
        return Ok(verdict);
    }
    let pid = &proposal.id;
    let (kind, id, why) = if offline_only {
        (
            ApprovalKind::OfflineOnly,
            format!("{pid}-offline-keep"),
            "offline only",
        )
    } else {
        (ApprovalKind::Keep, format!("{pid}-keep"), "--approve")
    };
    let request = ApprovalRequest {
        id,
        proposal_id: Some(pid.clone()),
        kind,
        question: format!(
            "KEEP \"{}\" ({why}) and merge it into production? {}",
            proposal.title, verdict.reason
        ),
        evidence: serde_json::to_value(&verdict).unwrap_or_default(),
    };
    let (approved, declined) = (format!("KEEP ({why})"), format!("the KEEP ({why}) was"));
    ask_about_keep(ctx, &request, verdict, &approved, &declined)
}

/// Ask a person about a KEEP: approved, a caveat `"{approved} approved by WHO"`; declined, a
/// DISCARD whose reason ends `"; {declined} declined by WHO: WHY"`.
fn ask_about_keep(
    ctx: &EvaluateCtx<'_>,
    request: &ApprovalRequest,
    mut verdict: Verdict,
    approved: &str,
    declined: &str,
) -> Result<Verdict> {
    let answer = ctx.approvals.ask(ctx.rec, ctx.iteration, request)?;
    if answer.approved {
        verdict
            .caveats
            .push(format!("{approved} approved by {}", answer.by));
    } else {
        verdict.decision = Decision::Discard;
        verdict.reason = format!(
            "{}; {declined} declined by {}: {}",
            verdict.reason, answer.by, answer.reason
        );
    }
    Ok(verdict)
}

/// An online KEEP whose verdict leaves a guardrail at its attention level (shown non-inferior
/// at the hard margin, but estimated worse than the attention threshold) waits for a person, as
/// an offline guardrail at that level does; declined, it becomes a DISCARD.
fn online_attention_stage(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    verdict: Verdict,
    offline_only: bool,
) -> Result<Verdict> {
    let attention: Vec<&str> = verdict
        .guardrails
        .iter()
        .filter(|(_, s)| **s == GuardrailStatus::Attention)
        .map(|(n, _)| n.as_str())
        .collect();
    if verdict.decision != Decision::Keep || offline_only || attention.is_empty() {
        return Ok(verdict);
    }
    let pid = &proposal.id;
    let names = attention.join(", ");
    let what = format!("online guardrail(s) {names} past the attention level at the verdict");
    let request = ApprovalRequest {
        id: format!("{pid}-online-attention-{}", attention.join("-")),
        proposal_id: Some(pid.clone()),
        kind: ApprovalKind::GuardrailAttention,
        question: format!(
            "KEEP \"{}\"? {what} (non-inferior at the hard margin, but estimated worse than \
             the attention threshold). {}",
            proposal.title, verdict.reason
        ),
        evidence: serde_json::to_value(&verdict).unwrap_or_default(),
    };
    ask_about_keep(
        ctx,
        &request,
        verdict,
        &format!("{what};"),
        &format!("{what},"),
    )
}

/// The offline comparison of every guardrail with production.
pub struct OfflineGuardrails {
    /// One check per guardrail reported by both.
    pub checks: Vec<GuardrailCheck>,
    /// Guardrails that could not be compared offline, and what was compared.
    pub caveats: Vec<String>,
}

impl OfflineGuardrails {
    /// Status per guardrail for the verdict record.
    pub fn statuses(&self) -> BTreeMap<String, GuardrailStatus> {
        self.checks
            .iter()
            .map(|c| {
                let s = match c.level {
                    GuardrailLevel::Ok => GuardrailStatus::Ok,
                    GuardrailLevel::Attention => GuardrailStatus::Attention,
                    GuardrailLevel::Hard => GuardrailStatus::Harm,
                };
                (c.name.clone(), s)
            })
            .collect()
    }
}

/// Compare each guardrail of the manifest between production's and the candidate's offline
/// metrics. A guardrail the offline evaluation reports for neither is left to the online stage
/// (with a caveat); one reported for production but not for the candidate is past its hard
/// level (it cannot be shown unharmed).
pub fn offline_guardrails(
    manifest: &Manifest,
    production: &MetricValues,
    candidate: &MetricValues,
) -> OfflineGuardrails {
    let mut checks = Vec::new();
    let mut caveats = Vec::new();
    for g in &manifest.metrics.guardrails {
        match (production.get(&g.name), candidate.get(&g.name)) {
            (None, None) => caveats.push(format!(
                "guardrail `{}` is not reported by the offline evaluation",
                g.name
            )),
            (Some(p), c) => checks.push(g.check(*p, c.copied().unwrap_or(f64::NAN))),
            (None, Some(c)) => checks.push(g.check(*c, *c)),
        }
    }
    if !checks.is_empty() {
        caveats.push(format!(
            "offline guardrails compared with production: {}",
            checks
                .iter()
                .map(|c| format!("{} {:.4} -> {:.4}", c.name, c.production, c.candidate))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    OfflineGuardrails { checks, caveats }
}

/// Why the holdout stage stopped: the run was cancelled, or an evaluation failed (the detail).
enum HoldoutError {
    Cancelled,
    Failed(String),
}

fn holdout_error(e: EvalError, who: String) -> HoldoutError {
    match e {
        EvalError::Cancelled => HoldoutError::Cancelled,
        e => HoldoutError::Failed(format!("holdout evaluation of {who}: {e}")),
    }
}

/// Whether the candidate beats production on the sealed holdout; `Err` when either holdout
/// evaluation could not be run.
fn holdout_passed(
    ctx: &EvaluateCtx<'_>,
    candidate: &Candidate,
    persona: Option<&recloop_core::Persona>,
) -> std::result::Result<bool, HoldoutError> {
    let pid = &candidate.proposal;
    let job = |what: &str, who: String| JobContext {
        rec: ctx.rec,
        iteration: ctx.iteration,
        step: format!("evaluate/{pid}/holdout/{what}"),
        proposal_id: Some(pid.clone()),
        job: format!("holdout of {who}"),
    };
    let prod_job = job("production", format!("production {}", ctx.production.0));
    let prod = ctx
        .holdout
        .metrics(ctx.evaluator, ctx.production.0, ctx.production.1, &prod_job)
        .map_err(|e| holdout_error(e, format!("production {}", ctx.production.0)))?;
    let cand = ctx
        .evaluator
        .evaluate_job(
            ctx.candidate_dir,
            Split::Holdout,
            &job("candidate", format!("candidate {}", candidate.id)),
        )
        .map_err(|e| holdout_error(e, format!("candidate {}", candidate.id)))?;
    holdout_confirms(ctx.manifest, persona, &prod, &cand).map_err(HoldoutError::Failed)
}

/// Journal a failure of the machinery and return it as an error of its class.
fn stage_failed(
    ctx: &EvaluateCtx<'_>,
    pid: &str,
    stage: &str,
    class: ErrorClass,
    detail: String,
) -> Result<AgentError> {
    ctx.rec.emit(
        ctx.iteration,
        &format!("{stage}/{pid}/failed"),
        Event::StageFailed {
            proposal_id: Some(pid.to_string()),
            stage: stage.to_string(),
            class,
            detail: detail.clone(),
        },
        None,
    )?;
    Ok(AgentError::Stage { class, detail })
}

/// The online experiment, extended while inconclusive: an inconclusive experiment that ran its
/// course becomes a new, independent experiment with EXTENSION_SCALE times the users, judged on
/// its own (`[online] extensions`).
fn online_cascade(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    candidate: &Candidate,
    platform: &dyn OnlinePlatform,
) -> Result<(Verdict, String)> {
    let mut extension = 0u32;
    let mut earlier: Vec<String> = Vec::new();
    loop {
        let (report, exp_id) = run_online(ctx, proposal, candidate, platform, extension)?;
        let mut verdict = report.verdict;
        let inconclusive =
            verdict.decision == Decision::Extend && report.outcome == Outcome::Completed;
        if inconclusive
            && extension < ctx.manifest.online.extensions
            && continues(ctx, proposal, &verdict, extension, &mut earlier)?
        {
            earlier.push(format!(
                "experiment {exp_id} was inconclusive ({}); extended to {}× the users",
                verdict.reason, EXTENSION_SCALE
            ));
            extension += 1;
            continue;
        }
        verdict.caveats.splice(0..0, earlier);
        return Ok((verdict, exp_id));
    }
}

/// Whether the inconclusive experiment `extension` of `proposal` is extended: always without a
/// [`EvaluateCtx::continuation`]; else its answer, journaled once (a `note`, topic
/// `online.continuation`) and reused on resume. A stop is added to `earlier` as a caveat.
fn continues(
    ctx: &EvaluateCtx<'_>,
    proposal: &Proposal,
    verdict: &Verdict,
    extension: u32,
    earlier: &mut Vec<String>,
) -> Result<bool> {
    let Some(ask) = ctx.continuation else {
        return Ok(true);
    };
    let pid = &proposal.id;
    let step = format!("evaluate/{pid}/continue-ext{}", extension + 1);
    let answer: Continuation = ctx.rec.step(ctx.iteration, &step, || {
        let answer = ask(verdict);
        ctx.rec.emit(
            ctx.iteration,
            &format!("{step}/note"),
            Event::Note {
                topic: "online.continuation".into(),
                text: format!(
                    "{pid}: {} ({})",
                    if answer.extend {
                        "the inconclusive experiment is extended"
                    } else {
                        "the inconclusive experiment stops here"
                    },
                    answer.reason
                ),
                data: serde_json::json!({"extend": answer.extend, "extension": extension + 1}),
            },
            None,
        )?;
        Ok(answer)
    })?;
    if !answer.extend {
        earlier.push(format!("not extended: {}", answer.reason));
    }
    Ok(answer.extend)
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
        // escalations always go to the observer, which asks through the approvals
        approve: true,
        population_scale: EXTENSION_SCALE.pow(extension),
        ..ExperimentSettings::default()
    };
    let mut n = 0u32;
    let mut journal_error: Option<AgentError> = None;
    let mut step = 0u32;
    let mut observer = |e: &ExperimentEvent| -> Ack {
        n += 1;
        if matches!(e, ExperimentEvent::RampAdvanced { .. }) {
            step += 1;
        }
        let (event, approval) = journal_entry(e, proposal, &exp_id, step);
        if let Some(ev) = event
            && let Err(err) = ctx.rec.emit(ctx.iteration, &format!("{key}/{n}"), ev, None)
        {
            let text = err.to_string();
            journal_error = Some(err);
            return Ack::Stop(text);
        }
        if let Some(request) = approval {
            return match ctx.approvals.ask(ctx.rec, ctx.iteration, &request) {
                Ok(a) if a.approved => Ack::Continue,
                Ok(_) => Ack::Reject,
                Err(err) => {
                    let text = err.to_string();
                    journal_error = Some(err);
                    Ack::Stop(text)
                }
            };
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
        return Err(e);
    }
    let report = match report {
        Ok(r) => r,
        Err(detail) => {
            return Err(stage_failed(
                ctx,
                pid,
                "evaluate/online",
                ErrorClass::Platform,
                format!("experiment {exp_id} on {}: {detail}", platform.name()),
            )?);
        }
    };
    Ok((report, exp_id))
}

/// What an experiment event becomes in the journal (ramp steps, health holds, vetoes,
/// escalations; `step` counts the ramp advances so far), and for an escalation the approval a
/// person is asked.
fn journal_entry(
    e: &ExperimentEvent,
    proposal: &Proposal,
    exp_id: &str,
    step: u32,
) -> (Option<Event>, Option<ApprovalRequest>) {
    let pid = &proposal.id;
    let experiment_id = exp_id.to_string();
    match e {
        ExperimentEvent::RampAdvanced { to, .. } => (
            Some(Event::RampAdvanced {
                proposal_id: pid.clone(),
                experiment_id,
                step,
                traffic: *to,
            }),
            None,
        ),
        ExperimentEvent::Hold { srm_p, day, .. } => (
            Some(Event::HealthHold {
                proposal_id: pid.clone(),
                experiment_id,
                reason: format!("sample ratio mismatch on day {day}"),
                srm_p_value: Some(*srm_p),
            }),
            None,
        ),
        ExperimentEvent::Rollback {
            metric,
            relative,
            p_value,
            day,
            ..
        } => (
            Some(Event::Veto {
                proposal_id: pid.clone(),
                experiment_id,
                guardrail: metric.clone(),
                reason: format!(
                    "harm on {metric} ({:+.2}%, p = {p_value:.4}) on day {day}: rolled back",
                    relative * 100.0
                ),
            }),
            None,
        ),
        ExperimentEvent::Escalation {
            metric,
            relative_harm,
            threshold,
            day,
            share,
        } => {
            let reason = format!(
                "{metric} worse by {:.2}% at {:.0}% traffic on day {day} (attention threshold {:.2}%)",
                relative_harm * 100.0,
                share * 100.0,
                threshold * 100.0
            );
            let approval = ApprovalRequest {
                id: format!("{exp_id}-{metric}-day{day}"),
                proposal_id: Some(pid.clone()),
                kind: ApprovalKind::OnlineEscalation,
                question: format!(
                    "experiment {exp_id} of \"{}\": {reason}. Continue the ramp?",
                    proposal.title
                ),
                evidence: serde_json::to_value(e).unwrap_or_default(),
            };
            let event = Event::AttentionEscalation {
                proposal_id: pid.clone(),
                experiment_id,
                guardrail: metric.clone(),
                reason,
                approved: None,
            };
            (Some(event), Some(approval))
        }
        _ => (None, None),
    }
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

/// The id of the lesson an outcome of `proposal` speaks to: `lesson:LEVER:DIRECTION:do` for a
/// KEEP, `...:avoid` otherwise.
pub fn lesson_id(proposal: &Proposal, decision: Decision) -> String {
    let dir = proposal
        .change
        .get("direction")
        .and_then(|d| d.as_i64())
        .unwrap_or(0);
    let kind = if decision == Decision::Keep {
        "do"
    } else {
        "avoid"
    };
    format!("lesson:{}:{dir}:{kind}", proposal.lever)
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
    let id = lesson_id(proposal, decision);
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

    #[test]
    fn the_holdout_confirms_what_validation_judged() {
        let manifest = Manifest::parse(
            &format!(
                "{}\n[[personas]]\nname = \"reward\"\n",
                include_str!("../../recloop-rec/src/example/movielens/recloop.toml")
                    .split("\n# Production traffic logs")
                    .next()
                    .unwrap()
            ),
            Path::new("recloop.toml"),
        )
        .unwrap();
        let reward = manifest.persona("reward").unwrap();
        let m = |ndcg: f64, rating: f64| -> BTreeMap<String, f64> {
            [
                ("ndcg@10".to_string(), ndcg),
                ("mean_rating@10".to_string(), rating),
            ]
            .into_iter()
            .collect()
        };
        let prod = m(0.400, 3.90);
        // the generalist needs the primary better
        assert!(holdout_confirms(&manifest, None, &prod, &m(0.401, 3.80)).unwrap());
        assert!(!holdout_confirms(&manifest, None, &prod, &m(0.398, 4.10)).unwrap());
        // the reward persona: the proxy better, the primary within 0.005
        assert!(holdout_confirms(&manifest, Some(&reward), &prod, &m(0.398, 4.10)).unwrap());
        assert!(!holdout_confirms(&manifest, Some(&reward), &prod, &m(0.390, 4.10)).unwrap());
        assert!(!holdout_confirms(&manifest, Some(&reward), &prod, &m(0.401, 3.85)).unwrap());
        let missing: BTreeMap<String, f64> = [("ndcg@10".to_string(), 0.41)].into_iter().collect();
        let err = holdout_confirms(&manifest, Some(&reward), &prod, &missing).unwrap_err();
        assert!(
            err.contains("mean_rating@10") && err.contains("reward persona"),
            "{err}"
        );
    }
    use recloop_online::DayReport;
    use std::sync::{Arc, Mutex};

    /// An online platform that answers with scripted decisions and records what it was asked.
    struct Scripted {
        decisions: Vec<Decision>,
        calls: Mutex<Vec<(u32, u64, String)>>,
        /// Guardrails the verdicts leave at their attention level.
        attention: Vec<&'static str>,
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
        ) -> std::result::Result<ExperimentReport, PlatformError> {
            let mut calls = self
                .calls
                .lock()
                .map_err(|e| PlatformError::Other(e.to_string()))?;
            let decision = self.decisions[calls.len()];
            calls.push((
                settings.population_scale,
                settings.seed,
                settings.id.clone(),
            ));
            let mut verdict = fixtures::verdict(decision, 0.01);
            verdict.reason = format!("scripted {decision} #{}", calls.len());
            for g in &self.attention {
                verdict
                    .guardrails
                    .insert(g.to_string(), GuardrailStatus::Attention);
            }
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
        fn evaluate(
            &self,
            dir: &Path,
            _split: Split,
        ) -> std::result::Result<MetricValues, EvalError> {
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
        let platform = Scripted {
            decisions: decisions.to_vec(),
            calls: Mutex::new(Vec::new()),
            attention: vec![],
        };
        let case = Case {
            extensions,
            ..Case::default()
        };
        let (verdict, events) = case.evaluate(&Fixed, &platform, &Approvals::default());
        let started = events
            .into_iter()
            .filter_map(|r| match r.event {
                Event::ExperimentStarted { experiment_id, .. } => Some(experiment_id),
                _ => None,
            })
            .collect();
        let verdict = verdict.unwrap();
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
    fn a_continuation_stops_an_inconclusive_experiment_and_says_why() {
        let platform = Scripted {
            decisions: vec![Decision::Extend, Decision::Keep],
            calls: Mutex::new(Vec::new()),
            attention: vec![],
        };
        let case = Case {
            extensions: 1,
            stop_extensions: true,
            ..Case::default()
        };
        let (verdict, events) = case.evaluate(&Fixed, &platform, &Approvals::default());
        let v = verdict.unwrap();
        // one experiment: the extension that would have been KEEP never ran
        assert_eq!(v.decision, Decision::Extend);
        assert_eq!(platform.calls.into_inner().unwrap().len(), 1);
        assert!(
            v.caveats[0].starts_with("not extended: left the top K after scripted EXTEND #1"),
            "{:?}",
            v.caveats
        );
        let notes: Vec<String> = events
            .iter()
            .filter_map(|r| match &r.event {
                Event::Note { topic, text, .. } if topic == "online.continuation" => {
                    Some(text.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("stops here"), "{notes:?}");
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

    /// Production and candidate as in [`Fixed`], but the holdout evaluation fails.
    struct HoldoutBroken;

    impl OfflineEvaluator for HoldoutBroken {
        fn evaluate(
            &self,
            dir: &Path,
            split: Split,
        ) -> std::result::Result<MetricValues, EvalError> {
            if split == Split::Holdout {
                return Err(EvalError::CommandFailed(
                    "holdout_eval exited with status 2: no such file".into(),
                ));
            }
            Fixed.evaluate(dir, split)
        }
    }

    /// A platform that fails, or raises one attention escalation and obeys the answer.
    struct Platform {
        fail: bool,
    }

    impl OnlinePlatform for Platform {
        fn name(&self) -> String {
            "test".into()
        }

        fn run(
            &self,
            _manifest: &Manifest,
            _control: &Path,
            _treatment: &Path,
            _settings: &ExperimentSettings,
            observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
        ) -> std::result::Result<ExperimentReport, PlatformError> {
            if self.fail {
                return Err(PlatformError::Other(
                    "connection to the assignment service refused".into(),
                ));
            }
            let ack = observer(&ExperimentEvent::Escalation {
                day: 3,
                share: 0.05,
                metric: "hide_rate".into(),
                relative_harm: 0.08,
                threshold: 0.05,
            });
            let decision = match ack {
                Ack::Continue => Decision::Keep,
                Ack::Reject => Decision::Discard,
                Ack::Stop(reason) => return Err(PlatformError::Other(reason)),
            };
            Ok(ExperimentReport {
                verdict: fixtures::verdict(decision, 0.01),
                outcome: recloop_online::Outcome::Completed,
                days: 14,
                max_share: 0.5,
                escalations: 1,
                last_report: DayReport::default(),
            })
        }
    }

    /// The settings of one evaluation of p1 in the tests.
    #[derive(Default)]
    struct Case {
        /// `[online] extensions`.
        extensions: u32,
        /// `--approve`.
        approve: bool,
        /// The proposal's maturity (default: ready).
        maturity: Option<Maturity>,
        /// `[online.off_policy]` on the Open Bandit sample, with production's and the
        /// candidate's `policy.json`.
        off_policy: Option<(String, String)>,
        /// A continuation that stops every inconclusive experiment (the dual loop's, when the
        /// candidate left its top K).
        stop_extensions: bool,
    }

    impl Case {
        /// Evaluate p1 (candidate 0.5 against production 0.3) with `evaluator`, `online` and
        /// `approvals`; the result and the journal.
        fn evaluate(
            &self,
            evaluator: &dyn OfflineEvaluator,
            online: &dyn OnlinePlatform,
            approvals: &Approvals,
        ) -> (Result<Verdict>, Vec<recloop_journal::EventRecord>) {
            let tmp = tempfile::tempdir().unwrap();
            let mut text = format!(
                "[project]\nname = \"t\"\neditable = [\"pipeline.toml\"]\n[metrics]\nprimary = {{ name = \"ndcg@10\", direction = \"increase\", min_effect = 0.002 }}\n[online]\nextensions = {}\n",
                self.extensions
            );
            if let Some((production, candidate)) = &self.off_policy {
                text += "[online.off_policy]\ndataset = \"obd\"\npolicy = \"policy.json\"\n";
                for (dir, policy) in [("prod", production), ("cand", candidate)] {
                    std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
                    std::fs::write(tmp.path().join(dir).join("policy.json"), policy).unwrap();
                }
            }
            let manifest = Manifest::parse(&text, &tmp.path().join("recloop.toml")).unwrap();
            let journal = Journal::open(tmp.path().join("j.db").to_str().unwrap()).unwrap();
            let rec = Recorder::new(journal.clone(), "run-t");
            let holdout = SealedHoldout::new(tmp.path());
            let production_metrics: MetricValues =
                [("ndcg@10".to_string(), 0.3)].into_iter().collect();
            let (prod, cand) = (tmp.path().join("prod"), tmp.path().join("cand"));
            let stop = |v: &Verdict| Continuation {
                extend: false,
                reason: format!("left the top K after {}", v.reason),
            };
            let ctx = EvaluateCtx {
                manifest: &manifest,
                rec: &rec,
                iteration: 1,
                evaluator,
                holdout: &holdout,
                online: Some(online),
                production: ("base", &prod),
                production_metrics: &production_metrics,
                candidate_dir: &cand,
                seed: 7,
                approve: self.approve,
                approvals,
                continuation: self.stop_extensions.then_some(&stop as _),
            };
            let mut proposal = fixtures::proposal("p1", "t", "h", "ranking", "model.ease.lambda");
            proposal.maturity = self.maturity.unwrap_or(Maturity::Ready);
            let candidate = fixtures::candidate("p1", "base", 0.5);
            let r = evaluate(&ctx, &proposal, &candidate);
            (r, journal.events(&EventFilter::default()).unwrap())
        }
    }

    /// A policy on the Open Bandit sample (random/all) that shows the items with (`clicked`) or
    /// without clicks in the log.
    fn obd_policy(clicked: bool) -> String {
        let log = recloop_rec::data::obd::load("random", "all").unwrap();
        let mut clicks = vec![0u32; log.n_items];
        for (item, click) in log.item_id.iter().zip(&log.click) {
            clicks[*item as usize] += u32::from(*click);
        }
        let scores: Vec<f64> = clicks
            .iter()
            .map(|&c| f64::from(u8::from((c > 0) == clicked)))
            .collect();
        serde_json::json!({ "scores": { "scores": scores, "beta": 30.0 } }).to_string()
    }

    /// NETWORK/DATA (the Open Bandit sample, fetched on first use): a candidate whose
    /// off-policy interval lies below production's gets no traffic; one whose interval does
    /// not goes online with the replay as a caveat.
    #[test]
    fn off_policy_replay_keeps_a_harmful_candidate_from_traffic() {
        let evaluate = |candidate: String| {
            let platform = Scripted {
                decisions: vec![Decision::Keep],
                calls: Mutex::new(Vec::new()),
                attention: vec![],
            };
            let case = Case {
                off_policy: Some(("\"uniform\"".into(), candidate)),
                ..Case::default()
            };
            let (v, events) = case.evaluate(&Fixed, &platform, &Approvals::default());
            let replay = events
                .into_iter()
                .find_map(|r| match r.event {
                    Event::OffPolicyResult {
                        harm,
                        ci,
                        rounds,
                        production,
                        ..
                    } => Some((harm, ci, rounds, production)),
                    _ => None,
                })
                .expect("the replay is journaled");
            (
                v.unwrap(),
                platform.calls.into_inner().unwrap().len(),
                replay,
            )
        };
        let (v, calls, (harm, ci, rounds, production)) = evaluate(obd_policy(false));
        println!("{}", v.reason);
        assert!(harm && ci.1 < 0.0, "{ci:?}");
        assert_eq!(rounds, 10_000);
        assert!((production - 0.0038).abs() < 0.001, "{production}");
        assert_eq!((v.decision, calls), (Decision::Discard, 0), "{}", v.reason);
        assert!(v.reason.contains("got no traffic"), "{}", v.reason);

        let (v, calls, (harm, ci, _, _)) = evaluate(obd_policy(true));
        println!("{:?}", v.caveats);
        assert!(!harm && ci.0 > 0.0, "{ci:?}");
        assert_eq!((v.decision, calls), (Decision::Keep, 1), "{}", v.reason);
        assert!(
            v.caveats
                .iter()
                .any(|c| c.starts_with("off-policy replay on obd/random/all")),
            "{:?}",
            v.caveats
        );
    }

    /// Evaluate p1 with the default settings (one extension, ready, no `--approve`).
    fn evaluate_with(
        evaluator: &dyn OfflineEvaluator,
        online: &dyn OnlinePlatform,
        approvals: &Approvals,
    ) -> (Result<Verdict>, Vec<recloop_journal::EventRecord>) {
        Case {
            extensions: 1,
            ..Case::default()
        }
        .evaluate(evaluator, online, approvals)
    }

    /// [`evaluate_with`] under `--approve` (`approve`) for a proposal of `maturity`.
    fn evaluate_as(
        evaluator: &dyn OfflineEvaluator,
        online: &dyn OnlinePlatform,
        approvals: &Approvals,
        approve: bool,
        maturity: Maturity,
    ) -> (Result<Verdict>, Vec<recloop_journal::EventRecord>) {
        Case {
            extensions: 1,
            approve,
            maturity: Some(maturity),
            ..Case::default()
        }
        .evaluate(evaluator, online, approvals)
    }

    fn types(ev: &[recloop_journal::EventRecord]) -> Vec<&'static str> {
        ev.iter().map(|e| e.event.type_name()).collect()
    }

    #[test]
    fn a_holdout_that_cannot_be_evaluated_is_an_error_not_a_verdict() {
        let (r, ev) = evaluate_with(
            &HoldoutBroken,
            &Platform { fail: false },
            &Approvals::default(),
        );
        match r {
            Err(AgentError::Stage { class, detail }) => {
                assert_eq!(class, ErrorClass::Holdout);
                assert!(detail.contains("no such file"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let t = types(&ev);
        assert!(t.contains(&"stage_failed"), "{t:?}");
        assert!(
            !t.contains(&"verdict") && !t.contains(&"holdout_result"),
            "{t:?}"
        );
    }

    #[test]
    fn a_failing_platform_is_an_error_not_a_verdict() {
        let (r, ev) = evaluate_with(&Fixed, &Platform { fail: true }, &Approvals::default());
        assert!(
            matches!(&r, Err(AgentError::Stage { class: ErrorClass::Platform, detail }) if detail.contains("refused")),
            "{r:?}"
        );
        assert!(!types(&ev).contains(&"verdict"));
    }

    #[test]
    fn an_online_escalation_waits_for_a_person_and_a_rejection_rolls_back() {
        // nobody to ask: the experiment stops at the approval
        let (r, ev) = evaluate_with(&Fixed, &Platform { fail: false }, &Approvals::default());
        assert!(
            matches!(&r, Err(AgentError::AwaitingApproval { id, .. }) if id == "x-p1-hide_rate-day3"),
            "{r:?}"
        );
        let t = types(&ev);
        assert!(
            t.contains(&"attention_escalation") && t.contains(&"approval_requested"),
            "{t:?}"
        );
        // a rejection rolls back, an approval continues
        let no = scripted(&[false]);
        let (r, _) = evaluate_with(&Fixed, &Platform { fail: false }, &no);
        assert_eq!(r.unwrap().decision, Decision::Discard);
        let yes = Approvals {
            prompter: Some(crate::approvals::ScriptedPrompter::approve_all()),
            unattended: crate::approvals::Unattended::Wait,
        };
        let (r, ev) = evaluate_with(&Fixed, &Platform { fail: false }, &yes);
        assert_eq!(r.unwrap().decision, Decision::Keep);
        assert!(types(&ev).contains(&"approval_answered"));
    }

    /// Approvals answered by a script: `answers` in order, then nobody.
    fn scripted(answers: &[bool]) -> Approvals {
        Approvals {
            prompter: Some(Arc::new(crate::approvals::ScriptedPrompter::new(
                answers, None,
            ))),
            unattended: crate::approvals::Unattended::Wait,
        }
    }

    /// The kinds of the approvals requested in a journal.
    fn asked(ev: &[recloop_journal::EventRecord]) -> Vec<ApprovalKind> {
        ev.iter()
            .filter_map(|e| match &e.event {
                Event::ApprovalRequested { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_online_keep_with_a_guardrail_at_attention_waits_for_a_person() {
        let platform = |attention| Scripted {
            decisions: vec![Decision::Keep],
            calls: Mutex::new(Vec::new()),
            attention,
        };
        let case = Case::default();
        // a person declines: DISCARD, saying which guardrail and who declined
        let (v, ev) = case.evaluate(&Fixed, &platform(vec!["hide_rate"]), &scripted(&[false]));
        let v = v.unwrap();
        assert_eq!(v.decision, Decision::Discard, "{}", v.reason);
        assert!(
            v.reason
                .contains("online guardrail(s) hide_rate past the attention level"),
            "{}",
            v.reason
        );
        assert_eq!(asked(&ev), vec![ApprovalKind::GuardrailAttention]);
        // approved: KEEP, with the approval as a caveat
        let (v, _) = case.evaluate(&Fixed, &platform(vec!["hide_rate"]), &scripted(&[true]));
        let v = v.unwrap();
        assert_eq!(v.decision, Decision::Keep);
        assert!(
            v.caveats.iter().any(|c| c.contains("approved by")),
            "{:?}",
            v.caveats
        );
        // every guardrail within its attention level: nobody is asked
        let (v, ev) = case.evaluate(&Fixed, &platform(vec![]), &scripted(&[]));
        assert_eq!(v.unwrap().decision, Decision::Keep);
        assert!(asked(&ev).is_empty());
    }

    #[test]
    fn under_approve_a_keep_waits_for_a_person_and_a_rejection_discards_it() {
        let approve_escalation = scripted(&[true]);
        let (r, ev) = evaluate_as(
            &Fixed,
            &Platform { fail: false },
            &approve_escalation,
            true,
            Maturity::Ready,
        );
        assert!(
            matches!(&r, Err(AgentError::AwaitingApproval { id, .. }) if id == "p1-keep"),
            "{r:?}"
        );
        assert_eq!(
            asked(&ev),
            vec![ApprovalKind::OnlineEscalation, ApprovalKind::Keep]
        );
        let decline = scripted(&[true, false]);
        let (r, _) = evaluate_as(
            &Fixed,
            &Platform { fail: false },
            &decline,
            true,
            Maturity::Ready,
        );
        let v = r.unwrap();
        assert_eq!(v.decision, Decision::Discard);
        assert!(
            v.reason.contains("the KEEP (--approve) was declined"),
            "{}",
            v.reason
        );
        // without --approve an online KEEP needs nobody
        let approve_escalation = scripted(&[true]);
        let (r, ev) = evaluate_as(
            &Fixed,
            &Platform { fail: false },
            &approve_escalation,
            false,
            Maturity::Ready,
        );
        assert_eq!(r.unwrap().decision, Decision::Keep);
        assert_eq!(asked(&ev), vec![ApprovalKind::OnlineEscalation]);
    }

    #[test]
    fn a_probe_first_proposal_goes_online_only_with_a_person_s_go_ahead() {
        let (r, ev) = evaluate_as(
            &Fixed,
            &Platform { fail: false },
            &Approvals::default(),
            false,
            Maturity::ProbeFirst,
        );
        assert!(
            matches!(&r, Err(AgentError::AwaitingApproval { id, .. }) if id == "p1-probe"),
            "{r:?}"
        );
        assert_eq!(asked(&ev), vec![ApprovalKind::ProbeFirst]);
        assert!(
            !types(&ev).contains(&"experiment_started"),
            "no traffic before the go-ahead"
        );
        assert!(
            types(&ev).contains(&"holdout_result"),
            "the probe ran offline first"
        );
    }
}
