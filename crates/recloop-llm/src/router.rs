//! Builds ready-to-use models per agent role from the manifest's `[llm]` section: provider
//! client → budget → circuit breaker → retries (→ response cache), with a fallback chain.

use crate::anthropic::{AnthropicChat, AnthropicConfig};
use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::budget::{BudgetLedger, BudgetLimits, Budgeted};
use crate::cache::CachedModel;
use crate::cassette::{CassetteTransport, LlmMode, NamedSecret};
use crate::clock::{Clock, SystemClock};
use crate::error::{LlmError, Result};
use crate::model::{ChatModel, SharedModel};
use crate::openai::{OpenAiChat, OpenAiConfig};
use crate::retry::{RetryPolicy, Retrying};
use crate::scripted::ScriptedModel;
use crate::structured::LengthPolicy;
use crate::types::{ChatRequest, ChatResponse, StreamEvent, StructuredMode};
use crate::wire::{HttpTransport, Secret, Transport};
use recloop_core::LlmSection;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Providers a model spec may name.
pub const PROVIDERS: [&str; 6] = [
    "openai",
    "anthropic",
    "openai-compatible",
    "local",
    "scripted",
    "replay",
];

/// Environment variable naming a response-cache directory (see [`crate::cache`]).
pub const CACHE_ENV: &str = "RECLOOP_LLM_CACHE";
/// Environment variable overriding the cassette directory.
pub const CASSETTES_ENV: &str = "RECLOOP_LLM_CASSETTES";

/// One model of a chain: which provider serves which model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Provider (one of [`PROVIDERS`]).
    pub provider: String,
    /// Model name (a path for `local` and `scripted`).
    pub model: String,
}

impl ModelSpec {
    /// Parse `provider:model` or a bare `model` (served by `default_provider`). Only known
    /// provider names count as a prefix, so `llama3.1:8b` stays one model name.
    pub fn parse(spec: &str, default_provider: &str) -> ModelSpec {
        if let Some((p, m)) = spec.split_once(':')
            && PROVIDERS.contains(&p)
        {
            return ModelSpec {
                provider: p.to_string(),
                model: m.to_string(),
            };
        }
        ModelSpec {
            provider: default_provider.to_string(),
            model: spec.to_string(),
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

/// Command-line overrides of the manifest's `[llm]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsOverrides {
    /// Provider.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Base URL of the (resulting) provider.
    pub base_url: Option<String>,
    /// Environment variable holding the key.
    pub api_key_env: Option<String>,
    /// Live, record or replay (instead of `RECLOOP_LLM`).
    pub mode: Option<LlmMode>,
    /// Cassette directory (instead of the manifest's or `RECLOOP_LLM_CASSETTES`).
    pub cassettes: Option<PathBuf>,
}

/// Resolved settings of the language-model layer.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Default provider.
    pub provider: String,
    /// Default model.
    pub model: String,
    /// Base URL per provider (the manifest's `base_url` applies to its provider).
    pub base_urls: BTreeMap<String, String>,
    /// Environment variable holding the key of the default provider.
    pub api_key_env: Option<String>,
    /// Default temperature.
    pub temperature: Option<f64>,
    /// Role → fallback chain of model specs.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Budgets of the whole run.
    pub run_limits: BudgetLimits,
    /// Budgets per role.
    pub role_limits: BTreeMap<String, BudgetLimits>,
    /// Cassette directory (record/replay, and the store of provider `replay`).
    pub cassettes: PathBuf,
    /// Live, record or replay.
    pub mode: LlmMode,
    /// Response cache directory, if any.
    pub cache_dir: Option<PathBuf>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Time limit per provider call.
    pub timeout: Duration,
    /// Directory relative paths resolve against.
    pub workspace: PathBuf,
    /// Declared JSON Schema support of `openai`/`openai-compatible` servers (`None`: native for
    /// `openai`, prompt for `openai-compatible`).
    pub structured_output: Option<StructuredMode>,
    /// Ceiling of output-token limits for answers cut off at their limit.
    pub max_output_tokens: u32,
}

impl LlmSettings {
    /// Settings for `provider`/`model` with defaults everywhere else; mode `Live`.
    pub fn new(provider: &str, model: &str, workspace: &Path) -> LlmSettings {
        LlmSettings {
            provider: provider.to_string(),
            model: model.to_string(),
            base_urls: BTreeMap::new(),
            api_key_env: None,
            temperature: None,
            roles: BTreeMap::new(),
            run_limits: BudgetLimits::default(),
            role_limits: BTreeMap::new(),
            cassettes: workspace.join(".recloop").join("cassettes"),
            mode: LlmMode::Live,
            cache_dir: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            timeout: Duration::from_secs(120),
            workspace: workspace.to_path_buf(),
            structured_output: None,
            max_output_tokens: crate::structured::DEFAULT_MAX_OUTPUT_TOKENS,
        }
    }

