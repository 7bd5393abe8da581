//! The built-in brain: typed mutations of `pipeline.toml` chosen by a TPE search guided by the
//! journal, with an avoid set and an explicit exploit/explore/novel balance per batch. Also the
//! random-search baseline over the same mutation space.

use super::declared::{self, DeclaredSpace, Reach};
use super::{Brain, BrainstormInput, BrainstormOutput, DevelopInput, DevelopOutput, Rejection};
use crate::error::{AgentError, Result};
use crate::history::History;
use crate::space::{self, Mutation, Step, features, spec_hash};
use crate::tpe::{Observation, Tpe};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use recloop_core::{
    EvidenceItem, EvidenceSource, Maturity, Proposal, ProposalKind, ScoreParts, ScoreWeights,
    TrajectoryStep,
};
use recloop_rec::pipeline::PipelineSpec;
use std::collections::{BTreeMap, BTreeSet};

/// How the built-in brain chooses among sampled mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// TPE guided by the journal.
    Tpe,
    /// Uniformly random (the baseline).
    Random,
}

/// The built-in brain.
#[derive(Debug, Clone)]
pub struct BuiltinBrain {
    /// Search strategy.
    pub search: Search,
    /// The numbers the search runs on (a versioned harness; random search samples once).
    pub policy: super::policy::BrainPolicy,
}

/// What every proposal of one brainstorm shares.
struct ProposalContext<'a> {
    input: &'a BrainstormInput<'a>,
    base: &'a PipelineSpec,
    base_hash: &'a str,
    tpe: Option<&'a Tpe>,
    /// Trials TPE was fitted on.
    measured: usize,
}

impl ProposalContext<'_> {
    /// The proposal for slot `i` of the batch: evidence, score parts and the change to apply.
    fn proposal(&self, c: Choice, kind: ProposalKind, i: usize) -> Proposal {
        let primary = &self.input.manifest.metrics.primary;
        let lever = c.mutation.lever();
        let same_lever: Vec<&crate::history::Trial> = self
            .input
            .history
            .trials
            .iter()
            .filter(|t| t.proposal.lever == lever)
            .collect();
        let evidence = self.evidence(&c, &lever, &same_lever);
        let (risks, risk) = risks_of(&c.mutation);
        let parts = ScoreParts {
            objective: c.objective.clamp(0.0, 1.0),
            business: if c.mutation.stage() == "rerank" {
                0.7
            } else {
                0.5
            },
            feasibility: feasibility(&c.mutation, &same_lever),
            handoff: 1.0,
            evidence: (evidence.len() as f64 / 4.0).min(1.0),
            risk,
        };
        let direction = c.mutation.direction(self.base);
        let way = |d: recloop_core::Direction| match d {
            recloop_core::Direction::Increase => "increase",
            recloop_core::Direction::Decrease => "decrease",
        };
        // a persona judged by a proxy targets the proxy (evaluate's proxy stage)
        let proxy = self
            .input
            .persona
            .and_then(|p| p.proxy.as_ref().map(|x| (p, x)));
        let (hypothesis, target) = match proxy {
            Some((p, x)) => (
                format!(
                    "{} will {} {} on the validation split with {} at most {} worse, without harming the guardrails",
                    c.mutation.describe(),
                    way(x.direction),
                    x.name,
                    primary.name,
                    p.primary_tolerance
                ),
                x,
            ),
            None => (
                format!(
                    "{} will {} {} on the validation split without harming the guardrails",
                    c.mutation.describe(),
                    way(primary.direction),
                    primary.name
                ),
                primary,
            ),
        };
        Proposal {
            id: format!("{}-{:02}", self.input.id_prefix, i + 1),
            title: c.mutation.describe(),
            hypothesis,
            mechanism: mechanism_of(&c.mutation),
            target_metric: target.name.clone(),
            direction: target.direction,
            location: vec!["pipeline.toml".into()],
            required_signals: vec![],
            risks,
            validation: "gates + validation split, sealed holdout pass/fail, guarded online A/B"
                .into(),
            maturity: Maturity::Ready,
            kind,
            evidence,
            score_parts: parts,
            score: parts.score(&ScoreWeights::default()),
            change: serde_json::json!({
                "mutation": c.mutation,
                "spec": c.spec,
                "base_hash": self.base_hash,
                "direction": direction,
                "step": c.mutation.step_size(self.base),
            }),
            stage: c.mutation.stage().into(),
            lever,
            persona: String::new(),
        }
    }

    /// The schema entry, the last three trials on the same lever, and TPE's score.
    fn evidence(
        &self,
        c: &Choice,
        lever: &str,
        same_lever: &[&crate::history::Trial],
    ) -> Vec<EvidenceItem> {
        let primary = &self.input.manifest.metrics.primary;
        let mut evidence = vec![EvidenceItem {
            source: EvidenceSource::SystemKb,
            reference: "pipeline.toml".into(),
            summary: format!(
                "stage `{}`, lever `{lever}` is part of the editable pipeline schema",
                c.mutation.stage()
            ),
        }];
        for t in same_lever.iter().rev().take(3) {
            evidence.push(trial_evidence(t, &primary.name));
        }
        if let Some(rule) = &c.rule {
            evidence.push(EvidenceItem {
                source: EvidenceSource::Journal,
                reference: format!("rule:{}", lever_class(lever)),
                summary: rule.clone(),
            });
        }
        if let Some(t) = self.tpe {
            evidence.push(EvidenceItem {
                source: EvidenceSource::Journal,
                reference: format!("tpe:{}-trials", self.measured),
                summary: format!(
                    "TPE over {} measured trials scores this spec {:.2} (good-vs-bad density ratio)",
                    self.measured,
                    t.score(&features(&c.spec))
                ),
            });
        }
        evidence
    }
}

