//! Entry points for the CLI: choosing the brain and the online platform from the manifest,
//! creating the example workspace, and running single stages (`recloop brainstorm`,
//! `recloop develop ID`, `recloop evaluate ID`) under the run id `manual`.

use crate::BuiltinBrain;
use crate::approvals::Approvals;
use crate::brain::llm::{ChainPrice, LlmBrain, Prices};
use crate::brain::{Brain, BrainstormInput};
use crate::develop::{DevelopCtx, DevelopResult, develop as develop_one, worktree_dir};
use crate::error::{AgentError, Result};
use crate::evaluate::{EvaluateCtx, OnlinePlatform, SealedHoldout, evaluate as evaluate_one};
use crate::evaluator::Split;
use crate::history::History;
use crate::orchestrator::{Loop, RunOptions};
use crate::record::Recorder;
use recloop_core::{Manifest, Proposal, Verdict};
use recloop_journal::{Event, EventFilter};
use std::path::Path;
use std::sync::Arc;

/// The brain for a workspace: `builtin`, `random`, or `auto` (the LLM brain when `[llm]` is
/// configured, else built-in), without a spending limit of its own.
pub fn brain_for(workspace: &Path, choice: &str) -> Result<Arc<dyn Brain>> {
    brain_with_budget(workspace, choice, None)
}

/// The built-in TPE brain on the workspace's policy (`.recloop/harness/builtin/policy.toml`,
/// the latest version `recloop evolve --agent builtin` admitted; the defaults without one).
pub fn builtin_brain(workspace: &Path) -> Result<Arc<dyn Brain>> {
    Ok(Arc::new(BuiltinBrain::with_policy(
        crate::brain::policy::BrainPolicy::load(workspace)?,
    )))
}

/// [`brain_for`] with a dollar budget (`--budget-usd`; the smaller of it and `[llm] budget_usd`
/// binds). A dollar budget on a model without a known price is refused: it could never bind.
pub fn brain_with_budget(
    workspace: &Path,
    choice: &str,
    budget_usd: Option<f64>,
) -> Result<Arc<dyn Brain>> {
    match choice {
        "builtin" => return builtin_brain(workspace),
        "random" => return Ok(Arc::new(BuiltinBrain::random())),
        "auto" | "llm" => {}
        other => {
            return Err(AgentError::Invalid {
                path: "--brain".into(),
                reason: format!("{other:?} is not one of auto, builtin, random, llm"),
            });
        }
    }
    let manifest = Manifest::load(workspace)?;
    let Some(llm) = &manifest.llm else {
        if choice == "llm" {
            return Err(AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: "--brain llm needs an [llm] section".into(),
            });
        }
        return builtin_brain(workspace);
    };
    let budget = match (budget_usd, llm.budget_usd) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let llm_err = |e: recloop_llm::LlmError| AgentError::Llm(e.to_string());
    let router = || -> Result<recloop_llm::LlmRouter> {
        recloop_llm::LlmRouter::from_workspace(workspace)
            .map_err(llm_err)?
            .ok_or_else(|| AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: "[llm] disappeared while loading".into(),
            })
    };
    // Every agent role the loop runs gets its own model chain (`[llm.roles]`), charged to its
    // own budget scope; roles without a chain use the default model.
    let mut roles: Vec<String> = AGENT_ROLES.iter().map(|r| r.to_string()).collect();
    for r in llm.roles.keys().chain(llm.role_budgets.keys()) {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    match llm.provider.as_str() {
        "scripted" | "replay" => {
            let file = llm.cassettes.as_ref().ok_or_else(|| AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: "llm.cassettes must name the recorded responses file".into(),
            })?;
            let model = recloop_llm::ScriptedModel::from_file(&workspace.join(file))
                .map_err(|e| AgentError::Llm(e.to_string()))?;
            let mut brain = LlmBrain::new(Arc::new(model), Prices::FREE).with_budget(budget);
            if !llm.roles.is_empty() {
                // roles with their own chain (e.g. `develop = ["scripted:develop.json"]`)
                let router = router()?;
                brain = brain.with_length_policy(router.settings().length_policy());
                for role in llm.roles.keys() {
                    let model = router.for_role(role).map_err(llm_err)?;
                    brain = brain.with_role(role, model, Prices::FREE);
                }
            }
            Ok(Arc::new(brain))
        }
        // Real providers (openai, anthropic, openai-compatible, local) come from the router:
        // fallback chains, retries, circuit breakers, budgets and record/replay cassettes
        // (`RECLOOP_LLM`), all configured by `[llm]`.
        _ => {
            let router = router()?;
            let settings = router.settings();
            let mut brain: Option<LlmBrain> = None;
            for role in &roles {
                // every model of the role's chain is priced (a fallback model too)
                let mut chain = Vec::new();
                for spec in settings.chain_for(role) {
                    let (prices, source) = match llm.prices.get(&spec.model) {
                        Some(p) => (
                            Some(Prices {
                                input: p.input_per_mtok,
                                output: p.output_per_mtok,
                            }),
                            "recloop.toml",
                        ),
                        None => (Prices::listed(&spec.model), recloop_llm::PRICES_VERSION),
                    };
                    // a local model costs nothing; any other unpriced model would never reach
                    // the budget
                    if let Some(b) = budget
                        && prices.is_none()
                        && spec.provider != "local"
                    {
                        return Err(AgentError::Invalid {
                            path: "recloop.toml [llm]".into(),
                            reason: format!(
                                "a dollar budget (${b:.2}) cannot bind: model {:?} (role {role}) \
                                 has no known price. Price it in recloop.toml:\n\
                                 [llm.prices.\"{}\"]\n\
                                 input_per_mtok = 0.0   # US dollars per million input tokens\n\
                                 output_per_mtok = 0.0\nor limit tokens instead ([llm] budget_tokens)",
                                spec.model, spec.model
                            ),
                        });
                    }
                    chain.push(ChainPrice {
                        model: spec.model.clone(),
                        prices: prices.unwrap_or(Prices::FREE),
                        source: source.to_string(),
                    });
                }
                let model = router.for_role(role).map_err(llm_err)?;
                brain = Some(match brain {
                    // the first role's model also serves roles without their own entry
                    None => LlmBrain::new(
                        model.clone(),
                        chain.first().map_or(Prices::FREE, |c| c.prices),
                    )
                    .with_role_chain(role, model, chain),
                    Some(b) => b.with_role_chain(role, model, chain),
                });
            }
            let brain = brain.ok_or_else(|| AgentError::Invalid {
                path: "recloop.toml [llm]".into(),
                reason: "no agent role to serve".into(),
            })?;
            Ok(Arc::new(
                brain
                    .with_budget(budget)
                    .with_length_policy(settings.length_policy()),
            ))
        }
    }
}

