//! Retries with exponential backoff and seeded jitter, honouring `Retry-After`.

use crate::clock::{Clock, SystemClock};
use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, StreamEvent};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Cap of the exponential backoff.
    pub max_delay: Duration,
    /// Longest `Retry-After` we agree to wait; a server asking for more fails the call.
    pub max_retry_after: Duration,
    /// Seed of the jitter generator (same seed, same delays).
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            seed: 0x5eed,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Backoff before retry number `retry` (0-based): `min(max, base·2^retry)` scaled by a
    /// jitter factor drawn uniformly from [0.5, 1).
    pub fn backoff(&self, retry: u32, rng: &mut Pcg64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_delay);
        exp.mul_f64(rng.random_range(0.5..1.0))
    }
}

/// Retries a model's transient failures (see [`LlmError::is_retryable`]).
///
/// A streamed call is retried only when it failed before delivering any event.
pub struct Retrying<M> {
    inner: M,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    rng: Mutex<Pcg64>,
}

impl<M: ChatModel> Retrying<M> {
    /// Wrap `inner` with `policy`, sleeping on the real clock.
    pub fn new(inner: M, policy: RetryPolicy) -> Retrying<M> {
        Retrying::with_clock(inner, policy, Arc::new(SystemClock))
    }

    /// Wrap `inner` with `policy`, sleeping on `clock`.
    pub fn with_clock(inner: M, policy: RetryPolicy, clock: Arc<dyn Clock>) -> Retrying<M> {
        let rng = Mutex::new(Pcg64::seed_from_u64(policy.seed));
        Retrying {
            inner,
            policy,
            clock,
            rng,
        }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Decide the wait before the next attempt, or `None` to give up.
    fn wait_before_retry(&self, error: &LlmError, retry: u32) -> Option<Duration> {
        if !error.is_retryable() || retry >= self.policy.max_retries {
            return None;
        }
        if let Some(after) = error.retry_after() {
            if after > self.policy.max_retry_after {
                tracing::warn!(
                    model = self.inner.name(),
                    ?after,
                    "server asks to wait longer than allowed; giving up"
                );
                return None;
            }
            return Some(after);
        }
        let mut rng = self.rng.lock().ok()?;
        Some(self.policy.backoff(retry, &mut rng))
    }

    fn attempt_loop(
        &self,
        mut attempt: impl FnMut() -> (Result<ChatResponse>, bool),
    ) -> Result<ChatResponse> {
        let mut retry = 0;
        loop {
            let (result, retryable_stage) = attempt();
            match result {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let wait = if retryable_stage {
                        self.wait_before_retry(&e, retry)
                    } else {
                        None
                    };
                    match wait {
                        Some(d) => {
                            tracing::warn!(model = self.inner.name(), error = %e, retry = retry + 1, wait_ms = d.as_millis() as u64, "retrying");
                            self.clock.sleep(d);
                            retry += 1;
                        }
                        None => return Err(e),
                    }
                }
            }
        }
    }
}

impl<M: ChatModel> ChatModel for Retrying<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.attempt_loop(|| (self.inner.chat(request), true))
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        self.attempt_loop(|| {
            let mut delivered = false;
            let r = self.inner.chat_stream(request, &mut |ev| {
                delivered = true;
                on_event(ev)
            });
            (r, !delivered)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::scripted::{ScriptedModel, ScriptedTurn};

    #[test]
    fn retries_transient_errors_with_growing_seeded_backoff() {
        let clock = ManualClock::shared();
        let policy = RetryPolicy::default();
        let m = Retrying::with_clock(
            ScriptedModel::new([
                ScriptedTurn::error(500, "boom"),
                ScriptedTurn::error(429, "slow"),
                ScriptedTurn::error(503, "busy"),
                ScriptedTurn::text("ok"),
            ]),
            policy.clone(),
            clock.clone(),
        );
        assert_eq!(
            m.chat(&ChatRequest::simple(None, "x")).unwrap().text(),
            "ok"
        );
        let sleeps = clock.sleeps();
        assert_eq!(sleeps.len(), 3);
        for (i, s) in sleeps.iter().enumerate() {
            let cap = policy.base_delay * 2u32.pow(i as u32);
            assert!(*s >= cap / 2 && *s < cap, "retry {i}: {s:?} vs cap {cap:?}");
        }
        // Same seed, same delays.
        let clock2 = ManualClock::shared();
        let m2 = Retrying::with_clock(
            ScriptedModel::new([
                ScriptedTurn::error(500, "boom"),
                ScriptedTurn::error(429, "slow"),
                ScriptedTurn::error(503, "busy"),
                ScriptedTurn::text("ok"),
            ]),
            policy,
            clock2.clone(),
        );
        m2.chat(&ChatRequest::simple(None, "x")).unwrap();
        assert_eq!(clock2.sleeps(), sleeps);
    }

    #[test]
    fn gives_up_after_max_retries_and_never_retries_client_errors() {
        let clock = ManualClock::shared();
        let policy = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let m = Retrying::with_clock(
            ScriptedModel::new((0..5).map(|_| ScriptedTurn::error(502, "down"))),
            policy.clone(),
            clock.clone(),
        );
        let err = m.chat(&ChatRequest::simple(None, "x")).unwrap_err();
        assert!(matches!(err, LlmError::Server { status: 502, .. }));
        assert_eq!(m.inner().requests().len(), 3);

        let m = Retrying::with_clock(
            ScriptedModel::new([ScriptedTurn::error(401, "bad key"), ScriptedTurn::text("x")]),
            policy,
            clock,
        );
        assert!(matches!(
            m.chat(&ChatRequest::simple(None, "x")).unwrap_err(),
            LlmError::Unauthorized { .. }
        ));
        assert_eq!(m.inner().requests().len(), 1);
    }
}