/// An earlier trial on the same lever as evidence: its value of `metric` and how it ended.
fn trial_evidence(t: &crate::history::Trial, metric: &str) -> EvidenceItem {
    EvidenceItem {
        source: EvidenceSource::Journal,
        reference: t.proposal.id.clone(),
        summary: format!(
            "{}: {metric} = {}, {}",
            t.proposal.title,
            t.value.map_or("not measured".into(), |v| format!("{v:.4}")),
            t.decision.map_or_else(
                || t.rejected
                    .clone()
                    .map_or("undecided".into(), |r| format!("rejected: {r}")),
                |d| d.to_string()
            )
        ),
    }
}

/// A brainstorm batch, best S first, with its trajectory step (`searched`: what was searched).
fn batch_output(mut proposals: Vec<Proposal>, searched: String) -> BrainstormOutput {
    proposals.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    let output = proposals
        .iter()
        .map(|p| format!("{} [{:?}] S={:.3}", p.title, p.kind, p.score))
        .collect::<Vec<_>>()
        .join("\n");
    BrainstormOutput {
        proposals,
        rejected: Vec::<Rejection>::new(),
        trajectory: TrajectoryStep {
            agent: "brainstorm".into(),
            input: searched,
            tool_calls: vec![],
            output,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            duration_ms: 0,
        },
    }
}

/// Feasibility: the mean Q_code of earlier candidates on this lever (levers whose candidates
/// needed repairs or a person's help are less feasible), times a prior per model family.
fn feasibility(m: &Mutation, same_lever: &[&crate::history::Trial]) -> f64 {
    let qualities: Vec<f64> = same_lever.iter().filter_map(|t| t.quality).collect();
    let past_quality = if qualities.is_empty() {
        1.0
    } else {
        qualities.iter().sum::<f64>() / qualities.len() as f64
    };
    past_quality
        * match m {
            Mutation::SwitchModel { kind, .. } | Mutation::AddModel { kind, .. }
                if kind == "bpr" || kind == "ials" =>
            {
                0.7
            }
            _ => 0.9,
        }
}

impl BuiltinBrain {
    /// The default TPE brain.
    pub fn tpe() -> BuiltinBrain {
        BuiltinBrain::with_policy(super::policy::BrainPolicy::default())
    }

    /// The TPE brain on `policy` (the workspace's `policy.toml`).
    pub fn with_policy(policy: super::policy::BrainPolicy) -> BuiltinBrain {
        BuiltinBrain {
            search: Search::Tpe,
            policy,
        }
    }

    fn rates(&self) -> space::SearchRates {
        space::SearchRates {
            local_structural: self.policy.local_structural,
            global_structural: self.policy.global_structural,
            local_step: self.policy.local_step,
        }
    }

    /// The random-search baseline.
    pub fn random() -> BuiltinBrain {
        BuiltinBrain {
            search: Search::Random,
            policy: super::policy::BrainPolicy {
                samples: 1,
                ..Default::default()
            },
        }
    }
}

/// The balance of a batch: slot i gets this kind (exploit, explore, novel in turn).
pub fn slot_kind(i: usize) -> ProposalKind {
    match i % 3 {
        0 => ProposalKind::Exploit,
        1 => ProposalKind::Explore,
        _ => ProposalKind::Novel,
    }
}

/// The kinds of a batch of `n`: the `[run] quotas` schedule when the manifest sets quotas,
/// else [`slot_kind`] in turn.
fn batch_kinds(manifest: &recloop_core::Manifest, n: usize) -> Vec<ProposalKind> {
    match &manifest.run.quotas {
        Some(q) => q.schedule().into_iter().take(n).collect(),
        None => (0..n).map(slot_kind).collect(),
    }
}

/// Prior expected objective of a mutation when the journal has too little data for TPE.
fn prior_objective(m: &Mutation, base: &PipelineSpec) -> f64 {
    let weak_base = base
        .models
        .iter()
        .all(|x| x.kind == recloop_rec::ModelKind::MostPop);
    match m {
        Mutation::SwitchModel { .. } if weak_base => 0.8,
        Mutation::AddModel { .. } if weak_base => 0.7,
        Mutation::SwitchModel { .. } | Mutation::AddModel { .. } => 0.5,
        Mutation::SetParam { .. } => 0.55,
        Mutation::SetWeight { .. } | Mutation::SetNormalize { .. } => 0.45,
        Mutation::RemoveModel { .. } => 0.4,
        Mutation::SetRerank { .. } => 0.35,
        Mutation::SetPositives { .. } => 0.5,
    }
}

