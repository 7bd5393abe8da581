//! The LLM brain: prompts assembled from the agent's harness and the evidence, tool use through
//! `recloop-llm`'s [`ChatModel`], answers validated against the harness contract. A failing answer
//! becomes a rejected proposal (Brainstorm) or a failed change (Develop) with the reason recorded.

use super::SpendLog;
use super::{Brain, BrainstormInput, BrainstormOutput, DevelopInput, DevelopOutput};
use crate::error::{AgentError, Result};
use crate::offline_tools::OfflineTools;
use crate::tools::Tools;
use recloop_core::{
    Direction, ErrorClass, EvidenceItem, EvidenceSource, Maturity, Proposal, ProposalKind,
    ScoreParts, ScoreWeights, TrajectoryStep,
};
use recloop_llm::{ChatModel, ChatRequest, LengthPolicy, Message, Schema, ToolDefinition};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Prices in US dollars per million tokens (input, output) used for spend accounting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Prices {
    /// No charge (scripted and replayed models).
    pub const FREE: Prices = Prices {
        input: 0.0,
        output: 0.0,
    };

    /// recloop-llm's price table for `model` ([`Prices::FREE`] when it is not listed).
    pub fn of(model: &str) -> Prices {
        Prices::listed(model).unwrap_or(Prices::FREE)
    }

    /// recloop-llm's price table for `model`, None when it is not listed.
    pub fn listed(model: &str) -> Option<Prices> {
        recloop_llm::price_of(model).map(|p| Prices {
            input: p.input_per_mtok,
            output: p.output_per_mtok,
        })
    }
}

/// The price of one model of a role's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainPrice {
    /// Model name as configured (an answering model whose name starts with it is charged
    /// these prices, e.g. `gpt-4o-mini` for `gpt-4o-mini-2024-07-18`).
    pub model: String,
    /// The prices.
    pub prices: Prices,
    /// Where they came from (recloop-llm's price table version, or `recloop.toml`).
    pub source: String,
}

/// One agent role's model and the prices its calls are charged at.
#[derive(Clone)]
struct RoleModel {
    model: Arc<dyn ChatModel>,
    /// Prices of the chain's models; the first also prices models that match none.
    prices: Vec<ChainPrice>,
}

impl RoleModel {
    fn single(model: Arc<dyn ChatModel>, prices: Prices, source: &str) -> RoleModel {
        RoleModel {
            model,
            prices: vec![ChainPrice {
                model: String::new(),
                prices,
                source: source.to_string(),
            }],
        }
    }

    /// The prices of the model that answered: the chain entry with the longest name the
    /// answering model's name starts with, else the first entry.
    fn price_of(&self, answered: &str) -> Option<&ChainPrice> {
        self.prices
            .iter()
            .filter(|p| !p.model.is_empty() && answered.starts_with(&p.model))
            .max_by_key(|p| p.model.len())
            .or_else(|| self.prices.first())
    }
}

/// Output tokens a Develop turn may need on top of its contract: the unified diff of an
/// `apply_diff` call (about 300 changed lines); a longer one is retried with a larger limit.
pub const DIFF_TOKENS: u32 = 4096;

/// The LLM brain.
pub struct LlmBrain {
    default: RoleModel,
    roles: BTreeMap<String, RoleModel>,
    spent: Mutex<(f64, u64, u64)>,
    /// Maximum model turns per agent step (tool calls included).
    pub max_turns: usize,
    /// Spending limit in US dollars over this brain's calls (checked before every call).
    pub budget_usd: Option<f64>,
    /// How answers cut off at their output-token limit are retried.
    pub length: LengthPolicy,
}

/// A role's model seen through the brain: every call is charged to the brain's tally, the
/// stage's [`SpendLog`] and this step's counters.
struct Metered<'a> {
    brain: &'a LlmBrain,
    role: &'a str,
    rm: &'a RoleModel,
    log: &'a SpendLog,
    step: Mutex<(u64, u64, f64)>,
}

