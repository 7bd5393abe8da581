//! Typed errors of the language-model layer.

use std::path::PathBuf;
use std::time::Duration;

/// Result with [`LlmError`].
pub type Result<T, E = LlmError> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Configuration is missing or wrong (manifest field, option, environment).
    #[error("llm configuration: {field}: {reason}")]
    Config {
        /// The field or option at fault, e.g. `llm.provider`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The environment variable that should hold the API key is unset or empty.
    #[error(
        "API key missing: environment variable {var} is not set (keys are read only from the environment)"
    )]
    MissingKey {
        /// Name of the variable.
        var: String,
    },
    /// The provider rejected the key (HTTP 401/403). Not retried.
    #[error("{provider}: authentication failed (HTTP {status}): {message}")]
    Unauthorized {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// HTTP 429. Retried, honouring `Retry-After`.
    #[error("{provider}: rate limited (HTTP 429){}: {message}", retry_hint(*retry_after))]
    RateLimited {
        /// Provider name.
        provider: String,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
        /// Provider's message.
        message: String,
    },
    /// HTTP 5xx (and Anthropic's 529 "overloaded"). Retried.
    #[error("{provider}: server error (HTTP {status}){}: {message}", retry_hint(*retry_after))]
    Server {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
        /// Provider's message.
        message: String,
    },
    /// Any other HTTP 4xx: the request itself is wrong. Not retried.
    #[error("{provider}: request rejected (HTTP {status}): {message}")]
    BadRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// No complete answer within the time limit. Retried.
    #[error("{provider}: no answer within {after:?}")]
    Timeout {
        /// Provider name.
        provider: String,
        /// The limit that expired.
        after: Duration,
    },
    /// Connection refused, reset, DNS failure... Retried.
    #[error("{provider}: connection failed: {message}")]
    Transport {
        /// Provider name.
        provider: String,
        /// What happened.
        message: String,
    },
    /// The provider answered 2xx with a body we cannot understand. Retried once per policy.
    #[error("{provider}: malformed response: {detail} (body starts: {excerpt:?})")]
    MalformedResponse {
        /// Provider name.
        provider: String,
        /// What was wrong.
        detail: String,
        /// First characters of the body.
        excerpt: String,
    },
    /// The circuit breaker is open after repeated failures: failing fast without calling.
    #[error("{model}: circuit open after {failures} consecutive failures; retry in {remaining:?}")]
    CircuitOpen {
        /// Model behind the breaker.
        model: String,
        /// Consecutive failures that opened it.
        failures: u32,
        /// Time until a trial call is allowed.
        remaining: Duration,
    },
    /// The call was not made because it could exceed a budget.
    #[error(
        "budget exhausted: the {which} budget of {scope} ({limit}) would be exceeded; spent {spent} so far"
    )]
    BudgetExhausted {
        /// `usd`, `tokens` or `seconds`.
        which: String,
        /// `run` or the agent role, e.g. `brainstorm`.
        scope: String,
        /// The limit.
        limit: f64,
        /// Spent before this call.
        spent: f64,
    },
    /// The answer is not valid JSON for the requested schema, even after one repair round.
    #[error("structured output invalid after repair: {reason} (answer starts: {excerpt:?})")]
    StructuredOutput {
        /// Parse or validation error of the last answer.
        reason: String,
        /// First characters of the last answer.
        excerpt: String,
    },
    /// The answer stopped at its output-token limit, even after retries with larger limits.
    /// A cut-off answer is never parsed.
    #[error(
        "{model}: answer cut off at the output-token limit ({max_tokens} tokens) after {attempts} attempts; \
         raise [llm] max_output_tokens or ask for a smaller answer"
    )]
    Truncated {
        /// Model that answered.
        model: String,
        /// The largest limit tried.
        max_tokens: u32,
        /// Calls made (first call plus retries).
        attempts: u32,
        /// Tokens the cut-off calls used (they are spent although nothing came of them).
        usage: crate::Usage,
    },
    /// The JSON Schema itself is invalid.
    #[error("invalid JSON Schema {name}: {reason}")]
    InvalidSchema {
        /// Schema or tool name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Replay mode met a request that no cassette holds.
    #[error(
        "replay: no cassette for request {method} {url} (looked for {expected}); body: {body}\nrecord it with RECLOOP_LLM=record"
    )]
    Unrecorded {
        /// HTTP method.
        method: String,
        /// URL (without credentials).
        url: String,
        /// Cassette file that would hold it.
        expected: PathBuf,
        /// Request body (secrets scrubbed, truncated).
        body: String,
    },
    /// A cassette could not be read or written.
    #[error("cassette {path}: {reason}")]
    Cassette {
        /// The cassette file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Refused to write a cassette because it would contain a secret.
    #[error("refusing to write cassette {path}: it would contain the API key from {var}")]
    SecretInCassette {
        /// The cassette file.
        path: PathBuf,
        /// Variable whose value was found.
        var: String,
    },
    /// All models of a fallback chain failed.
    #[error("all models failed: {}", summary.join("; "))]
    AllModelsFailed {
        /// `model: error` per attempted model.
        summary: Vec<String>,
    },
    /// The scripted model has no turn left.
    #[error("scripted model: no scripted turn left (call {call} of {available})")]
    ScriptExhausted {
        /// 1-based number of the call that found the queue empty.
        call: usize,
        /// Turns the script had.
        available: usize,
    },
    /// The tool loop hit its turn limit while the model still wanted tools.
    #[error("tool loop: still calling tools after {max_turns} turns")]
    MaxTurns {
        /// The limit.
        max_turns: usize,
    },
    /// A response cache in strict mode had no entry for the request.
    #[error(
        "response cache {path}: no entry for model {model} (key {key}) and live calls are disabled"
    )]
    CacheMiss {
        /// Cache directory.
        path: PathBuf,
        /// Model name.
        model: String,
        /// Cache key.
        key: String,
    },
    /// Local model failure (loading, decoding).
    #[error("local model: {0}")]
    Local(String),
    /// Fetching a model artifact failed.
    #[error("fetch {what}: {reason}")]
    Fetch {
        /// What was fetched.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {:.1} s", d.as_secs_f64()),
        None => String::new(),
    }
}

impl LlmError {
    /// True for transient failures worth retrying: 429, 5xx, timeouts, connection errors,
    /// malformed bodies.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout { .. }
                | LlmError::Transport { .. }
                | LlmError::MalformedResponse { .. }
        )
    }

    /// True for failures of the provider (after which a fallback model may be tried), as opposed
    /// to budget, configuration, replay or usage errors that another model would not fix.
    pub fn is_provider_failure(&self) -> bool {
        self.is_retryable()
            || matches!(
                self,
                LlmError::Unauthorized { .. }
                    | LlmError::BadRequest { .. }
                    | LlmError::CircuitOpen { .. }
                    | LlmError::MissingKey { .. }
                    | LlmError::Local(_)
            )
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } | LlmError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// True when the error is a budget running out (the run should stop cleanly).
    pub fn is_budget(&self) -> bool {
        matches!(self, LlmError::BudgetExhausted { .. })
    }
}