fn risks_of(m: &Mutation) -> (Vec<String>, f64) {
    match m {
        Mutation::SwitchModel { kind, .. } | Mutation::AddModel { kind, .. } => (
            vec![
                format!("{kind} changes fit time and scoring latency (latency guardrail)"),
                "a new candidate model shifts coverage and popularity bias".into(),
            ],
            0.35,
        ),
        Mutation::RemoveModel { .. } => (vec!["losing a signal the blend relied on".into()], 0.3),
        Mutation::SetParam { .. } => (vec!["overfitting the validation split".into()], 0.15),
        Mutation::SetWeight { .. } | Mutation::SetNormalize { .. } => {
            (vec!["blend dominated by one model".into()], 0.2)
        }
        Mutation::SetRerank { .. } => (
            vec!["diversity or popularity changes trade relevance (NDCG) for retention".into()],
            0.25,
        ),
        Mutation::SetPositives { .. } => (
            vec![
                "fewer positives: less to learn each user's taste from (NDCG may drop)".into(),
                "the offline proxy may not carry over online".into(),
            ],
            0.3,
        ),
    }
}

fn mechanism_of(m: &Mutation) -> String {
    match m {
        Mutation::SetParam { param, .. } => format!(
            "{param} controls the bias/variance trade-off of the model; the journal's good trials suggest a better region"
        ),
        Mutation::SwitchModel { kind, .. } => format!(
            "{kind} models item-item or latent structure that the current candidate generator misses"
        ),
        Mutation::AddModel { kind, .. } => {
            format!("blending {kind} adds a complementary signal to the current scores")
        }
        Mutation::RemoveModel { model } => format!("{model} adds noise to the blend"),
        Mutation::SetWeight { model, .. } => {
            format!("re-weighting {model} rebalances complementary signals")
        }
        Mutation::SetNormalize { normalize } => {
            format!("{normalize} normalisation puts the models' scores on comparable scales")
        }
        Mutation::SetRerank { field, .. } => format!(
            "{field} reshapes the final slate (diversity, popularity), which drives satisfaction and return visits"
        ),
        Mutation::SetPositives { min_rating } => format!(
            "learning from interactions rated ≥ {min_rating} steers the models towards what users valued, not only what they touched; users who like what they get come back"
        ),
    }
}

/// What the reward persona found in the logs.
struct RewardSignal {
    /// One sentence for the proposal's mechanism.
    finding: String,
    /// The query and its numbers, cited by every proposal.
    evidence: EvidenceItem,
}

/// The reward persona's question to the logs: do sessions with a like come back sooner than
/// sessions without one? Each (user, day) with events is a session; it returned when the
/// user has events again within 7 days (sessions in the last 7 days of the logs are left out).
pub const RETURN_AFTER_LIKE_SQL: &str = "WITH d AS (SELECT unit_id, day, SUM(CASE WHEN metric = 'likes' THEN value ELSE 0 END) AS likes FROM events GROUP BY unit_id, day), \
n AS (SELECT unit_id, day, likes, LEAD(day) OVER (PARTITION BY unit_id ORDER BY day) AS next_day FROM d), \
cutoff AS (SELECT MAX(day) - 7 AS last FROM events) \
SELECT CASE WHEN likes > 0 THEN 'liked' ELSE 'not liked' END AS session, COUNT(*) AS sessions, \
AVG(CASE WHEN next_day IS NOT NULL AND next_day - day <= 7 THEN 1.0 ELSE 0.0 END) AS returned_within_7d \
FROM n, cutoff WHERE n.day <= cutoff.last GROUP BY 1 ORDER BY 1";

/// Fewest sessions per group for the reward persona to trust a difference.
const MIN_SESSIONS: i64 = 30;

/// Run [`RETURN_AFTER_LIKE_SQL`] over the workspace's logs (journaled like any analysis) and
/// read it: a signal when sessions with a like return more often; otherwise why not.
fn reward_signal(input: &BrainstormInput<'_>) -> std::result::Result<RewardSignal, String> {
    if input
        .persona
        .is_some_and(|p| !p.tools.iter().any(|t| t == "run_sql_query"))
    {
        return Err("the persona is not given run_sql_query ([[personas]] tools), so it cannot read the logs; without evidence from the logs it proposes nothing".into());
    }
    let analysis = input
        .analysis
        .ok_or("no analysis tools in this call (no journal), so no logs to read")?;
    if !analysis.has_logs() {
        return Err("no exposure/event logs to read (set [online] logs, or write them with `recloop sim logs`); without evidence from the logs it proposes nothing".into());
    }
    let result = analysis.query(RETURN_AFTER_LIKE_SQL, "logs")?;
    let mut groups = BTreeMap::new();
    for row in &result.rows {
        use recloop_journal::sql::Val;
        // PostgreSQL answers AVG over decimals as NUMERIC, which reads as text
        let number = |k: usize| match row.get(k) {
            Some(Val::Int(Some(i))) => Some(*i as f64),
            Some(Val::Real(Some(f))) => Some(*f),
            Some(Val::Text(Some(t))) => t.trim().parse().ok(),
            _ => None,
        };
        if let (Some(Val::Text(Some(name))), Some(n), Some(rate)) =
            (row.first(), number(1), number(2))
        {
            groups.insert(name.clone(), (n as i64, rate));
        }
    }
    let (Some(&(n_liked, liked)), Some(&(n_other, other))) =
        (groups.get("liked"), groups.get("not liked"))
    else {
        return Err(format!(
            "the logs have no sessions both with and without likes to compare ({})",
            result.summary()
        ));
    };
    if n_liked.min(n_other) < MIN_SESSIONS {
        return Err(format!(
            "too few sessions to compare ({n_liked} with a like, {n_other} without; {MIN_SESSIONS} each needed)"
        ));
    }
    let numbers = format!(
        "sessions with a like: {n_liked}, {:.1}% returned within 7 days; without: {n_other}, {:.1}%",
        100.0 * liked,
        100.0 * other
    );
    if liked <= other {
        return Err(format!(
            "no reward signal in the logs: {numbers}; what users like does not predict that they return"
        ));
    }
    Ok(RewardSignal {
        finding: format!(
            "In the logs, users return more after sessions in which they liked something ({numbers})."
        ),
        evidence: EvidenceItem {
            source: recloop_core::EvidenceSource::Sql,
            reference: RETURN_AFTER_LIKE_SQL.into(),
            summary: numbers,
        },
    })
}

