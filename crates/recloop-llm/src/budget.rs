//! Budgets that bind: tokens, US dollars and wall-clock seconds, per run and per agent role.
//!
//! Before each call the ledger estimates the call's worst case and refuses it when it could
//! exceed a budget:
//!
//! * input tokens ≈ characters of the serialized messages, tools and schema / 4 (rounded up);
//! * output tokens = the request's `max_tokens` (or [`crate::DEFAULT_MAX_TOKENS`]): the most the
//!   call can generate;
//! * dollars = those tokens at the model's list price ([`crate::prices`]); unknown models cost 0
//!   and are listed in [`SpendReport::unpriced_models`];
//! * seconds: the run's wall clock since the ledger was created, and per role the summed
//!   duration of that role's calls; a call is refused once the limit is reached (a call's
//!   duration is not known in advance).
//!
//! After the call the provider's reported usage is recorded (or the estimate when a server
//! reports none).

use crate::clock::{Clock, SystemClock};
use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::prices::{PRICES_VERSION, cost_usd};
use crate::scripted::estimate_text_tokens;
use crate::types::{ChatRequest, ChatResponse, StreamEvent, Usage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits of one scope; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetLimits {
    /// US dollars.
    pub usd: Option<f64>,
    /// Input + output tokens.
    pub tokens: Option<u64>,
    /// Wall-clock seconds.
    pub seconds: Option<f64>,
}

/// What a scope has spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// US dollars at [`PRICES_VERSION`] prices.
    pub usd: f64,
    /// Seconds spent inside model calls.
    pub seconds: f64,
    /// Calls made.
    pub calls: u64,
}

impl Spend {
    /// Input plus output tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A snapshot of all spending, ready to be journaled as a `budget spent` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendReport {
    /// Version of the price table the dollar figures use.
    pub prices_version: String,
    /// The whole run.
    pub run: Spend,
    /// Wall-clock seconds since the run (ledger) started.
    pub run_elapsed_seconds: f64,
    /// Per agent role.
    pub roles: BTreeMap<String, Spend>,
    /// Models without a price (counted as 0 USD).
    pub unpriced_models: Vec<String>,
    /// Limits of the run.
    pub run_limits: BudgetLimits,
    /// Limits per role.
    pub role_limits: BTreeMap<String, BudgetLimits>,
}

/// The cost of one recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallCost {
    /// Tokens recorded.
    pub usage: Usage,
    /// Dollars recorded.
    pub usd: f64,
    /// False when the model has no price (cost counted as 0).
    pub priced: bool,
    /// Duration of the call.
    pub seconds: f64,
}

/// The worst-case estimate of a call (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallEstimate {
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Maximum output tokens.
    pub output_tokens: u64,
    /// Worst-case dollars.
    pub usd: f64,
}

/// Estimate the worst case of `request` on `model`.
pub fn estimate_call(model: &str, request: &ChatRequest) -> CallEstimate {
    let mut chars = String::new();
    chars.push_str(&serde_json::to_string(&request.messages).unwrap_or_default());
    if !request.tools.is_empty() {
        chars.push_str(&serde_json::to_string(&request.tools).unwrap_or_default());
    }
    if let Some(f) = &request.response_format {
        chars.push_str(&f.schema.to_string());
    }
    let input_tokens = estimate_text_tokens(&chars);
    let output_tokens = u64::from(request.max_tokens_or_default());
    let (usd, _) = cost_usd(model, input_tokens, output_tokens);
    CallEstimate {
        input_tokens,
        output_tokens,
        usd,
    }
}

#[derive(Debug, Default)]
struct LedgerState {
    run: Spend,
    roles: BTreeMap<String, Spend>,
    role_limits: BTreeMap<String, BudgetLimits>,
    unpriced: BTreeSet<String>,
}

/// Shared spending record of a run; every [`Budgeted`] model of the run points at one ledger.
pub struct BudgetLedger {
    clock: Arc<dyn Clock>,
    started: Instant,
    run_limits: BudgetLimits,
    state: Mutex<LedgerState>,
}

fn exhausted(which: &str, scope: &str, limit: f64, spent: f64) -> LlmError {
    LlmError::BudgetExhausted {
        which: which.to_string(),
        scope: scope.to_string(),
        limit,
        spent,
    }
}

impl BudgetLedger {
    /// A ledger with run limits, on the real clock; the run's wall clock starts now.
    pub fn new(run_limits: BudgetLimits) -> Arc<BudgetLedger> {
        BudgetLedger::with_clock(run_limits, Arc::new(SystemClock))
    }