impl Metered<'_> {
    fn totals(&self) -> (u64, u64, f64) {
        self.step.lock().map(|s| *s).unwrap_or_default()
    }
}

impl ChatModel for Metered<'_> {
    fn name(&self) -> &str {
        self.rm.model.name()
    }

    fn chat(&self, request: &ChatRequest) -> recloop_llm::Result<recloop_llm::ChatResponse> {
        let r = self.rm.model.chat(request)?;
        let (i, o) = (r.usage.input_tokens, r.usage.output_tokens);
        let model = if r.model.is_empty() {
            self.rm.model.name()
        } else {
            &r.model
        };
        let (prices, source) = match self.rm.price_of(model) {
            Some(p) => (p.prices, p.source.as_str()),
            None => (Prices::FREE, recloop_llm::PRICES_VERSION),
        };
        let usd = (i as f64 * prices.input + o as f64 * prices.output) / 1e6;
        if let Ok(mut s) = self.brain.spent.lock() {
            s.0 += usd;
            s.1 += i;
            s.2 += o;
        }
        if let Ok(mut s) = self.step.lock() {
            s.0 += i;
            s.1 += o;
            s.2 += usd;
        }
        self.log.record(self.role, model, i, o, usd, source);
        Ok(r)
    }
}

impl LlmBrain {
    /// A brain over `model` for every agent role.
    pub fn new(model: Arc<dyn ChatModel>, prices: Prices) -> LlmBrain {
        LlmBrain {
            default: RoleModel::single(model, prices, recloop_llm::PRICES_VERSION),
            roles: BTreeMap::new(),
            spent: Mutex::new((0.0, 0, 0)),
            max_turns: 12,
            budget_usd: None,
            length: LengthPolicy::default(),
        }
    }

    /// The same brain with its own model for `role` (`brainstorm`, `develop`, ...): the
    /// manifest's `[llm.roles]` chain of that role, charged at `prices`.
    pub fn with_role(mut self, role: &str, model: Arc<dyn ChatModel>, prices: Prices) -> LlmBrain {
        self.roles.insert(
            role.to_string(),
            RoleModel::single(model, prices, recloop_llm::PRICES_VERSION),
        );
        self
    }

    /// [`Self::with_role`] for a fallback chain: each call is charged at the prices of the
    /// chain model that answered (the first entry's when none matches).
    pub fn with_role_chain(
        mut self,
        role: &str,
        model: Arc<dyn ChatModel>,
        prices: Vec<ChainPrice>,
    ) -> LlmBrain {
        self.roles
            .insert(role.to_string(), RoleModel { model, prices });
        self
    }

    /// The same brain with a spending limit.
    pub fn with_budget(mut self, budget_usd: Option<f64>) -> LlmBrain {
        self.budget_usd = budget_usd;
        self
    }

    /// The same brain with another length-retry policy (`[llm] max_output_tokens`).
    pub fn with_length_policy(mut self, length: LengthPolicy) -> LlmBrain {
        self.length = length;
        self
    }

    /// The name of the model `role` uses.
    pub fn model_name(&self, role: &str) -> &str {
        self.role_model(role).model.name()
    }

    fn role_model(&self, role: &str) -> &RoleModel {
        self.roles.get(role).unwrap_or(&self.default)
    }

    /// The error class of a failed model call: budgets end the run; an answer cut off even at
    /// the largest output limit or failing its contract after the repair round is an unusable
    /// answer; everything else is a transport failure of this candidate (the router already
    /// retried and fell back).
    fn call_error(agent: &str, e: recloop_llm::LlmError) -> AgentError {
        match e {
            e if e.is_budget() => AgentError::Budget(format!("{agent}: {e}")),
            recloop_llm::LlmError::StructuredOutput { reason, excerpt } => AgentError::Stage {
                class: ErrorClass::LlmAnswer,
                detail: format!(
                    "{agent} answer fails its contract after one repair round: {reason} \
                     (answer starts: {excerpt:?})"
                ),
            },
            e @ recloop_llm::LlmError::Truncated { .. } => AgentError::Stage {
                class: ErrorClass::LlmAnswer,
                detail: format!("{agent}: {e}"),
            },
            e => AgentError::Stage {
                class: ErrorClass::LlmTransport,
                detail: format!("{agent}: {e}"),
            },
        }
    }