/// A scored candidate mutation.
struct Choice {
    mutation: Mutation,
    spec: PipelineSpec,
    objective: f64,
    /// Why the brain picked it, when a rule rather than the search chose it.
    rule: Option<String>,
}

/// Objective of a screening proposal (a model family no trial has measured yet): above every
/// prior guess (at most 0.85), so a batch measures the unmeasured families before it repeats a
/// measured one.
const SCREENING_OBJECTIVE: f64 = 0.9;

/// Family screening: personalised model families (those with searched parameters; the
/// popularity baseline is the reference, not a candidate) that no measured trial and not the
/// base has used yet, each
/// as a switch of the base's heaviest model to that family at the centre of its search ranges,
/// in a seeded order. A portfolio's first moves: every family is measured once before the search
/// spends trials tuning one of them.
fn screening_moves(base: &PipelineSpec, history: &History, rng: &mut Pcg64Mcg) -> Vec<Mutation> {
    let Some(heaviest) = base
        .models
        .iter()
        .max_by(|a, b| a.weight.total_cmp(&b.weight))
    else {
        return Vec::new();
    };
    let measured: Vec<recloop_rec::ModelKind> = history
        .trials
        .iter()
        .filter(|t| t.value.is_some())
        .filter_map(|t| t.spec.as_ref())
        .flat_map(|s| s.models.iter().map(|m| m.kind))
        .collect();
    let mut moves: Vec<Mutation> = recloop_rec::pipeline::params::ALL_KINDS
        .iter()
        .copied()
        .filter(|k| !space::searched_params(*k).is_empty())
        .filter(|k| !measured.contains(k) && !base.models.iter().any(|m| m.kind == *k))
        .map(|k| Mutation::SwitchModel {
            model: heaviest.name.clone(),
            kind: recloop_rec::pipeline::params::kind_name(k).to_string(),
            params: space::searched_params(k)
                .iter()
                .filter_map(|p| Some(((*p).to_string(), space::param_range(k, p)?.from_unit(0.5))))
                .collect(),
        })
        .collect();
    // seeded Fisher-Yates: which family comes first is not a preference
    for i in (1..moves.len()).rev() {
        moves.swap(i, rng.random_range(0..=i));
    }
    moves
}

/// The class of a lever whose outcomes are pooled (`blend.normalize.rank` and
/// `blend.normalize.none` are one class; other levers are their own class).
fn lever_class(lever: &str) -> &str {
    if lever.starts_with("blend.normalize.") {
        "blend.normalize"
    } else {
        lever
    }
}

/// Per lever class, the posterior mean (Beta(1, 1) prior) that a move improves on its base, from
/// the measured trials whose base value is known (the value of the trial or production that
/// made the base); a trial that went online and was not kept counts as a failure. Levers that kept hurting (a genre cap on an accuracy objective) are sampled
/// less; levers that kept helping, more.
fn lever_success(history: &History, sign: f64) -> BTreeMap<String, f64> {
    let mut value_of: BTreeMap<String, f64> = BTreeMap::new();
    for t in &history.trials {
        if let (Some(spec), Some(v)) = (&t.spec, t.value) {
            value_of.entry(spec_hash(spec)).or_insert(v);
        }
    }
    let production = history.production_values.first().map(|p| p.1);
    let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for t in &history.trials {
        let Some(v) = t.value else { continue };
        let base = t
            .base_hash
            .as_ref()
            .and_then(|h| value_of.get(h).copied())
            .or(production);
        let Some(base) = base else { continue };
        let e = counts
            .entry(lever_class(&t.proposal.lever).to_string())
            .or_insert((0.0, 0.0));
        // a gain offline that did not survive the users, or that a guardrail stopped, is not a
        // success of the lever
        if sign * (v - base) > 0.0 && !t.failed_despite_gain() {
            e.0 += 1.0;
        } else {
            e.1 += 1.0;
        }
    }
    counts
        .into_iter()
        .map(|(k, (s, f))| (k, (s + 1.0) / (s + f + 2.0)))
        .collect()
}