    /// A ledger with run limits on `clock`.
    pub fn with_clock(run_limits: BudgetLimits, clock: Arc<dyn Clock>) -> Arc<BudgetLedger> {
        let started = clock.now();
        Arc::new(BudgetLedger {
            clock,
            started,
            run_limits,
            state: Mutex::new(LedgerState::default()),
        })
    }

    /// An unlimited ledger (still records spending).
    pub fn unlimited() -> Arc<BudgetLedger> {
        BudgetLedger::new(BudgetLimits::default())
    }

    /// Set the limits of one role.
    pub fn set_role_limits(&self, role: &str, limits: BudgetLimits) {
        if let Ok(mut s) = self.state.lock() {
            s.role_limits.insert(role.to_string(), limits);
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LedgerState>> {
        self.state
            .lock()
            .map_err(|_| LlmError::Local("budget ledger poisoned".into()))
    }

    /// Refuse (with [`LlmError::BudgetExhausted`]) a call of `role` on `model` that could exceed
    /// the run's or the role's budget; otherwise return its estimate.
    pub fn check(&self, role: &str, model: &str, request: &ChatRequest) -> Result<CallEstimate> {
        let est = estimate_call(model, request);
        let state = self.lock()?;
        let elapsed = self.clock.now().saturating_duration_since(self.started);
        let role_spend = state.roles.get(role).cloned().unwrap_or_default();
        let role_limits = state.role_limits.get(role).copied().unwrap_or_default();
        let scopes = [
            ("run", &state.run, self.run_limits, elapsed.as_secs_f64()),
            (role, &role_spend, role_limits, role_spend.seconds),
        ];
        for (scope, spent, limits, seconds) in scopes {
            if let Some(limit) = limits.tokens
                && spent.tokens() + est.input_tokens + est.output_tokens > limit
            {
                return Err(exhausted(
                    "tokens",
                    scope,
                    limit as f64,
                    spent.tokens() as f64,
                ));
            }
            if let Some(limit) = limits.usd
                && spent.usd + est.usd > limit
            {
                return Err(exhausted("usd", scope, limit, spent.usd));
            }
            if let Some(limit) = limits.seconds
                && seconds >= limit
            {
                return Err(exhausted("seconds", scope, limit, seconds));
            }
        }
        Ok(est)
    }

    /// Record a finished call.
    pub fn record(&self, role: &str, model: &str, usage: Usage, duration: Duration) -> CallCost {
        let (usd, priced) = cost_usd(model, usage.input_tokens, usage.output_tokens);
        let seconds = duration.as_secs_f64();
        if let Ok(mut state) = self.state.lock() {
            if !priced {
                state.unpriced.insert(model.to_string());
            }
            let role_spend = state.roles.entry(role.to_string()).or_default();
            role_spend.input_tokens += usage.input_tokens;
            role_spend.output_tokens += usage.output_tokens;
            role_spend.usd += usd;
            role_spend.seconds += seconds;
            role_spend.calls += 1;
            let run = &mut state.run;
            run.input_tokens += usage.input_tokens;
            run.output_tokens += usage.output_tokens;
            run.usd += usd;
            run.seconds += seconds;
            run.calls += 1;
        }
        CallCost {
            usage,
            usd,
            priced,
            seconds,
        }
    }

    /// Everything spent so far.
    pub fn report(&self) -> SpendReport {
        let elapsed = self.clock.now().saturating_duration_since(self.started);
        let state = self.state.lock();
        let (run, roles, unpriced, role_limits) = match &state {
            Ok(s) => (
                s.run.clone(),
                s.roles.clone(),
                s.unpriced.iter().cloned().collect(),
                s.role_limits.clone(),
            ),
            Err(_) => Default::default(),
        };
        SpendReport {
            prices_version: PRICES_VERSION.to_string(),
            run,
            run_elapsed_seconds: elapsed.as_secs_f64(),
            roles,
            unpriced_models: unpriced,
            run_limits: self.run_limits,
            role_limits,
        }
    }
}

/// A model whose calls are checked against and recorded in a [`BudgetLedger`] under a role.
pub struct Budgeted<M> {
    inner: M,
    ledger: Arc<BudgetLedger>,
    role: String,
    clock: Arc<dyn Clock>,
}

impl<M: ChatModel> Budgeted<M> {
    /// Charge `inner`'s calls to `role` in `ledger`.
    pub fn new(inner: M, ledger: Arc<BudgetLedger>, role: &str) -> Budgeted<M> {
        let clock = ledger.clock.clone();
        Budgeted {
            inner,
            ledger,
            role: role.to_string(),
            clock,
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<BudgetLedger> {
        &self.ledger
    }

    fn settle(
        &self,
        est: CallEstimate,
        started: Instant,
        result: Result<ChatResponse>,
    ) -> Result<ChatResponse> {
        let duration = self.clock.now().saturating_duration_since(started);
        match result {
            Ok(r) => {
                let mut usage = r.usage;
                if usage.total() == 0 {
                    usage = Usage {
                        input_tokens: est.input_tokens,
                        output_tokens: estimate_text_tokens(&r.message.content)
                            + estimate_text_tokens(
                                &serde_json::to_string(&r.message.tool_calls).unwrap_or_default(),
                            ),
                    };
                }
                self.ledger
                    .record(&self.role, self.inner.name(), usage, duration);
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }
}

impl<M: ChatModel> ChatModel for Budgeted<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let est = self.ledger.check(&self.role, self.inner.name(), request)?;
        let started = self.clock.now();
        let r = self.inner.chat(request);
        self.settle(est, started, r)
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        let est = self.ledger.check(&self.role, self.inner.name(), request)?;
        let started = self.clock.now();
        let r = self.inner.chat_stream(request, on_event);
        self.settle(est, started, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::scripted::{ScriptedModel, ScriptedTurn};

    #[test]
    fn token_budget_refuses_the_call_that_could_exceed_it() {
        let ledger = BudgetLedger::with_clock(
            BudgetLimits {
                tokens: Some(300),
                ..Default::default()
            },
            ManualClock::shared(),
        );
        let model = Budgeted::new(
            ScriptedModel::new([ScriptedTurn::text("a"), ScriptedTurn::text("b")]),
            ledger.clone(),
            "brainstorm",
        );
        let req = ChatRequest::simple(None, "hello").with_max_tokens(100);
        model.chat(&req).unwrap();
        let spent = ledger.report().run.tokens();
        assert!(spent > 0 && spent < 100, "{spent}");
        let big = ChatRequest::simple(None, "hello").with_max_tokens(290);
        let err = model.chat(&big).unwrap_err();
        match &err {
            LlmError::BudgetExhausted {
                which,
                scope,
                limit,
                spent: s,
            } => {
                assert_eq!((which.as_str(), scope.as_str()), ("tokens", "run"));
                assert_eq!(*limit, 300.0);
                assert_eq!(*s, spent as f64);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("tokens budget of run"), "{err}");
        assert_eq!(model.inner.requests().len(), 1, "refused call was not made");
    }

    #[test]
    fn usd_budget_per_role_and_unpriced_models() {
        let ledger = BudgetLedger::with_clock(BudgetLimits::default(), ManualClock::shared());
        ledger.set_role_limits(
            "develop",
            BudgetLimits {
                usd: Some(0.01),
                ..Default::default()
            },
        );
        let priced = Budgeted::new(
            ScriptedModel::named("gpt-4o", (0..3).map(|_| ScriptedTurn::text("ok"))),
            ledger.clone(),
            "develop",
        );
        // gpt-4o: $10/Mtok output. Worst case of 990 output tokens ≈ $0.0099 (+ a few input
        // tokens) fits the $0.01 budget once; after the first call's real spend it no longer does.
        let req = ChatRequest::simple(None, "hi").with_max_tokens(990);
        priced.chat(&req).unwrap();
        let err = priced.chat(&req).unwrap_err();
        assert!(
            matches!(&err, LlmError::BudgetExhausted { which, scope, .. } if which == "usd" && scope == "develop"),
            "{err}"
        );
        // Another role is not limited by develop's budget.
        let free = Budgeted::new(
            ScriptedModel::named("my-local-llama", [ScriptedTurn::text("ok")]),
            ledger.clone(),
            "brainstorm",
        );
        free.chat(&req).unwrap();
        let report = ledger.report();
        assert_eq!(report.unpriced_models, vec!["my-local-llama".to_string()]);
        assert_eq!(report.roles["brainstorm"].usd, 0.0);
        assert!(report.roles["develop"].usd > 0.0);
        assert_eq!(report.run.calls, 2);
        assert_eq!(report.prices_version, PRICES_VERSION);
    }

    #[test]
    fn wall_clock_budget_stops_the_run() {
        let clock = ManualClock::shared();
        let ledger = BudgetLedger::with_clock(
            BudgetLimits {
                seconds: Some(60.0),
                ..Default::default()
            },
            clock.clone(),
        );
        let m = Budgeted::new(
            ScriptedModel::new([ScriptedTurn::text("a"), ScriptedTurn::text("b")]),
            ledger,
            "evaluate",
        );
        let req = ChatRequest::simple(None, "x");
        m.chat(&req).unwrap();
        clock.advance(Duration::from_secs(61));
        let err = m.chat(&req).unwrap_err();
        assert!(
            matches!(&err, LlmError::BudgetExhausted { which, scope, .. } if which == "seconds" && scope == "run"),
            "{err}"
        );
    }
}