    /// Converse with tools until the model answers without tool calls; that answer must satisfy
    /// `contract` (one repair round through `recloop_llm::structured_reply`). Every turn asks
    /// for at most `max_tokens` output tokens; a turn cut off at the limit is asked again with
    /// a larger one and never used. Every model message and tool result is appended to
    /// `messages`, the final answer too.
    #[allow(clippy::too_many_arguments)]
    fn converse_in(
        &self,
        agent: &str,
        messages: &mut Vec<Message>,
        tools: Vec<ToolDefinition>,
        contract: &Schema,
        max_tokens: u32,
        log: &SpendLog,
        call: &dyn Fn(&str, &Value) -> std::result::Result<String, String>,
    ) -> Result<(Value, TrajectoryStep)> {
        let started = Instant::now();
        let input = messages
            .iter()
            .map(|m| m.content.clone())
            .collect::<Vec<_>>()
            .join("\n---\n");
        let mut step = TrajectoryStep {
            agent: agent.into(),
            input,
            tool_calls: vec![],
            output: String::new(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            duration_ms: 0,
        };
        let model = Metered {
            brain: self,
            role: agent,
            rm: self.role_model(agent),
            log,
            step: Mutex::new((0, 0, 0.0)),
        };
        let finish = |step: &mut TrajectoryStep| {
            let (i, o, usd) = model.totals();
            step.tokens_in = i;
            step.tokens_out = o;
            step.cost_usd = usd;
            step.duration_ms = started.elapsed().as_millis() as u64;
        };
        for _ in 0..self.max_turns {
            if let Some(limit) = self.budget_usd {
                let spent = self.spent_usd();
                if spent >= limit {
                    return Err(AgentError::Budget(format!(
                        "{agent}: ${spent:.4} spent of the ${limit:.4} budget"
                    )));
                }
            }
            let mut req = ChatRequest::new(messages.clone()).with_max_tokens(max_tokens);
            req.tools = tools.clone();
            let done = recloop_llm::complete(&model, &req, &self.length)
                .map_err(|e| Self::call_error(agent, e))?;
            if done.response.message.tool_calls.is_empty() {
                let answer = recloop_llm::structured_reply::<Value>(
                    &model,
                    &req,
                    done,
                    contract,
                    &self.length,
                )
                .map_err(|e| Self::call_error(agent, e));
                finish(&mut step);
                let answer = answer?;
                step.output = answer.response.message.content.clone();
                messages.push(answer.response.message);
                return Ok((answer.json, step));
            }
            let calls = done.response.message.tool_calls.clone();
            messages.push(done.response.message);
            for c in calls {
                let result = call(&c.name, &c.arguments);
                step.tool_calls.push(serde_json::json!({
                    "tool": c.name, "arguments": c.arguments,
                    "ok": result.is_ok(),
                    "error": result.as_ref().err(),
                }));
                messages.push(match result {
                    Ok(text) => Message::tool_result(c.id, text),
                    Err(e) => Message::tool_error(c.id, e),
                });
            }
        }
        Err(AgentError::Stage {
            class: ErrorClass::LlmAnswer,
            detail: format!("{agent}: no final answer after {} turns", self.max_turns),
        })
    }
}

/// The harness contract of `agent` compiled for structured output.
fn contract_schema(agent: &str, harness: &crate::harness::Harness) -> Result<Schema> {
    let invalid = |reason: String| AgentError::Invalid {
        path: format!("harness/{agent}/contract.schema.json"),
        reason,
    };
    let raw = harness.contract().map_err(invalid)?;
    let name = raw
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(agent)
        .to_string();
    Schema::compile(&recloop_llm::structured::sanitize_name(&name), &raw)
        .map_err(|e| invalid(e.to_string()))
}

fn read_docs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["README.md", "docs"] {
        let p = dir.join(name);
        if p.is_file() {
            if let Ok(t) = std::fs::read_to_string(&p) {
                out.push_str(&format!(
                    "### {name}\n{}\n",
                    t.chars().take(4000).collect::<String>()
                ));
            }
        } else if p.is_dir()
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.into_iter().take(5) {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    out.push_str(&format!(
                        "### {}\n{}\n",
                        f.display(),
                        t.chars().take(2000).collect::<String>()
                    ));
                }
            }
        }
    }
    out
}