impl BuiltinBrain {
    /// What TPE learns from in the pipeline space (see [`crate::tpe::observations`]).
    fn observations(history: &History, sign: f64) -> Vec<Observation> {
        crate::tpe::observations(history, sign, |t| t.spec.as_ref().map(features))
    }

    #[allow(clippy::too_many_arguments)]
    fn choose(
        &self,
        base: &PipelineSpec,
        kind: ProposalKind,
        tpe: Option<&Tpe>,
        avoid_specs: &BTreeSet<String>,
        avoid_dirs: &BTreeMap<(String, String, i64), f64>,
        tried_levers: &BTreeSet<String>,
        success: &BTreeMap<String, f64>,
        in_scope: &dyn Fn(&str) -> bool,
        reward: bool,
        rng: &mut Pcg64Mcg,
    ) -> Option<Choice> {
        let base_hash = spec_hash(base);
        let step = match kind {
            ProposalKind::Exploit => Step::Local,
            _ => Step::Global,
        };
        let mut best: Option<Choice> = None;
        let want = if self.search == Search::Random {
            1
        } else {
            self.policy.samples
        };
        let rates = self.rates();
        let mut found = 0;
        for _ in 0..want * 20 {
            if found >= want {
                break;
            }
            let step = if self.search == Search::Random {
                Step::Global
            } else {
                step
            };
            let Some(m) = space::sample_in_scope(base, step, &rates, in_scope, reward, rng) else {
                continue;
            };
            if self.search == Search::Tpe {
                if kind == ProposalKind::Novel && tried_levers.contains(&m.lever()) {
                    continue;
                }
                if kind == ProposalKind::Explore
                    && !m.is_structural()
                    && rng.random::<f64>() < self.policy.explore_value_skip
                {
                    continue;
                }
            }
            let Some(spec) = m.apply(base) else { continue };
            let h = spec_hash(&spec);
            if avoid_specs.contains(&h) {
                continue;
            }
            let dir = (base_hash.clone(), m.lever(), i64::from(m.direction(base)));
            if self.search == Search::Tpe
                && dir.2 != 0
                && m.is_monotone()
                && avoid_dirs
                    .get(&dir)
                    .is_some_and(|&failed| m.step_size(base) >= failed)
            {
                continue;
            }
            found += 1;
            let objective = match (self.search, tpe) {
                (Search::Random, _) => rng.random::<f64>(),
                (Search::Tpe, Some(t)) => {
                    let s = t.score(&features(&spec));
                    1.0 / (1.0 + (-s / 2.0).exp())
                }
                (Search::Tpe, None) => prior_objective(&m, base) + 0.05 * rng.random::<f64>(),
            };
            // the lever's track record scales the search's score (1 for an untried lever)
            let objective = match self.search {
                Search::Tpe => {
                    objective * 2.0 * success.get(lever_class(&m.lever())).copied().unwrap_or(0.5)
                }
                Search::Random => objective,
            };
            if best.as_ref().is_none_or(|b| objective > b.objective) {
                best = Some(Choice {
                    mutation: m,
                    spec,
                    objective,
                    rule: None,
                });
            }
        }
        best
    }
}

impl Brain for BuiltinBrain {
    fn writes_code(&self) -> bool {
        false
    }

    fn policy(&self) -> Option<serde_json::Value> {
        (self.search == Search::Tpe)
            .then(|| serde_json::to_value(&self.policy).ok())
            .flatten()
    }

    fn name(&self) -> String {
        match self.search {
            Search::Tpe => "builtin".into(),
            Search::Random => "random".into(),
        }
    }