/// The agent roles the loop asks a model for (each may have its own `[llm.roles]` chain).
pub const AGENT_ROLES: [&str; 2] = ["brainstorm", "develop"];

/// The online platform of a workspace, when one is available in this build.
pub fn online_for(workspace: &Path) -> Result<Option<Arc<dyn OnlinePlatform>>> {
    let manifest = Manifest::load(workspace)?;
    let sandbox = crate::sandbox::for_workspace(&manifest, &workspace.join(".recloop"), true).ok();
    recloop_online::platform_for(workspace, &manifest, sandbox)
        .map_err(|e| AgentError::Online(e.to_string()))
}

/// Create the MovieLens example at `dir` (as `recloop init --example movielens DIR` does) unless a
/// workspace is already there (its data are fetched when the loop opens it, [`ensure_data`]).
/// Returns true when it was created.
pub fn ensure_example(dir: &Path) -> Result<bool> {
    let created = if dir.join(recloop_core::manifest::MANIFEST_FILE).exists() {
        false
    } else {
        // Exactly what `recloop init --example movielens DIR` writes.
        crate::example::init_example("movielens", dir, &Default::default(), None).map_err(|e| {
            AgentError::Invalid {
                path: dir.display().to_string(),
                reason: format!("cannot create the MovieLens example: {e}"),
            }
        })?;
        true
    };
    Ok(created)
}