fn read_notes(dir: &Path) -> String {
    let notes = dir.join("notes");
    let Ok(entries) = std::fs::read_dir(&notes) else {
        return String::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .take(10)
        .filter_map(|f| {
            Some(format!(
                "### notes/{}\n{}\n",
                f.file_name()?.to_string_lossy(),
                std::fs::read_to_string(&f)
                    .ok()?
                    .chars()
                    .take(2000)
                    .collect::<String>()
            ))
        })
        .collect()
}

fn defs(list: Vec<(String, String, Value)>) -> Vec<ToolDefinition> {
    list.into_iter()
        .map(|(name, description, parameters)| ToolDefinition {
            name,
            description,
            parameters,
        })
        .collect()
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
}

fn strs_of(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Turn one contract-valid proposal object into a [`Proposal`]; S is recomputed by plain code.
pub fn proposal_from_json(v: &Value, id: String) -> Proposal {
    let sp = v.get("score_parts").cloned().unwrap_or(Value::Null);
    let part = |k: &str| sp.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
    let parts = ScoreParts {
        objective: part("objective"),
        business: part("business"),
        feasibility: part("feasibility"),
        handoff: part("handoff"),
        evidence: part("evidence"),
        risk: part("risk"),
    };
    let evidence = v
        .get("evidence")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .map(|e| EvidenceItem {
                    source: serde_json::from_value(e.get("source").cloned().unwrap_or(Value::Null))
                        .unwrap_or(EvidenceSource::Research),
                    reference: str_of(e, "reference"),
                    summary: str_of(e, "summary"),
                })
                .collect()
        })
        .unwrap_or_default();
    Proposal {
        id,
        title: str_of(v, "title"),
        hypothesis: str_of(v, "hypothesis"),
        mechanism: str_of(v, "mechanism"),
        target_metric: str_of(v, "target_metric"),
        direction: if str_of(v, "direction") == "decrease" {
            Direction::Decrease
        } else {
            Direction::Increase
        },
        location: strs_of(v, "location"),
        required_signals: strs_of(v, "required_signals"),
        risks: strs_of(v, "risks"),
        validation: str_of(v, "validation"),
        maturity: serde_json::from_value(v.get("maturity").cloned().unwrap_or(Value::Null))
            .unwrap_or(Maturity::Backlog),
        kind: serde_json::from_value(v.get("kind").cloned().unwrap_or(Value::Null))
            .unwrap_or(ProposalKind::Explore),
        evidence,
        score_parts: parts,
        score: parts.score(&ScoreWeights::default()),
        change: v.get("change").cloned().unwrap_or(Value::Null),
        stage: str_of(v, "stage"),
        lever: str_of(v, "lever"),
        persona: String::new(),
    }
}

impl Brain for LlmBrain {
    fn name(&self) -> String {
        let mut name = format!("llm:{}", self.default.model.name());
        for (role, rm) in &self.roles {
            name.push_str(&format!(" {role}={}", rm.model.name()));
        }
        name
    }

    fn spent_usd(&self) -> f64 {
        self.spent.lock().map(|s| s.0).unwrap_or(0.0)
    }