    fn brainstorm(&self, input: &BrainstormInput<'_>) -> Result<BrainstormOutput> {
        if let Some(space) = DeclaredSpace::of(&input.manifest.search) {
            return self.brainstorm_declared(input, &space);
        }
        let base = input.production_spec.ok_or_else(|| {
            AgentError::Invalid {
                path: "recloop.toml [search]".into(),
                reason: "the built-in brain searches the parameters that [[search.params]] declares (or a built-in pipeline.toml), and this workspace has neither; declare the tunable values of your config files, or configure [llm] for other changes".into(),
            }
        })?;
        let primary = &input.manifest.metrics.primary;
        let sign = primary.direction.sign();
        let mut rng = Pcg64Mcg::seed_from_u64(input.seed);
        let obs = Self::observations(input.history, sign);
        let tpe = if self.search == Search::Tpe {
            Tpe::fit(&obs)
        } else {
            None
        };
        let mut avoid_specs = input.history.tried_specs();
        avoid_specs.insert(spec_hash(base));
        let avoid_dirs = input.history.rejected_directions();
        let tried_levers = input.history.tried_levers();
        let success = lever_success(input.history, sign);
        let persona = input.persona;
        let in_scope = |lever: &str| persona.is_none_or(|p| p.allows(lever));
        // the reward persona reads the logs first: without a signal it proposes nothing
        let reward = match persona {
            Some(p) if p.allows("positives.min_rating") => match reward_signal(input) {
                Ok(signal) => Some(signal),
                Err(why) => {
                    return Ok(batch_output(
                        Vec::new(),
                        format!("{} persona, seed {}: {why}", p.name, input.seed),
                    ));
                }
            },
            _ => None,
        };
        let mut screening = match self.search {
            Search::Tpe if in_scope("candidates.switch.") => {
                screening_moves(base, input.history, &mut rng)
            }
            _ => Vec::new(),
        };
        let base_hash = spec_hash(base);
        let mut proposals = Vec::new();
        let kinds = batch_kinds(input.manifest, input.batch_size.max(1));
        for (i, kind) in kinds.into_iter().enumerate() {
            let screened = std::iter::from_fn(|| screening.pop()).find_map(|m| {
                // the centre was proposed before (and not measured): a point near it instead
                let (m, spec) = std::iter::once(m.clone())
                    .chain((0..8).filter_map(|_| match &m {
                        Mutation::SwitchModel { model, kind, .. } => Some(Mutation::SwitchModel {
                            model: model.clone(),
                            kind: kind.clone(),
                            params: space::sample_params(space::parse_kind(kind)?, &mut rng),
                        }),
                        _ => None,
                    }))
                    .filter_map(|m| Some((m.clone(), m.apply(base)?)))
                    .find(|(_, spec)| !avoid_specs.contains(&spec_hash(spec)))?;
                Some(Choice {
                    rule: Some(format!(
                        "family screening: no measured trial has used {} yet; every model family is measured once at the centre of its ranges before the search tunes one",
                        match &m {
                            Mutation::SwitchModel { kind, .. } => kind.as_str(),
                            _ => "this family",
                        }
                    )),
                    mutation: m,
                    spec,
                    objective: SCREENING_OBJECTIVE,
                })
            });
            let c = match screened {
                Some(c) => c,
                None => match self.choose(
                    base,
                    kind,
                    tpe.as_ref(),
                    &avoid_specs,
                    &avoid_dirs,
                    &tried_levers,
                    &success,
                    &in_scope,
                    reward.is_some(),
                    &mut rng,
                ) {
                    Some(c) => c,
                    None => continue,
                },
            };
            avoid_specs.insert(spec_hash(&c.spec));
            let context = ProposalContext {
                input,
                base,
                base_hash: &base_hash,
                tpe: tpe.as_ref(),
                measured: obs.len(),
            };
            let mut p = context.proposal(c, kind, i);
            if let Some(signal) = &reward {
                p.evidence.insert(0, signal.evidence.clone());
                p.mechanism = format!("{} {}", signal.finding, p.mechanism);
            }
            proposals.push(p);
        }
        Ok(batch_output(
            proposals,
            format!(
                "{} brain, seed {}, {} past trials, {} measured",
                self.name(),
                input.seed,
                input.history.trials.len(),
                obs.len()
            ),
        ))
    }

    fn develop(&self, input: &DevelopInput<'_>) -> Result<DevelopOutput> {
        if let Some(space) = DeclaredSpace::of(&input.manifest.search) {
            return develop_declared(input, &space);
        }
        let spec: PipelineSpec = input
            .proposal
            .change
            .get("spec")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| AgentError::Invalid {
                path: format!("proposal {}", input.proposal.id),
                reason: "change.spec is missing: the built-in brain can only implement its own typed mutations".into(),
            })?;
        let old = input.tools.read_file("pipeline.toml")?;
        let table = toml::Table::try_from(&spec).map_err(|e| AgentError::Invalid {
            path: "pipeline.toml".into(),
            reason: format!("cannot serialise the new spec: {e}"),
        })?;
        // a delta of the file: comments and untouched values keep their text
        let new = crate::config_edit::update_toml("pipeline.toml", &old, &table)?;
        let diff = crate::diff::make("pipeline.toml", &old, &new);
        let written = input.tools.apply_diff(&diff)?;
        Ok(DevelopOutput {
            summary: input.proposal.title.clone(),
            files_changed: written,
            hallucinated_fields: 0,
            trajectory: TrajectoryStep {
                agent: "develop".into(),
                input: input.proposal.title.clone(),
                tool_calls: vec![serde_json::json!({"tool": "apply_diff", "diff": diff})],
                output: "applied".into(),
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                duration_ms: 0,
            },
        })
    }
}