/// Fetch the dataset a built-in pipeline workspace evaluates on (`eval/eval.toml`), so that no
/// sandboxed command needs the network; nothing to do for other workspaces.
pub fn ensure_data(dir: &Path) -> Result<()> {
    if !dir.join("eval").join("eval.toml").exists() {
        return Ok(());
    }
    let config = recloop_rec::pipeline::EvalConfig::load_workspace(dir).map_err(|e| {
        AgentError::Invalid {
            path: dir.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    if config.dataset != "synthetic" {
        let name: recloop_rec::data::DatasetName =
            config
                .dataset
                .parse()
                .map_err(|e: recloop_rec::RecError| AgentError::Invalid {
                    path: "eval/eval.toml".into(),
                    reason: e.to_string(),
                })?;
        recloop_rec::data::fetch::ensure(name).map_err(|e| AgentError::Invalid {
            path: format!("dataset {}", config.dataset),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

fn open(workspace: &Path) -> Result<(Loop, Recorder)> {
    let opts = RunOptions {
        brain: Some(brain_for(workspace, "auto")?),
        ..Default::default()
    };
    let l = Loop::open(workspace, &opts)?;
    let rec = Recorder::new(l.journal.clone(), "manual");
    Ok((l, rec))
}

fn all(l: &Loop) -> Result<Vec<recloop_journal::EventRecord>> {
    l.journal
        .events(&EventFilter::default())
        .map_err(|e| AgentError::Journal(e.to_string()))
}

fn find_proposal(l: &Loop, id: &str) -> Result<(Proposal, u32)> {
    all(l)?
        .into_iter()
        .find_map(|e| match e.event {
            Event::ProposalMade { proposal } if proposal.id == id => Some((proposal, e.iteration)),
            _ => None,
        })
        .ok_or_else(|| {
            AgentError::NotFound(format!(
                "no proposal {id:?} in the journal (run `recloop brainstorm` first)"
            ))
        })
}

/// Brainstorm once from the current production; proposals are journaled under run `manual`.
pub fn brainstorm(workspace: &Path) -> Result<Vec<Proposal>> {
    let (l, rec) = open(workspace)?;
    let events = all(&l)?;
    let it = events
        .iter()
        .filter(|e| e.run_id == "manual")
        .map(|e| e.iteration)
        .max()
        .unwrap_or(0)
        + 1;
    let history = History::from_events(&events, &l.manifest.metrics.primary.name);
    let spec = recloop_rec::pipeline::PipelineSpec::load_workspace(&l.workspace).ok();
    let mut evidence = crate::evidence::render(&history, &l.manifest, &Default::default());
    evidence.push_str(&crate::analysis::evidence(&events, 5));
    let analysis = crate::analysis::Analysis::new(l.journal.clone(), &l.manifest, &l.workspace)
        .recording(rec.clone(), it);
    let spend = crate::brain::SpendLog::new();
    let personas = l.manifest.personas();
    let out = crate::personas::brainstorm(
        l.brain.as_ref(),
        &BrainstormInput {
            manifest: &l.manifest,
            workspace: &l.workspace,
            production_spec: spec.as_ref(),
            history: &history,
            evidence: &evidence,
            batch_size: l.manifest.run.batch_size as usize,
            seed: l.manifest.run.seed ^ u64::from(it),
            id_prefix: &format!("manual-i{it:02}"),
            harness: &l.harness(0),
            spend: &spend,
            analysis: Some(&analysis),
            persona: None,
        },
        &personas,
        it as usize,
    );
    rec.spend(it, "brainstorm/spend", &spend)?;
    let out = out?;
    crate::admission::record_batch(&rec, it, out, &l.manifest, &history)
}

/// Develop one journaled proposal from the current production commit.
pub fn develop(workspace: &Path, id: &str) -> Result<DevelopResult> {
    let (l, rec) = open(workspace)?;
    let (p, it) = find_proposal(&l, id)?;
    let base = l.repo.rev(&l.manifest.project.production)?;
    let history = History::from_events(&all(&l)?, &l.manifest.metrics.primary.name);
    let ctx = DevelopCtx {
        manifest: &l.manifest,
        repo: &l.repo,
        sandbox: l.sandbox.clone(),
        evaluator: l.evaluator.as_ref(),
        brain: l.brain.as_ref(),
        harness: &l.harness(1),
        rec: &rec,
        iteration: it,
        base_commit: base,
        commit_time: 1_800_000_000 + u64::from(it),
        tried_diffs: history.tried_diffs(),
        pitfalls: crate::evidence::pitfalls(&history, &p),
        remote: l.workers.as_ref().and_then(|w| w.remote.clone()),
    };
    let r = develop_one(&ctx, &p)?;
    let wt = worktree_dir(&l.repo, &crate::develop::candidate_id(&p));
    l.repo.drop_worktree(&wt)?;
    Ok(r)
}

/// Evaluate the candidate of one journaled proposal against the current production; decisions
/// that need a person are asked through `approvals`.
pub fn evaluate(workspace: &Path, id: &str, approvals: &Approvals) -> Result<Verdict> {
    let (l, rec) = open(workspace)?;
    let (p, it) = find_proposal(&l, id)?;
    let candidate = all(&l)?
        .into_iter()
        .find_map(|e| match e.event {
            Event::CandidateReady { candidate } if candidate.proposal == id => Some(candidate),
            _ => None,
        })
        .ok_or_else(|| {
            AgentError::NotFound(format!(
                "proposal {id:?} has no ready candidate (run `recloop develop {id}`)"
            ))
        })?;
    let prod = l.repo.rev(&l.manifest.project.production)?;
    let prod_dir = l
        .workspace
        .join(".recloop")
        .join("worktrees")
        .join("production");
    l.repo.checkout_detached(&prod_dir, &prod)?;
    let prod_metrics = l
        .evaluator
        .evaluate(&prod_dir, Split::Validation)
        .map_err(|e| AgentError::Invalid {
            path: format!("production {prod}"),
            reason: e.to_string(),
        })?;
    let wt = worktree_dir(&l.repo, &candidate.id);
    l.repo.checkout_detached(&wt, &candidate.commit)?;
    let holdout = SealedHoldout::new(&l.workspace);
    let online = l.online.clone();
    let ctx = EvaluateCtx {
        manifest: &l.manifest,
        rec: &rec,
        iteration: it,
        evaluator: l.evaluator.as_ref(),
        holdout: &holdout,
        online: online.as_deref(),
        production: (&prod, &prod_dir),
        production_metrics: &prod_metrics,
        candidate_dir: &wt,
        seed: l.manifest.run.seed,
        approve: false,
        approvals,
        continuation: None,
    };
    let v = evaluate_one(&ctx, &p, &candidate)?;
    l.repo.drop_worktree(&wt)?;
    l.repo.drop_worktree(&prod_dir)?;
    Ok(v)
}