    fn brainstorm(&self, input: &BrainstormInput<'_>) -> Result<BrainstormOutput> {
        let m = input.manifest;
        let files = Tools::new(input.workspace, m, None);
        let map: Vec<String> = files
            .list_files("")?
            .into_iter()
            .map(|f| {
                format!(
                    "{f}{}",
                    if m.is_editable(&f) {
                        "  (editable)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let user = format!(
            "# Objective\nprimary: {} ({:?}, min effect {}); north star: {}; guardrails: {}\n\n# Evidence\n{}\n# Workspace files\n{}\n\n# Workspace docs\n{}\n# Research notes\n{}\n\nPropose {} proposals as one JSON object.{}",
            m.metrics.primary.name,
            m.metrics.primary.direction,
            m.metrics.primary.min_effect,
            m.metrics
                .north_star
                .as_ref()
                .map_or("none".into(), |n| n.name.clone()),
            m.metrics
                .guardrails
                .iter()
                .map(|g| g.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            input.evidence,
            map.join("\n"),
            read_docs(input.workspace),
            read_notes(input.workspace),
            input.batch_size,
            m.run.quotas.map_or(String::new(), |q| format!(
                " Their `kind`s: {} exploit, {} explore, {} novel (admission rejects a proposal past its kind's quota).",
                q.exploit, q.explore, q.novel
            ))
        );
        // a persona adds its instructions and scope, and answers on its own model role
        let (system, role) = match input.persona {
            Some(p) => (
                format!(
                    "{}\n\n# Persona: {}\n{}\nEvery proposal's `lever` must start with one of {:?}; admission rejects any other.{}",
                    input.harness.system_prompt(),
                    p.name,
                    p.instructions,
                    p.levers,
                    p.proxy.as_ref().map_or(String::new(), |x| format!(
                        " Your candidates are judged offline by {} ({:?}, min effect {}), with the primary at most {} worse than production.",
                        x.name, x.direction, x.min_effect, p.primary_tolerance
                    ))
                ),
                p.name.as_str(),
            ),
            None => (input.harness.system_prompt(), "brainstorm"),
        };
        let messages = vec![Message::system(system), Message::user(user)];
        let mut offered: Vec<(String, String, Value)> = Tools::definitions()
            .into_iter()
            .filter(|(n, _, _)| {
                n == "list_files" || n == "read_file" || n == "search_files" || n == "query_schema"
            })
            .collect();
        if input.analysis.is_some() {
            // a persona gets the analysis tools it lists; the generalist gets them all
            offered.extend(
                crate::analysis::Analysis::definitions()
                    .into_iter()
                    .filter(|(n, _, _)| input.persona.is_none_or(|p| p.tools.contains(n))),
            );
        }
        // compute_eval and compute_loss need the built-in recommender; a persona gets the ones
        // it lists, the generalist both
        let offline_tools = OfflineTools::for_workspace(input.workspace);
        if offline_tools.is_some() {
            offered.extend(
                OfflineTools::definitions()
                    .into_iter()
                    .filter(|(n, _, _)| input.persona.is_none_or(|p| p.tools.contains(n))),
            );
        }
        let offered_names: Vec<String> = offered.iter().map(|(n, _, _)| n.clone()).collect();
        let tools = defs(offered);
        // An unusable answer (cut off, or failing the contract after the repair round) is a
        // failure of the model (recorded as `stage_failed`), not a rejected idea: nothing
        // enters the avoid set.
        let contract = contract_schema("brainstorm", input.harness)?;
        let max_tokens = recloop_llm::output_tokens_for(contract.raw(), input.batch_size);
        let mut messages = messages;
        let (answer, trajectory) = self.converse_in(
            role,
            &mut messages,
            tools,
            &contract,
            max_tokens,
            input.spend,
            &|name, args| {
                if !offered_names.iter().any(|n| n == name) {
                    return Err(format!(
                        "tool {name:?} is not offered here (offered: {})",
                        offered_names.join(", ")
                    ));
                }
                if let Some(answer) = offline_tools.as_ref().and_then(|t| t.call(name, args)) {
                    return answer;
                }
                input
                    .analysis
                    .and_then(|a| a.call(name, args))
                    .unwrap_or_else(|| files.call(name, args))
            },
        )?;
        let prefix = input.id_prefix;
        let mut proposals: Vec<Proposal> = answer
            .get("proposals")
            .and_then(|p| p.as_array())
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, v)| proposal_from_json(v, format!("{prefix}-{:02}", i + 1)))
                    .collect()
            })
            .unwrap_or_default();
        proposals.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        Ok(BrainstormOutput {
            proposals,
            rejected: vec![],
            trajectory,
        })
    }