impl BuiltinBrain {
    /// Brainstorm over the workspace's declared search space: exploit slots move one parameter a
    /// step from production, explore and novel slots sample the whole space; TPE ranks the
    /// samples once the journal has measured trials.
    fn brainstorm_declared(
        &self,
        input: &BrainstormInput<'_>,
        space: &DeclaredSpace<'_>,
    ) -> Result<BrainstormOutput> {
        let primary = &input.manifest.metrics.primary;
        let base = space.read(input.workspace)?;
        let base_hash = DeclaredSpace::hash(&base);
        let mut rng = Pcg64Mcg::seed_from_u64(input.seed);
        let obs = declared::observations(space, input.history, primary.direction.sign());
        let tpe = (self.search == Search::Tpe)
            .then(|| Tpe::fit(&obs))
            .flatten();
        let mut avoid: BTreeSet<String> = input
            .history
            .trials
            .iter()
            .filter_map(declared::trial_assignment)
            .map(|a| DeclaredSpace::hash(&a))
            .collect();
        avoid.insert(base_hash.clone());
        let avoid_dirs = input.history.rejected_directions();
        let samples = if self.search == Search::Random {
            1
        } else {
            self.policy.samples
        };
        let mut proposals = Vec::new();
        let kinds = batch_kinds(input.manifest, input.batch_size.max(1));
        // a persona moves only its own parameters: one at a time unless it owns them all
        let in_scope = |lever: &str| input.persona.is_none_or(|p| p.allows(lever));
        for (i, kind) in kinds.into_iter().enumerate() {
            let reach = match (self.search, kind) {
                (Search::Tpe, ProposalKind::Exploit) => Reach::Local,
                _ if !in_scope("search.several") => Reach::Local,
                _ => Reach::Global,
            };
            let Some(c) = declared::choose(
                space,
                &base,
                reach,
                tpe.as_ref(),
                samples,
                &avoid,
                &avoid_dirs,
                &in_scope,
                &mut rng,
            ) else {
                continue;
            };
            avoid.insert(DeclaredSpace::hash(&c.assignment));
            proposals.push(declared_proposal(
                input,
                space,
                &base,
                &base_hash,
                c,
                kind,
                i,
                obs.len(),
            ));
        }
        Ok(batch_output(
            proposals,
            format!(
                "{} brain over {} declared parameters, seed {}, {} past trials, {} measured",
                self.name(),
                space.params().len(),
                input.seed,
                input.history.trials.len(),
                obs.len()
            ),
        ))
    }
}