    /// Settings from a manifest `[llm]` section plus the environment (`RECLOOP_LLM`,
    /// `RECLOOP_LLM_CASSETTES`, `RECLOOP_LLM_CACHE`); relative paths resolve against
    /// `workspace`.
    pub fn from_section(section: &LlmSection, workspace: &Path) -> Result<LlmSettings> {
        if !PROVIDERS.contains(&section.provider.as_str()) {
            return Err(LlmError::Config {
                field: "llm.provider".into(),
                reason: format!("{:?} is not one of {PROVIDERS:?}", section.provider),
            });
        }
        let mut s = LlmSettings::new(&section.provider, &section.model, workspace);
        if let Some(url) = &section.base_url {
            s.base_urls.insert(section.provider.clone(), url.clone());
        }
        s.api_key_env = section.api_key_env.clone();
        s.temperature = section.temperature;
        s.roles = section.roles.clone();
        s.run_limits = BudgetLimits {
            usd: section.budget_usd,
            tokens: section.budget_tokens,
            seconds: section.budget_seconds.map(|x| x as f64),
        };
        for (role, b) in &section.role_budgets {
            s.role_limits.insert(
                role.clone(),
                BudgetLimits {
                    usd: b.usd,
                    tokens: b.tokens,
                    seconds: b.seconds.map(|x| x as f64),
                },
            );
        }
        if let Some(c) = &section.cassettes {
            s.cassettes = workspace.join(c);
        }
        if let Some(mode) = &section.structured_output {
            s.structured_output = Some(mode.parse().map_err(|reason| LlmError::Config {
                field: "llm.structured_output".into(),
                reason,
            })?);
        }
        if let Some(n) = section.max_output_tokens {
            s.max_output_tokens = n.max(1);
        }
        s.apply_env()?;
        Ok(s)
    }