    fn develop(&self, input: &DevelopInput<'_>) -> Result<DevelopOutput> {
        let earlier = input
            .transcript
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        let mut messages = match (input.repair, earlier.is_empty()) {
            // a repair round continues the conversation: the model sees what it tried
            (Some(r), false) => {
                let mut m = earlier;
                m.push(Message::user(format!(
                    "# The gates checked your change\n{r}\n\nRepair it with the tools, then answer with the JSON object again."
                )));
                m
            }
            _ => {
                let proposal = serde_json::to_string_pretty(input.proposal).unwrap_or_default();
                let mut user = format!(
                    "# Proposal to implement\n```json\n{proposal}\n```\n\n{}",
                    input.context
                );
                if let Some(r) = input.repair {
                    user.push_str(&format!("\n# Repair instructions\n{r}\n"));
                }
                vec![
                    Message::system(input.harness.system_prompt()),
                    Message::user(user),
                ]
            }
        };
        let tools = defs(Tools::definitions());
        let t = input.tools;
        let contract = contract_schema("develop", input.harness)?;
        let max_tokens = recloop_llm::output_tokens_for(contract.raw(), 1) + DIFF_TOKENS;
        let result = self.converse_in(
            "develop",
            &mut messages,
            tools,
            &contract,
            max_tokens,
            input.spend,
            &|name, args| t.call(name, args),
        );
        if let Ok(mut transcript) = input.transcript.lock() {
            *transcript = messages;
        }
        let (answer, trajectory) = result?;
        let files_changed = strs_of(&answer, "files_changed");
        let hallucinated = files_changed
            .iter()
            .filter(|f| !input.worktree.join(f).exists())
            .count() as u32;
        Ok(DevelopOutput {
            summary: str_of(&answer, "summary"),
            files_changed,
            hallucinated_fields: hallucinated,
            trajectory,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use recloop_llm::{ScriptedModel, ScriptedTurn};

    #[test]
    fn a_fallback_model_is_charged_at_its_own_prices() {
        // the chain's second model answered (its provider reports a dated name)
        let model: Arc<dyn ChatModel> = Arc::new(ScriptedModel::named(
            "claude-haiku-4-5-20251001",
            [ScriptedTurn::text("a")],
        ));
        let chain = vec![
            ChainPrice {
                model: "gpt-4o-mini".into(),
                prices: Prices {
                    input: 0.15,
                    output: 0.6,
                },
                source: recloop_llm::PRICES_VERSION.into(),
            },
            ChainPrice {
                model: "claude-haiku-4-5".into(),
                prices: Prices {
                    input: 1.0,
                    output: 5.0,
                },
                source: "recloop.toml".into(),
            },
        ];
        let brain =
            LlmBrain::new(model.clone(), Prices::FREE).with_role_chain("develop", model, chain);
        let log = SpendLog::new();
        let metered = Metered {
            brain: &brain,
            role: "develop",
            rm: brain.role_model("develop"),
            log: &log,
            step: Mutex::new((0, 0, 0.0)),
        };
        let r = metered.chat(&ChatRequest::simple(None, "hi")).unwrap();
        let spent = log.take();
        assert_eq!(spent.len(), 1);
        assert_eq!(spent[0].agent, "develop");
        assert_eq!(spent[0].model, "claude-haiku-4-5-20251001");
        assert_eq!(spent[0].price_table_version, "recloop.toml");
        let expected =
            (r.usage.input_tokens as f64 * 1.0 + r.usage.output_tokens as f64 * 5.0) / 1e6;
        assert!((spent[0].usd - expected).abs() < 1e-12, "{spent:?}");
        assert!((brain.spent_usd() - expected).abs() < 1e-12);
        assert!(log.take().is_empty(), "taking empties the log");
    }
}
