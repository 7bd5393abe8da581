//! Circuit breaker: after N consecutive transient failures, stop calling for a cooldown and fail
//! fast; after the cooldown one trial call decides whether to close again.

use crate::clock::{Clock, SystemClock};
use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, StreamEvent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a trial call.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct BreakerInner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// Breaker state, shareable between several wrappers of the same endpoint (e.g. two roles using
/// one model).
pub struct BreakerState {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<BreakerInner>,
}

/// What the breaker currently does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerStatus {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// Cooldown over: the next call is a trial.
    HalfOpen,
}

impl std::fmt::Debug for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerState")
            .field("config", &self.config)
            .field("inner", &self.inner)
            .finish()
    }
}

impl BreakerState {
    /// New closed breaker on the real clock.
    pub fn new(config: BreakerConfig) -> Arc<BreakerState> {
        BreakerState::with_clock(config, Arc::new(SystemClock))
    }

    /// New closed breaker on `clock`.
    pub fn with_clock(config: BreakerConfig, clock: Arc<dyn Clock>) -> Arc<BreakerState> {
        Arc::new(BreakerState {
            config,
            clock,
            inner: Mutex::new(BreakerInner::default()),
        })
    }

    /// Current status.
    pub fn status(&self) -> BreakerStatus {
        let now = self.clock.now();
        match self.inner.lock().ok().and_then(|s| s.open_until) {
            None => BreakerStatus::Closed,
            Some(t) if now < t => BreakerStatus::Open,
            Some(_) => BreakerStatus::HalfOpen,
        }
    }

    fn admit(&self, model: &str) -> Result<()> {
        let now = self.clock.now();
        let s = self
            .inner
            .lock()
            .map_err(|_| LlmError::Local("breaker state poisoned".into()))?;
        if let Some(until) = s.open_until
            && now < until
        {
            return Err(LlmError::CircuitOpen {
                model: model.to_string(),
                failures: s.consecutive_failures,
                remaining: until - now,
            });
        }
        Ok(())
    }

    fn record(&self, outcome: &Result<ChatResponse>) {
        let now = self.clock.now();
        let Ok(mut s) = self.inner.lock() else { return };
        match outcome {
            Ok(_) => {
                s.consecutive_failures = 0;
                s.open_until = None;
            }
            Err(e) if e.is_retryable() => {
                s.consecutive_failures += 1;
                let half_open = s.open_until.is_some();
                if half_open || s.consecutive_failures >= self.config.failure_threshold {
                    s.open_until = Some(now + self.config.cooldown);
                }
            }
            // Client errors and budget refusals say nothing about the endpoint's health.
            Err(_) => {}
        }
    }
}

/// A model behind a circuit breaker.
pub struct CircuitBreaker<M> {
    inner: M,
    state: Arc<BreakerState>,
}

impl<M: ChatModel> CircuitBreaker<M> {
    /// Wrap `inner`, sharing `state`.
    pub fn new(inner: M, state: Arc<BreakerState>) -> CircuitBreaker<M> {
        CircuitBreaker { inner, state }
    }

    /// The breaker state.
    pub fn state(&self) -> &Arc<BreakerState> {
        &self.state
    }
}

impl<M: ChatModel> ChatModel for CircuitBreaker<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.state.admit(self.inner.name())?;
        let r = self.inner.chat(request);
        self.state.record(&r);
        r
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        self.state.admit(self.inner.name())?;
        let r = self.inner.chat_stream(request, on_event);
        self.state.record(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::scripted::{ScriptedModel, ScriptedTurn};

    #[test]
    fn opens_after_threshold_fails_fast_then_half_opens() {
        let clock = ManualClock::shared();
        let state = BreakerState::with_clock(
            BreakerConfig {
                failure_threshold: 3,
                cooldown: Duration::from_secs(10),
            },
            clock.clone(),
        );
        let m = CircuitBreaker::new(
            ScriptedModel::new([
                ScriptedTurn::error(500, "a"),
                ScriptedTurn::error(500, "b"),
                ScriptedTurn::error(500, "c"),
                ScriptedTurn::error(500, "trial fails"),
                ScriptedTurn::text("recovered"),
            ]),
            state.clone(),
        );
        let req = ChatRequest::simple(None, "x");
        for _ in 0..3 {
            assert!(matches!(m.chat(&req).unwrap_err(), LlmError::Server { .. }));
        }
        assert_eq!(state.status(), BreakerStatus::Open);
        let err = m.chat(&req).unwrap_err();
        assert!(
            matches!(err, LlmError::CircuitOpen { failures: 3, .. }),
            "{err}"
        );
        assert_eq!(m.inner.requests().len(), 3, "open circuit must not call");
        clock.advance(Duration::from_secs(11));
        assert_eq!(state.status(), BreakerStatus::HalfOpen);
        // Failed trial re-opens immediately.
        assert!(matches!(m.chat(&req).unwrap_err(), LlmError::Server { .. }));
        assert_eq!(state.status(), BreakerStatus::Open);
        clock.advance(Duration::from_secs(11));
        assert_eq!(m.chat(&req).unwrap().text(), "recovered");
        assert_eq!(state.status(), BreakerStatus::Closed);
    }

    #[test]
    fn client_errors_do_not_trip() {
        let state = BreakerState::with_clock(
            BreakerConfig {
                failure_threshold: 1,
                cooldown: Duration::from_secs(10),
            },
            ManualClock::shared(),
        );
        let m = CircuitBreaker::new(
            ScriptedModel::new([ScriptedTurn::error(400, "bad"), ScriptedTurn::text("ok")]),
            state.clone(),
        );
        let req = ChatRequest::simple(None, "x");
        assert!(m.chat(&req).is_err());
        assert_eq!(state.status(), BreakerStatus::Closed);
        assert!(m.chat(&req).is_ok());
    }
}