    /// Settings for a command-line tool: the `[llm]` section of `workspace`'s `recloop.toml`
    /// (when given), with `overrides` applied on top; without a workspace, `overrides` must
    /// name at least the provider and model.
    pub fn resolve(workspace: Option<&Path>, overrides: &SettingsOverrides) -> Result<LlmSettings> {
        let mut settings = match workspace {
            Some(dir) => {
                let manifest = recloop_core::Manifest::load(dir).map_err(|e| LlmError::Config {
                    field: "--workspace".into(),
                    reason: e.to_string(),
                })?;
                match (&manifest.llm, &overrides.provider, &overrides.model) {
                    (Some(section), _, _) => LlmSettings::from_section(section, dir)?,
                    (None, Some(p), Some(m)) => {
                        let mut s = LlmSettings::new(p, m, dir);
                        s.apply_env()?;
                        s
                    }
                    (None, _, _) => {
                        return Err(LlmError::Config {
                            field: "llm".into(),
                            reason: format!(
                                "{} has no [llm] section; add one or pass --provider and --model",
                                dir.display()
                            ),
                        });
                    }
                }
            }
            None => match (&overrides.provider, &overrides.model) {
                (Some(p), Some(m)) => {
                    let cwd = std::env::current_dir().map_err(|source| LlmError::Io {
                        path: PathBuf::from("."),
                        source,
                    })?;
                    let mut s = LlmSettings::new(p, m, &cwd);
                    s.apply_env()?;
                    s
                }
                _ => {
                    return Err(LlmError::Config {
                        field: "--provider/--model".into(),
                        reason: "pass --workspace DIR (with an [llm] section) or both --provider and --model".into(),
                    });
                }
            },
        };
        if let Some(p) = &overrides.provider {
            if !PROVIDERS.contains(&p.as_str()) {
                return Err(LlmError::Config {
                    field: "--provider".into(),
                    reason: format!("{p:?} is not one of {PROVIDERS:?}"),
                });
            }
            if *p != settings.provider {
                // A different provider: the manifest's base_url and key variable were for the
                // old one.
                settings.base_urls.remove(&settings.provider);
                settings.api_key_env = None;
            }
            settings.provider = p.clone();
            settings.roles.clear();
        }
        if let Some(m) = &overrides.model {
            settings.model = m.clone();
            settings.roles.clear();
        }
        if let Some(u) = &overrides.base_url {
            settings
                .base_urls
                .insert(settings.provider.clone(), u.clone());
        }
        if let Some(v) = &overrides.api_key_env {
            settings.api_key_env = Some(v.clone());
        }
        if let Some(mode) = overrides.mode {
            settings.mode = mode;
        }
        if let Some(dir) = &overrides.cassettes {
            settings.cassettes = settings.workspace.join(dir);
        }
        Ok(settings)
    }

    /// Read `RECLOOP_LLM`, `RECLOOP_LLM_CASSETTES` and `RECLOOP_LLM_CACHE`.
    pub fn apply_env(&mut self) -> Result<()> {
        self.mode = LlmMode::from_env()?;
        if let Ok(dir) = std::env::var(CASSETTES_ENV)
            && !dir.is_empty()
        {
            self.cassettes = self.workspace.join(dir);
        }
        if let Ok(dir) = std::env::var(CACHE_ENV)
            && !dir.is_empty()
        {
            self.cache_dir = Some(self.workspace.join(dir));
        }
        Ok(())
    }

    /// The fallback chain of `role` (the default model when the role has none).
    pub fn chain_for(&self, role: &str) -> Vec<ModelSpec> {
        match self.roles.get(role) {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|m| ModelSpec::parse(m, &self.provider))
                .collect(),
            _ => vec![ModelSpec {
                provider: self.provider.clone(),
                model: self.model.clone(),
            }],
        }
    }

    /// The declared structured-output mode of an `openai`/`openai-compatible` model.
    pub fn structured_mode(&self, provider: &str) -> StructuredMode {
        match (self.structured_output, provider) {
            (Some(mode), _) => mode,
            (None, "openai-compatible") => StructuredMode::Prompt,
            (None, _) => StructuredMode::JsonSchema,
        }
    }

    /// The length-retry policy of structured calls (`[llm] max_output_tokens`).
    pub fn length_policy(&self) -> LengthPolicy {
        LengthPolicy::with_ceiling(self.max_output_tokens)
    }

    fn key_var(&self, provider: &str) -> Option<String> {
        if provider == self.provider
            && let Some(v) = &self.api_key_env
        {
            return Some(v.clone());
        }
        match provider {
            "openai" => Some("OPENAI_API_KEY".into()),
            "anthropic" => Some("ANTHROPIC_API_KEY".into()),
            _ => None,
        }
    }
}

/// Tries models in order: on a provider failure (after that model's retries), the next one.
/// Budget, configuration and replay errors stop the chain at once.
pub struct Fallback {
    name: String,
    models: Vec<SharedModel>,
}