/// The proposal for a chosen assignment of the declared space.
#[allow(clippy::too_many_arguments)]
fn declared_proposal(
    input: &BrainstormInput<'_>,
    space: &DeclaredSpace<'_>,
    base: &declared::Assignment,
    base_hash: &str,
    c: declared::DeclaredChoice,
    kind: ProposalKind,
    i: usize,
    measured: usize,
) -> Proposal {
    let primary = &input.manifest.metrics.primary;
    let changed = space.changed(base, &c.assignment);
    let describe: Vec<String> = changed
        .iter()
        .map(|p| {
            let from = base
                .get(p.label())
                .map_or("unset".into(), |v| v.to_string());
            let to = c
                .assignment
                .get(p.label())
                .map_or("unset".into(), |v| v.to_string());
            format!("{} {from} → {to}", p.label())
        })
        .collect();
    let files: BTreeSet<String> = changed.iter().map(|p| p.file.clone()).collect();
    let lever = format!("search.{}", c.lever);
    let mut evidence = vec![EvidenceItem {
        source: EvidenceSource::SystemKb,
        reference: "recloop.toml [search]".into(),
        summary: format!(
            "{} is a declared search parameter ({})",
            c.lever,
            files.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }];
    for t in input
        .history
        .trials
        .iter()
        .filter(|t| t.proposal.lever == lever)
        .rev()
        .take(3)
    {
        evidence.push(trial_evidence(t, &primary.name));
    }
    if measured > 0 {
        evidence.push(EvidenceItem {
            source: EvidenceSource::Journal,
            reference: format!("tpe:{measured}-trials"),
            summary: format!(
                "TPE over {measured} measured trials expects objective {:.2} here",
                c.objective
            ),
        });
    }
    let parts = ScoreParts {
        objective: c.objective.clamp(0.0, 1.0),
        business: 0.5,
        feasibility: 0.9,
        handoff: 1.0,
        evidence: (evidence.len() as f64 / 4.0).min(1.0),
        risk: if changed.len() > 1 { 0.25 } else { 0.15 },
    };
    let title = format!("set {}", describe.join(", "));
    Proposal {
        id: format!("{}-{:02}", input.id_prefix, i + 1),
        hypothesis: format!(
            "{title} will {} {} on the validation split without harming the guardrails",
            match primary.direction {
                recloop_core::Direction::Increase => "increase",
                recloop_core::Direction::Decrease => "decrease",
            },
            primary.name
        ),
        title,
        mechanism: "the declared parameters control the model's capacity, regularisation and blend; the journal's measured trials point to a better region".into(),
        target_metric: primary.name.clone(),
        direction: primary.direction,
        location: files.into_iter().collect(),
        required_signals: vec![],
        risks: vec!["overfitting the validation split".into()],
        validation: "gates + validation split, sealed holdout pass/fail, guarded online A/B".into(),
        maturity: Maturity::Ready,
        kind,
        evidence,
        score_parts: parts,
        score: parts.score(&ScoreWeights::default()),
        change: serde_json::json!({
            "assignment": c.assignment,
            "base_hash": base_hash,
            "direction": c.direction,
            "step": c.step,
        }),
        stage: "config".into(),
        lever,
        persona: String::new(),
    }
}

/// Develop a declared-space proposal: write each changed value as a delta of its file.
fn develop_declared(input: &DevelopInput<'_>, space: &DeclaredSpace<'_>) -> Result<DevelopOutput> {
    let assignment: declared::Assignment = input
        .proposal
        .change
        .get("assignment")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .ok_or_else(|| AgentError::Invalid {
            path: format!("proposal {}", input.proposal.id),
            reason: "change.assignment is missing: the built-in brain implements only its own assignments of the declared space".into(),
        })?;
    // through the tools, which refuse protected and non-editable paths
    let mut files = Vec::new();
    let mut calls = Vec::new();
    for (file, old, new) in space.deltas(input.worktree, &assignment)? {
        let diff = crate::diff::make(&file, &old, &new);
        files.extend(input.tools.apply_diff(&diff)?);
        calls.push(serde_json::json!({"tool": "apply_diff", "diff": diff}));
    }
    Ok(DevelopOutput {
        summary: input.proposal.title.clone(),
        files_changed: files,
        hallucinated_fields: 0,
        trajectory: TrajectoryStep {
            agent: "develop".into(),
            input: input.proposal.title.clone(),
            tool_calls: calls,
            output: "applied".into(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            duration_ms: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Trial;
    use recloop_core::Decision;

    fn spec(text: &str) -> PipelineSpec {
        toml::from_str(text).unwrap()
    }

    fn trial(lever: &str, base: &PipelineSpec, spec: PipelineSpec, value: f64) -> Trial {
        let mut proposal: Proposal = serde_json::from_value(serde_json::json!({
            "id": lever, "title": lever, "hypothesis": "h", "mechanism": "m",
            "target_metric": "ndcg@10", "direction": "increase", "location": [],
            "required_signals": [], "risks": [], "validation": "v", "maturity": "ready",
            "kind": "exploit", "evidence": [], "score_parts": {"objective": 0.5, "business": 0.5,
            "feasibility": 0.5, "handoff": 1.0, "evidence": 0.5, "risk": 0.1}, "score": 0.5,
            "change": {}, "stage": "rerank", "lever": lever
        }))
        .unwrap();
        proposal.lever = lever.into();
        Trial {
            proposal,
            seq: 0,
            spec: Some(spec),
            base_hash: Some(spec_hash(base)),
            value: Some(value),
            decision: Some(Decision::Discard),
            rejected: None,
            merged: false,
            online: false,
            diff_hash: None,
            error: None,
            quality: None,
            guardrail_failed: false,
        }
    }

    const POP: &str = "[[models]]\nname = \"pop\"\nkind = \"mostpop\"\n";
    const EASE: &str =
        "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = 224.0\n";

    #[test]
    fn screening_measures_each_personalised_family_once() {
        let base = spec(POP);
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let moves = screening_moves(&base, &History::default(), &mut rng);
        let kinds: BTreeSet<String> = moves
            .iter()
            .map(|m| match m {
                Mutation::SwitchModel {
                    kind,
                    model,
                    params,
                } => {
                    assert_eq!(model, "pop");
                    assert!(!params.is_empty() || kind == "mostpop");
                    kind.clone()
                }
                other => panic!("not a family switch: {other:?}"),
            })
            .collect();
        let expected: BTreeSet<String> = ["itemknn", "ease", "ials", "bpr"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            kinds, expected,
            "every personalised family, not the popularity baseline"
        );
        // EASE at the centre of its log range (10..5000): the geometric mean, rounded
        let ease = moves
            .iter()
            .find_map(|m| match m {
                Mutation::SwitchModel { kind, params, .. } if kind == "ease" => Some(params),
                _ => None,
            })
            .unwrap();
        assert_eq!(ease["lambda"], 224.0);

        // a measured EASE trial takes EASE off the list; the base's own family is never on it
        let mut history = History::default();
        history
            .trials
            .push(trial("candidates.switch.ease", &base, spec(EASE), 0.41));
        let after = screening_moves(&spec(EASE), &history, &mut rng);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(after.iter().all(|m| !m.lever().ends_with(".ease")));
    }

    #[test]
    fn levers_that_kept_hurting_are_weighted_down() {
        let base = spec(EASE);
        let mut history = History::default();
        history.production_values.push(("start".into(), 0.40));
        let capped = |cap: usize| {
            let mut s = spec(EASE);
            s.rerank.genre_cap = cap;
            s
        };
        let raised = |l: f64| {
            spec(&format!(
                "[[models]]\nname = \"ease\"\nkind = \"ease\"\n[models.params]\nlambda = {l}\n"
            ))
        };
        history
            .trials
            .push(trial("rerank.genre_cap", &base, capped(2), 0.30));
        history
            .trials
            .push(trial("rerank.genre_cap", &base, capped(3), 0.35));
        history
            .trials
            .push(trial("model.ease.lambda", &base, raised(700.0), 0.43));
        history
            .trials
            .push(trial("blend.normalize.rank", &base, capped(4), 0.39));
        let w = lever_success(&history, 1.0);
        assert!((w["rerank.genre_cap"] - 0.25).abs() < 1e-12, "{w:?}");
        assert!((w["model.ease.lambda"] - 2.0 / 3.0).abs() < 1e-12, "{w:?}");
        // better offline, then not kept online: a failure of its lever
        let mut online = trial("model.ease.lambda", &base, raised(900.0), 0.44);
        online.online = true;
        history.trials.push(online);
        let w = lever_success(&history, 1.0);
        assert!((w["model.ease.lambda"] - 0.5).abs() < 1e-12, "{w:?}");
        history.trials.pop();
        assert!(
            w.contains_key("blend.normalize"),
            "normalisations pool: {w:?}"
        );
        // minimising flips what counts as an improvement
        let down = lever_success(&history, -1.0);
        assert!((down["rerank.genre_cap"] - 0.75).abs() < 1e-12, "{down:?}");
    }
}