impl Fallback {
    /// A chain of at least one model.
    pub fn new(name: &str, models: Vec<SharedModel>) -> Result<Fallback> {
        if models.is_empty() {
            return Err(LlmError::Config {
                field: name.into(),
                reason: "fallback chain is empty".into(),
            });
        }
        Ok(Fallback {
            name: name.to_string(),
            models,
        })
    }

    fn run(
        &self,
        mut call: impl FnMut(&SharedModel) -> Result<ChatResponse>,
    ) -> Result<ChatResponse> {
        let mut summary = Vec::new();
        let last = self.models.len() - 1;
        for (i, m) in self.models.iter().enumerate() {
            match call(m) {
                Ok(r) => return Ok(r),
                Err(e) if e.is_provider_failure() && i < last => {
                    tracing::warn!(model = m.name(), error = %e, "model failed; falling back");
                    summary.push(format!("{}: {e}", m.name()));
                }
                Err(e) if summary.is_empty() || !e.is_provider_failure() => return Err(e),
                Err(e) => {
                    summary.push(format!("{}: {e}", m.name()));
                    return Err(LlmError::AllModelsFailed { summary });
                }
            }
        }
        Err(LlmError::AllModelsFailed { summary })
    }
}

impl ChatModel for Fallback {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.run(|m| m.chat(request))
    }

    fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<ChatResponse> {
        self.run(|m| m.chat_stream(request, on_event))
    }
}

/// Hands out models per agent role; all of them charge one [`BudgetLedger`] and share circuit
/// breakers per model.
pub struct LlmRouter {
    settings: LlmSettings,
    ledger: Arc<BudgetLedger>,
    clock: Arc<dyn Clock>,
    breakers: Mutex<HashMap<String, Arc<BreakerState>>>,
    transport: Mutex<Option<Arc<dyn Transport>>>,
}

impl LlmRouter {
    /// A router on the real clock.
    pub fn new(settings: LlmSettings) -> LlmRouter {
        LlmRouter::with_clock(settings, Arc::new(SystemClock))
    }

    /// A router on `clock` (tests).
    pub fn with_clock(settings: LlmSettings, clock: Arc<dyn Clock>) -> LlmRouter {
        let ledger = BudgetLedger::with_clock(settings.run_limits, clock.clone());
        for (role, limits) in &settings.role_limits {
            ledger.set_role_limits(role, *limits);
        }
        LlmRouter {
            settings,
            ledger,
            clock,
            breakers: Mutex::new(HashMap::new()),
            transport: Mutex::new(None),
        }
    }

    /// A router for the workspace at `dir` (its `recloop.toml`); `None` when it has no `[llm]`.
    pub fn from_workspace(dir: &Path) -> Result<Option<LlmRouter>> {
        let manifest = recloop_core::Manifest::load(dir).map_err(|e| LlmError::Config {
            field: "recloop.toml".into(),
            reason: e.to_string(),
        })?;
        let ws = if dir.is_dir() {
            dir.to_path_buf()
        } else {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        match &manifest.llm {
            Some(section) => Ok(Some(LlmRouter::new(LlmSettings::from_section(
                section, &ws,
            )?))),
            None => Ok(None),
        }
    }

    /// Use `transport` for HTTP instead of the real network (tests, proxies).
    pub fn set_transport(&self, transport: Arc<dyn Transport>) {
        if let Ok(mut t) = self.transport.lock() {
            *t = Some(transport);
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// The run's budget ledger (spend report for the journal).
    pub fn ledger(&self) -> &Arc<BudgetLedger> {
        &self.ledger
    }

    fn http(&self) -> Result<Arc<dyn Transport>> {
        let mut t = self
            .transport
            .lock()
            .map_err(|_| LlmError::Local("router transport poisoned".into()))?;
        if let Some(t) = &*t {
            return Ok(t.clone());
        }
        let h: Arc<dyn Transport> = Arc::new(HttpTransport::new()?);
        *t = Some(h.clone());
        Ok(h)
    }

    fn breaker(&self, key: &str) -> Arc<BreakerState> {
        let mut map = match self.breakers.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(key.to_string())
            .or_insert_with(|| {
                BreakerState::with_clock(self.settings.breaker.clone(), self.clock.clone())
            })
            .clone()
    }

    fn key_for(&self, provider: &str) -> Result<Option<NamedSecret>> {
        let Some(var) = self.settings.key_var(provider) else {
            return Ok(None);
        };
        match std::env::var(&var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(NamedSecret {
                var,
                value: Secret::new(v.trim()),
            })),
            _ if self.settings.mode == LlmMode::Replay || provider == "openai-compatible" => {
                Ok(None)
            }
            _ => Err(LlmError::MissingKey { var }),
        }
    }

    fn transport_for(&self, key: &Option<NamedSecret>) -> Result<Arc<dyn Transport>> {
        Ok(match self.settings.mode {
            LlmMode::Live => self.http()?,
            LlmMode::Record => Arc::new(CassetteTransport::record(
                &self.settings.cassettes,
                self.http()?,
                key.iter().cloned().collect(),
            )),
            LlmMode::Replay => Arc::new(CassetteTransport::replay(&self.settings.cassettes)),
        })
    }

    /// The bare client of one model spec (no budget, retries or breaker).
    pub fn provider_model(&self, spec: &ModelSpec) -> Result<SharedModel> {
        let s = &self.settings;
        match spec.provider.as_str() {
            "openai" | "openai-compatible" => {
                let key = self.key_for(&spec.provider)?;
                let transport = self.transport_for(&key)?;
                let secret = key.map(|k| k.value);
                let mut cfg = match s.base_urls.get(&spec.provider) {
                    Some(url) if spec.provider == "openai-compatible" => {
                        OpenAiConfig::compatible(url, &spec.model, secret)
                    }
                    Some(url) => OpenAiConfig {
                        base_url: url.trim_end_matches('/').to_string(),
                        ..OpenAiConfig::openai(&spec.model, secret)
                    },
                    None if spec.provider == "openai-compatible" => {
                        return Err(LlmError::Config {
                            field: "llm.base_url".into(),
                            reason: "provider \"openai-compatible\" needs a base_url".into(),
                        });
                    }
                    None => OpenAiConfig::openai(&spec.model, secret),
                };
                cfg.temperature = s.temperature;
                cfg.timeout = s.timeout;
                cfg.structured = s.structured_mode(&spec.provider);
                Ok(Arc::new(OpenAiChat::new(cfg, transport)))
            }
            "anthropic" => {
                let key = self.key_for("anthropic")?;
                let transport = self.transport_for(&key)?;
                let mut cfg = AnthropicConfig::new(&spec.model, key.map(|k| k.value));
                if let Some(url) = s.base_urls.get("anthropic") {
                    cfg.base_url = url.clone();
                }
                cfg.temperature = s.temperature;
                cfg.timeout = s.timeout;
                Ok(Arc::new(AnthropicChat::new(cfg, transport)))
            }
            "scripted" => Ok(Arc::new(ScriptedModel::from_file(
                &s.workspace.join(&spec.model),
            )?)),
            "replay" => Ok(Arc::new(CachedModel::strict(&spec.model, &s.cassettes))),
            "local" => crate::local_model(&s.workspace.join(&spec.model), s.temperature),
            other => Err(LlmError::Config {
                field: "llm.provider".into(),
                reason: format!("{other:?} is not one of {PROVIDERS:?}"),
            }),
        }
    }

    /// One model with the full reliability stack, charged to `role`:
    /// cache? → retries → circuit breaker → budget → provider.
    pub fn model(&self, spec: &ModelSpec, role: &str) -> Result<SharedModel> {
        let base = self.provider_model(spec)?;
        let budgeted = Budgeted::new(base, self.ledger.clone(), role);
        let guarded = CircuitBreaker::new(budgeted, self.breaker(&spec.to_string()));
        let retried =
            Retrying::with_clock(guarded, self.settings.retry.clone(), self.clock.clone());
        Ok(match &self.settings.cache_dir {
            Some(dir) if spec.provider != "replay" => Arc::new(CachedModel::new(retried, dir)),
            _ => Arc::new(retried),
        })
    }

    /// The model for an agent role (`brainstorm`, `develop`, `evaluate`, `evolve`, or any name):
    /// its fallback chain from the manifest, or the default model.
    pub fn for_role(&self, role: &str) -> Result<SharedModel> {
        let chain = self.settings.chain_for(role);
        let mut models = Vec::new();
        for spec in &chain {
            models.push(self.model(spec, role)?);
        }
        if models.len() == 1 {
            return Ok(models.remove(0));
        }
        let name = format!(
            "{role}:[{}]",
            chain
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Arc::new(Fallback::new(&name, models)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::scripted::{ScriptedModel, ScriptedTurn};

    #[test]
    fn model_specs_parse_known_provider_prefixes_only() {
        assert_eq!(
            ModelSpec::parse("anthropic:claude-haiku-4-5", "openai"),
            ModelSpec {
                provider: "anthropic".into(),
                model: "claude-haiku-4-5".into()
            }
        );
        assert_eq!(
            ModelSpec::parse("llama3.1:8b", "openai-compatible").model,
            "llama3.1:8b"
        );
    }

    #[test]
    fn fallback_moves_on_after_provider_failure_but_not_after_budget() {
        let a: SharedModel = Arc::new(ScriptedModel::named(
            "a",
            [ScriptedTurn::error(503, "down"), ScriptedTurn::text("a-ok")],
        ));
        let b: SharedModel = Arc::new(ScriptedModel::named("b", [ScriptedTurn::text("b-ok")]));
        let f = Fallback::new("chain", vec![a, b]).unwrap();
        let req = ChatRequest::simple(None, "x");
        assert_eq!(f.chat(&req).unwrap().text(), "b-ok");
        assert_eq!(f.chat(&req).unwrap().text(), "a-ok");

        let ledger = BudgetLedger::with_clock(
            BudgetLimits {
                tokens: Some(1),
                ..Default::default()
            },
            ManualClock::shared(),
        );
        let c: SharedModel = Arc::new(Budgeted::new(
            ScriptedModel::named("c", [ScriptedTurn::text("c")]),
            ledger,
            "r",
        ));
        let d = Arc::new(ScriptedModel::named("d", [ScriptedTurn::text("d")]));
        let f = Fallback::new("chain", vec![c, d.clone()]).unwrap();
        assert!(f.chat(&req).unwrap_err().is_budget());
        assert_eq!(d.requests().len(), 0);
    }

    #[test]
    fn all_models_failing_lists_each() {
        let a: SharedModel = Arc::new(ScriptedModel::named("a", [ScriptedTurn::error(500, "x")]));
        let b: SharedModel = Arc::new(ScriptedModel::named("b", [ScriptedTurn::error(401, "y")]));
        let err = Fallback::new("chain", vec![a, b])
            .unwrap()
            .chat(&ChatRequest::simple(None, "x"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("a: ") && msg.contains("b: "), "{msg}");
    }

    #[test]
    fn scripted_provider_from_settings_and_role_chain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.json"),
            r#"[{"type":"text","text":"hello"}]"#,
        )
        .unwrap();
        let mut s = LlmSettings::new("scripted", "s.json", dir.path());
        s.roles
            .insert("brainstorm".into(), vec!["scripted:s.json".into()]);
        let r = LlmRouter::with_clock(s, ManualClock::shared());
        let m = r.for_role("brainstorm").unwrap();
        assert_eq!(
            m.chat(&ChatRequest::simple(None, "hi")).unwrap().text(),
            "hello"
        );
        let report = r.ledger().report();
        assert_eq!(report.roles["brainstorm"].calls, 1);
    }
}
