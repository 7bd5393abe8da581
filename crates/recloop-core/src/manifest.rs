//! The workspace manifest `recloop.toml`: what recloop may edit, how to evaluate, what to optimise.

use crate::error::{CoreError, Result};
use crate::metric::{Direction, MetricsSection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the manifest at the root of a workspace.
pub const MANIFEST_FILE: &str = "recloop.toml";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name, production branch, editable and protected paths.
    pub project: ProjectSection,
    /// Commands that build, test and evaluate the workspace.
    #[serde(default)]
    pub commands: CommandsSection,
    /// Primary metric, north star and guardrails.
    pub metrics: MetricsSection,
    /// The online experiment platform.
    #[serde(default)]
    pub online: OnlineSection,
    /// Language model configuration; absent means the built-in brain.
    #[serde(default)]
    pub llm: Option<LlmSection>,
    /// How agent commands are sandboxed.
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// The run: seed, iterations, workers.
    #[serde(default)]
    pub run: RunSection,
    /// The parameters the built-in brain may change, in the workspace's own config files.
    #[serde(default)]
    pub search: SearchSection,
    /// Harness evolution inside `recloop run`.
    #[serde(default)]
    pub evolve: EvolveSection,
    /// Where evaluation jobs run; absent means in the local sandbox, directly.
    #[serde(default)]
    pub executor: Option<ExecutorSection>,
    /// Several `recloop run` processes sharing one PostgreSQL journal: leases and the git remote.
    #[serde(default)]
    pub workers: WorkersSection,
    /// Brainstorm personas (`[[personas]]`); none: one generalist Brainstorm.
    #[serde(default)]
    pub personas: Vec<crate::persona::PersonaSpec>,
}

/// `[workers]`: how `recloop run` processes that share a PostgreSQL journal (on one machine or
/// several, each with its own clone of the workspace) cooperate on one loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    /// Git remote (a remote's name or a URL) through which candidate commits and the production
    /// branch travel between workers; absent: commits stay in this clone, so every worker must
    /// share it.
    #[serde(default)]
    pub remote: Option<String>,
    /// Seconds a lease lasts unless renewed (its holder renews it every third of this); a worker
    /// killed while it holds one loses it after this long and another worker takes its step over.
    #[serde(default = "default_lease_ttl_s")]
    pub lease_ttl_s: f64,
    /// Seconds between checks while a worker waits for a step another worker holds.
    #[serde(default = "default_workers_poll_s")]
    pub poll_s: f64,
}

fn default_lease_ttl_s() -> f64 {
    30.0
}
fn default_workers_poll_s() -> f64 {
    0.5
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            remote: None,
            lease_ttl_s: default_lease_ttl_s(),
            poll_s: default_workers_poll_s(),
        }
    }
}

/// `[evolve]`: SGPO rounds inside `recloop run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolveSection {
    /// Run evolve rounds after every N iterations (0 = never).
    #[serde(default)]
    pub every: u32,
    /// Agents whose harness evolves (`develop`, `brainstorm`).
    #[serde(default = "default_evolve_agents")]
    pub agents: Vec<String>,
    /// Rounds per agent each time.
    #[serde(default = "default_evolve_rounds")]
    pub rounds: u32,
}

impl Default for EvolveSection {
    fn default() -> Self {
        EvolveSection {
            every: 0,
            agents: default_evolve_agents(),
            rounds: default_evolve_rounds(),
        }
    }
}

fn default_evolve_agents() -> Vec<String> {
    vec!["develop".to_string()]
}
fn default_evolve_rounds() -> u32 {
    1
}

/// `[search]`: the declared search space of the built-in brain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// The parameters (`[[search.params]]`).
    #[serde(default)]
    pub params: Vec<SearchParam>,
}

/// One searched parameter: a value in a TOML, JSON or YAML file of the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParam {
    /// Name (unique; shown in proposals; defaults to the key).
    #[serde(default)]
    pub name: String,
    /// The file, relative to the workspace (must be editable).
    pub file: String,
    /// Dotted key path of the value inside the file (`model.factors`).
    pub key: String,
    /// Lower bound of a numeric range.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound of a numeric range.
    #[serde(default)]
    pub max: Option<f64>,
    /// Sample the range on a log scale (needs `min > 0`).
    #[serde(default)]
    pub log: bool,
    /// Integer values only.
    #[serde(default)]
    pub integer: bool,
    /// Categorical choices (instead of a range).
    #[serde(default)]
    pub choices: Vec<serde_json::Value>,
    /// The parameter exists only when another (categorical) parameter has a given value.
    #[serde(default)]
    pub when: Option<SearchCondition>,
}

/// `when = { param = "solver", equals = "als" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchCondition {
    /// Name of a parameter with choices.
    pub param: String,
    /// The choice under which this parameter exists.
    pub equals: serde_json::Value,
}

impl SearchParam {
    /// The name, or the key when no name is given.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.key
        } else {
            &self.name
        }
    }
}

/// `[project]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// Human-readable name.
    pub name: String,
    /// Branch that holds what is live.
    #[serde(default = "default_production")]
    pub production: String,
    /// Glob patterns of files the agents may change.
    pub editable: Vec<String>,
    /// Glob patterns the agents may never change (wins over `editable`).
    #[serde(default)]
    pub protected: Vec<String>,
    /// Author of the merge commits recloop makes on the production branch, `Name <email>`;
    /// absent: the repository's git identity (`user.name`, `user.email`), else `recloop`.
    #[serde(default)]
    pub merge_author: Option<String>,
}

fn default_production() -> String {
    "main".to_string()
}

/// `[commands]`: each prints one JSON object of metrics on stdout (except `build`/`test`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsSection {
    /// Build step; empty means none.
    #[serde(default)]
    pub build: String,
    /// Test step; empty means none.
    #[serde(default)]
    pub test: String,
    /// Schema/dry-run check; empty means none.
    #[serde(default)]
    pub check: String,
    /// Offline evaluation on the validation split.
    #[serde(default)]
    pub offline_eval: String,
    /// Evaluation on the sealed holdout split (agents only learn pass/fail).
    #[serde(default)]
    pub holdout_eval: String,
    /// Time limit per command, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_timeout() -> u64 {
    600
}

/// `[online]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineSection {
    /// `simulator`, `external` (the team's own A/B platform, driven by `[online.external]`
    /// commands and judged from its logs), `logs`, or `none` (no online stage: a KEEP then needs
    /// a person's approval and its verdict says "offline only").
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Traffic share of the treatment at each ramp step.
    #[serde(default = "default_ramp")]
    pub ramp: Vec<f64>,
    /// Significance level.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The metric that decides KEEP online (e.g. `watch_time_per_user`). Absent: the `[metrics]`
    /// primary when the platform observes it, else the north star. Name a proxy here when the
    /// north star moves too little to be detected at the experiment's size; the north star then
    /// stays a success metric, and a guardrail on it keeps it from being harmed.
    #[serde(default)]
    pub primary: Option<crate::metric::MetricSpec>,
    /// Minimum days per ramp step.
    #[serde(default = "default_step_days")]
    pub min_days_per_step: u32,
    /// Maximum total days of an experiment before EXTEND is declared.
    #[serde(default = "default_max_days")]
    pub max_days: u32,
    /// Simulated users per experiment (simulator only).
    #[serde(default = "default_users")]
    pub users: u64,
    /// How many times an inconclusive experiment (EXTEND) is extended before EXTEND stands: each
    /// extension is a new, independent experiment with [`EXTENSION_SCALE`] times the users (the
    /// simulator) judged on its own, so a change without effect is kept with probability at
    /// most α per extension. 0 turns extensions off.
    #[serde(default = "default_extensions")]
    pub extensions: u32,
    /// Where logs live for the `logs` platform (directory of Parquet/CSV, or a postgres:// URL).
    #[serde(default)]
    pub logs: Option<String>,
    /// Layer this workspace's experiments run in.
    #[serde(default = "default_layer")]
    pub layer: String,
    /// Dual loop (`[run] mode = "dual"`): online experiments run side by side per iteration
    /// (default 1).
    #[serde(default)]
    pub slots: Option<u32>,
    /// Whether a run that changed production ends with one more experiment, ending production
    /// against starting production (a report of the run's total effect, not a decision). Absent:
    /// on for the simulator, off for other platforms, where it would cost real days of traffic.
    #[serde(default)]
    pub final_comparison: Option<bool>,
    /// The team's own experiment platform (`platform = "external"`).
    #[serde(default)]
    pub external: Option<ExternalSection>,
    /// Off-policy replay on logged bandit feedback before any traffic.
    #[serde(default)]
    pub off_policy: Option<OffPolicySection>,
    /// Online metrics computed from exposure and event logs (`external` and `logs` platforms).
    /// Empty: the simulator's log metrics (`ctr`, `hide_rate`, `clicks_per_user`,
    /// `watch_time_per_user`, `likes_per_user`).
    #[serde(default)]
    pub metrics: Vec<LogMetricSpec>,
}

/// `[online.external]`: how recloop drives a team's own A/B platform. Each command runs with
/// `sh -c` in the workspace's own checkout (never in a candidate's worktree, whose files an agent
/// edited), with `RECLOOP_EXPERIMENT`, `RECLOOP_CANDIDATE_COMMIT`, `RECLOOP_CANDIDATE_DIR`,
/// `RECLOOP_CONTROL_COMMIT`, `RECLOOP_CONTROL_DIR`, `RECLOOP_SHARE` and (for `stop`)
/// `RECLOOP_OUTCOME` in its environment. A failing command (non-zero exit, time-out) fails the
/// experiment's stage with the command's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    /// Starts an experiment of the candidate commit against production (traffic share 0).
    pub start: String,
    /// Sets the treatment's traffic share (`RECLOOP_SHARE`, a fraction; control gets the same).
    pub traffic: String,
    /// Stops the experiment and sends all traffic to production (`RECLOOP_OUTCOME`:
    /// `completed`, `rolled_back`, `held`, or `aborted`).
    pub stop: String,
    /// The logs: a directory of Parquet/CSV files (`exposures` and `events`, see recloop-logs),
    /// relative to the workspace, or a `postgres://` URL.
    pub logs: String,
    /// With a `postgres://` source: the exposures relation (a table, a view, or a parenthesised
    /// query with an alias) with columns `unit_id, experiment, arm, ts, day`.
    #[serde(default = "default_exposures_relation")]
    pub exposures: String,
    /// With a `postgres://` source: the events relation with columns
    /// `unit_id, ts, day, metric, value`.
    #[serde(default = "default_events_relation")]
    pub events: String,
    /// Length of an experiment day in seconds (the logs' `day` column counts these from the
    /// experiment's start).
    #[serde(default = "default_day_seconds")]
    pub day_seconds: f64,
    /// How long after a day ends its logs are complete (the pipeline's latency), seconds.
    #[serde(default)]
    pub settle_seconds: f64,
    /// Time limit of each command, seconds.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_s: u64,
}

fn default_exposures_relation() -> String {
    "exposures".into()
}
fn default_events_relation() -> String {
    "events".into()
}
fn default_day_seconds() -> f64 {
    86_400.0
}
fn default_command_timeout() -> u64 {
    300
}

/// `[online.off_policy]`: before any traffic, the candidate's policy is scored off-policy on
/// logged bandit feedback (actions with their logging propensities) against production's; a
/// candidate whose confidence interval of the difference lies wholly below zero gets no traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffPolicySection {
    /// The logged dataset: `obd` (the Open Bandit Dataset sample, fetched on first use).
    pub dataset: String,
    /// Its behaviour policy (`random` or `bts`).
    #[serde(default = "default_ope_behavior")]
    pub behavior: String,
    /// Its campaign (`all`, `men` or `women`).
    #[serde(default = "default_ope_campaign")]
    pub campaign: String,
    /// The workspace file (JSON) holding the policy: `"uniform"`,
    /// `{"softmax": {"item_feature": F, "beta": B}}` or `{"scores": {"scores": [...], "beta": B}}`.
    pub policy: String,
    /// The estimator whose interval decides: `ipw`, `snipw` or `dr`.
    #[serde(default = "default_ope_estimator")]
    pub estimator: String,
    /// Prior weight of the smoothed-CTR reward model (`dr`).
    #[serde(default = "default_ope_prior")]
    pub prior_weight: f64,
}

/// The estimators `[online.off_policy] estimator` accepts.
pub const OFF_POLICY_ESTIMATORS: [&str; 3] = ["ipw", "snipw", "dr"];

fn default_ope_behavior() -> String {
    "random".into()
}
fn default_ope_campaign() -> String {
    "all".into()
}
fn default_ope_estimator() -> String {
    "dr".into()
}
fn default_ope_prior() -> f64 {
    10.0
}

/// One online metric computed from logs (`[[online.metrics]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogMetricSpec {
    /// Metric name, as the manifest's metrics and guardrails name it.
    pub name: String,
    /// `mean` (per-unit sum of `event`), `proportion` (share of units with a positive sum) or
    /// `ratio` (Σ `event` / Σ `denominator` over units).
    pub kind: String,
    /// The event (the logs' `metric` column) summed per unit.
    pub event: String,
    /// The denominator event of a ratio.
    #[serde(default)]
    pub denominator: Option<String>,
}

/// The values `[online] platform` accepts.
pub const PLATFORMS: [&str; 4] = ["simulator", "external", "logs", "none"];

fn default_platform() -> String {
    "simulator".to_string()
}
fn default_ramp() -> Vec<f64> {
    vec![0.01, 0.05, 0.20, 0.50]
}
fn default_alpha() -> f64 {
    0.05
}
fn default_step_days() -> u32 {
    2
}
fn default_max_days() -> u32 {
    14
}
fn default_users() -> u64 {
    20_000
}
fn default_extensions() -> u32 {
    1
}
/// Population multiplier of each extension of an inconclusive experiment.
pub const EXTENSION_SCALE: u32 = 4;
fn default_layer() -> String {
    "ranking".to_string()
}

impl Default for OnlineSection {
    fn default() -> Self {
        OnlineSection {
            platform: default_platform(),
            ramp: default_ramp(),
            alpha: default_alpha(),
            primary: None,
            min_days_per_step: default_step_days(),
            max_days: default_max_days(),
            users: default_users(),
            extensions: default_extensions(),
            logs: None,
            layer: default_layer(),
            slots: None,
            final_comparison: None,
            external: None,
            off_policy: None,
            metrics: Vec::new(),
        }
    }
}

impl OnlineSection {
    /// Online experiments that run side by side per iteration (1 unless the dual loop asks
    /// for more).
    pub fn slots(&self) -> u32 {
        self.slots.unwrap_or(1)
    }

    /// The fraction of its layer one experiment takes at the top of the ramp (treatment and
    /// control get the same share).
    pub fn layer_share(&self) -> f64 {
        2.0 * self.ramp.iter().copied().fold(0.0, f64::max)
    }

    /// Whether a run ends with the final comparison (see [`OnlineSection::final_comparison`]).
    pub fn runs_final_comparison(&self) -> bool {
        self.final_comparison
            .unwrap_or(self.platform == "simulator")
    }
}

/// `[llm]`: the provider and model; secrets come only from the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    /// `openai` | `anthropic` | `openai-compatible` | `local` | `scripted` | `replay`.
    pub provider: String,
    /// Model name (or path of a GGUF file for `local`).
    pub model: String,
    /// Base URL for OpenAI-compatible servers.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable that holds the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Budget for the whole run in US dollars.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Budget for the whole run in tokens.
    #[serde(default)]
    pub budget_tokens: Option<u64>,
    /// Wall-clock budget for the whole run, seconds.
    #[serde(default)]
    pub budget_seconds: Option<u64>,
    /// Per-role overrides: role (`brainstorm`, `develop`, `evaluate`, `evolve`) -> model names,
    /// tried in order (fallback chain).
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Directory of cassettes for record/replay.
    #[serde(default)]
    pub cassettes: Option<String>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Per-role budgets (`[llm.role_budgets.brainstorm] usd = 2.0`), on top of the run budgets.
    #[serde(default)]
    pub role_budgets: BTreeMap<String, LlmBudget>,
    /// Prices of models the built-in price table does not list (`[llm.prices."my-model"]
    /// input_per_mtok = 0.5, output_per_mtok = 1.5`), US dollars per million tokens. A dollar
    /// budget with an unpriced model is refused.
    #[serde(default)]
    pub prices: BTreeMap<String, ModelPrices>,
    /// Whether the `openai`/`openai-compatible` server honours a JSON Schema response format:
    /// `json_schema` (default for `openai`) or `prompt` (default for `openai-compatible`: the
    /// schema goes into the prompt, no `response_format` is sent). Anthropic and local models
    /// always enforce the schema natively.
    #[serde(default)]
    pub structured_output: Option<String>,
    /// Largest output-token limit an answer cut off at its limit is retried with (default
    /// 16384).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// US dollars per million tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrices {
    /// Per million input tokens.
    pub input_per_mtok: f64,
    /// Per million output tokens.
    pub output_per_mtok: f64,
}

/// Budgets of one agent role in `[llm.role_budgets.<role>]`; absent fields mean unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmBudget {
    /// US dollars.
    #[serde(default)]
    pub usd: Option<f64>,
    /// Input + output tokens.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Wall-clock seconds spent in this role's model calls.
    #[serde(default)]
    pub seconds: Option<u64>,
}

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// Allow running commands without bubblewrap when it is not installed.
    #[serde(default)]
    pub allow_unsandboxed: bool,
    /// Memory limit per command, MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Extra command names (first word) the Develop agent may run.
    #[serde(default)]
    pub allowed_commands: Vec<String>,
}

fn default_memory() -> u64 {
    4096
}

impl Default for SandboxSection {
    fn default() -> Self {
        SandboxSection {
            allow_unsandboxed: false,
            memory_mib: default_memory(),
            allowed_commands: Vec::new(),
        }
    }
}

/// Executor kinds `[executor] kind` accepts.
pub const EXECUTOR_KINDS: [&str; 3] = ["local", "slurm", "ray"];

/// `[executor]`: where the evaluation jobs (`offline_eval`, `holdout_eval`) of candidates and of
/// production run, and how often a failed job is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSection {
    /// `local` (the sandbox on this machine, as a background job), `slurm` (`sbatch`) or `ray`
    /// (the Ray Jobs REST API).
    pub kind: String,
    /// Ray: the head's job server (default `$RAY_ADDRESS`, else `http://127.0.0.1:8265`).
    #[serde(default)]
    pub address: Option<String>,
    /// Slurm partition (`sbatch --partition`); absent: the cluster's default partition.
    #[serde(default)]
    pub partition: Option<String>,
    /// CPUs per job (`--cpus-per-task`).
    #[serde(default = "default_job_cpus")]
    pub cpus: u32,
    /// Memory per job, MiB (`--mem`); absent: `[sandbox] memory_mib`.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Time limit per job, seconds (`--time`); absent: `[commands] timeout_s`.
    #[serde(default)]
    pub time_limit_s: Option<u64>,
    /// Attempts per job, the first included: a job that fails, times out, is preempted or is
    /// cancelled by someone else is retried until this many attempts have run.
    #[serde(default = "default_job_attempts")]
    pub max_attempts: u32,
    /// Seconds between status polls.
    #[serde(default = "default_poll_s")]
    pub poll_s: f64,
    /// Seconds a job may wait in the queue before the attempt counts as failed; 0: no limit.
    #[serde(default)]
    pub queue_timeout_s: u64,
    /// Extra `sbatch` arguments (e.g. `["--qos=low", "--gres=gpu:1"]`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

fn default_job_cpus() -> u32 {
    1
}
fn default_job_attempts() -> u32 {
    3
}
fn default_poll_s() -> f64 {
    1.0
}

impl ExecutorSection {
    /// The time limit per job: `time_limit_s`, else the commands' time limit.
    pub fn time_limit(&self, commands: &CommandsSection) -> u64 {
        self.time_limit_s.unwrap_or(commands.timeout_s).max(1)
    }

    /// Memory per job: `memory_mib`, else the sandbox's limit.
    pub fn memory(&self, sandbox: &SandboxSection) -> u64 {
        self.memory_mib.unwrap_or(sandbox.memory_mib)
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Master seed: every random choice of a run derives from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Default number of iterations of `recloop run`.
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    /// Candidates in flight at once.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// Proposals per brainstorm batch.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// `single` (each iteration takes up to `workers` candidates of one batch from offline to
    /// online) or `dual` (YouTube's dual loop: each iteration a fast loop evaluates
    /// `fast_trials` candidates offline into a ranked pool, and a slow loop promotes the pool's
    /// best to `[online] slots` concurrent online experiments).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Dual loop: offline trials of the fast loop per iteration (default 8).
    #[serde(default)]
    pub fast_trials: Option<u32>,
    /// Proposals of each kind per brainstorm batch (YouTube's X/Y/Z: exploitation,
    /// exploration, innovation); the batch then has their sum, and admission rejects a
    /// proposal past its kind's quota. Absent: the built-in brain alternates the kinds and
    /// admission does not count them.
    #[serde(default)]
    pub quotas: Option<Quotas>,
}

/// `[run] quotas`: proposals of each kind per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Refinements of what already works.
    #[serde(default)]
    pub exploit: u32,
    /// Moves to other regions of the space.
    #[serde(default)]
    pub explore: u32,
    /// Changes the journal has never seen.
    #[serde(default)]
    pub novel: u32,
}

impl Quotas {
    /// Proposals per batch.
    pub fn total(&self) -> u32 {
        self.exploit + self.explore + self.novel
    }

    /// The quota of `kind`.
    pub fn of(&self, kind: crate::ProposalKind) -> u32 {
        match kind {
            crate::ProposalKind::Exploit => self.exploit,
            crate::ProposalKind::Explore => self.explore,
            crate::ProposalKind::Novel => self.novel,
        }
    }

    /// The kind of each slot of a batch, interleaved (2/1/1: exploit, explore, novel,
    /// exploit), so that a batch cut short keeps the balance.
    pub fn schedule(&self) -> Vec<crate::ProposalKind> {
        use crate::ProposalKind::{Exploit, Explore, Novel};
        let mut left = [
            (Exploit, self.exploit),
            (Explore, self.explore),
            (Novel, self.novel),
        ];
        let mut out = Vec::new();
        while left.iter().any(|(_, n)| *n > 0) {
            for (kind, n) in left.iter_mut() {
                if *n > 0 {
                    out.push(*kind);
                    *n -= 1;
                }
            }
        }
        out
    }
}

/// The two loop modes of `[run] mode`.
pub const RUN_MODES: &[&str] = &["single", "dual"];

fn default_mode() -> String {
    "single".into()
}

fn default_seed() -> u64 {
    42
}
fn default_iterations() -> u32 {
    12
}
fn default_workers() -> u32 {
    1
}
fn default_batch() -> u32 {
    4
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            seed: default_seed(),
            iterations: default_iterations(),
            workers: default_workers(),
            batch_size: default_batch(),
            mode: default_mode(),
            fast_trials: None,
            quotas: None,
        }
    }
}

impl Manifest {
    /// The personas with their defaults (validated at load, so none fails here).
    pub fn personas(&self) -> Vec<crate::persona::Persona> {
        self.personas
            .iter()
            .filter_map(|p| p.resolve().ok())
            .collect()
    }

    /// The persona called `name`, if the manifest defines it.
    pub fn persona(&self, name: &str) -> Option<crate::persona::Persona> {
        self.personas
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.resolve().ok())
    }

    /// Read and validate `recloop.toml` in `workspace` (a directory) or at `path` (a file).
    pub fn load(path: &Path) -> Result<Manifest> {
        let file: PathBuf = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| CoreError::Io {
            path: file.clone(),
            source,
        })?;
        Manifest::parse(&text, &file)
    }

    /// Parse and validate manifest text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| CoreError::Parse {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// Check values that the schema alone cannot.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let invalid = |field: &str, reason: String| CoreError::Invalid {
            path: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        if self.project.name.trim().is_empty() {
            return Err(invalid("project.name", "must not be empty".into()));
        }
        if self.project.production.trim().is_empty() {
            return Err(invalid("project.production", "must name a branch".into()));
        }
        if let Some(a) = self
            .evolve
            .agents
            .iter()
            .find(|a| !["develop", "brainstorm"].contains(&a.as_str()))
        {
            return Err(invalid(
                "evolve.agents",
                format!("{a:?} cannot evolve (replay tasks exist for develop and brainstorm)"),
            ));
        }
        if !RUN_MODES.contains(&self.run.mode.as_str()) {
            return Err(invalid(
                "run.mode",
                format!("{:?} is not one of {RUN_MODES:?}", self.run.mode),
            ));
        }
        for (field, value) in [
            ("run.fast_trials", self.run.fast_trials),
            ("online.slots", self.online.slots),
        ] {
            match value {
                Some(_) if self.run.mode != "dual" => {
                    return Err(invalid(
                        field,
                        "applies to the dual loop only; set [run] mode = \"dual\" or remove it"
                            .into(),
                    ));
                }
                Some(0) => return Err(invalid(field, "must be at least 1".into())),
                _ => {}
            }
        }
        let mut persona_names = std::collections::BTreeSet::new();
        for (i, p) in self.personas.iter().enumerate() {
            if !persona_names.insert(p.name.as_str()) {
                return Err(invalid(
                    &format!("personas[{i}].name"),
                    format!("persona {:?} is defined twice", p.name),
                ));
            }
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(invalid(
                    &format!("personas[{i}].name"),
                    format!(
                        "{:?} must be letters, digits or _ (it is also an [llm.roles] key)",
                        p.name
                    ),
                ));
            }
            p.resolve()
                .map_err(|(field, reason)| invalid(&format!("personas[{i}].{field}"), reason))?;
        }
        if let Some(q) = &self.run.quotas {
            if q.total() == 0 {
                return Err(invalid(
                    "run.quotas",
                    "allow no proposal at all; give at least one kind a quota".into(),
                ));
            }
            if let Some(n) = self.run.fast_trials
                && n > q.total()
            {
                return Err(invalid(
                    "run.fast_trials",
                    format!(
                        "{n} trials, but the quotas make batches of {} proposals",
                        q.total()
                    ),
                ));
            }
        }
        let (slots, share) = (self.online.slots(), self.online.layer_share());
        if slots > 1 && f64::from(slots) * share > 1.0 + 1e-9 {
            return Err(invalid(
                "online.slots",
                format!(
                    "{slots} experiments side by side in layer {:?} need {:.0}% of its traffic: \
                     each takes {:.0}% at the ramp's top share (treatment and control); lower \
                     the ramp's last step to at most {:.3} or use fewer slots",
                    self.online.layer,
                    100.0 * f64::from(slots) * share,
                    100.0 * share,
                    0.5 / f64::from(slots)
                ),
            ));
        }
        if self.evolve.every > 0 && self.evolve.rounds == 0 {
            return Err(invalid(
                "evolve.rounds",
                format!(
                    "0 rounds every {} iterations does nothing; use at least 1, or every = 0 to \
                     turn evolution off",
                    self.evolve.every
                ),
            ));
        }
        if self.evolve.every > 0 && self.evolve.agents.is_empty() {
            return Err(invalid(
                "evolve.agents",
                "is empty, so every = N would evolve nothing; name develop and/or brainstorm"
                    .into(),
            ));
        }
        if self.project.editable.is_empty() {
            return Err(invalid(
                "project.editable",
                "must list at least one path pattern the agents may edit".into(),
            ));
        }
        for (field, patterns) in [
            ("project.editable", &self.project.editable),
            ("project.protected", &self.project.protected),
        ] {
            for p in patterns {
                globset::Glob::new(p)
                    .map_err(|e| invalid(field, format!("bad glob pattern {p:?}: {e}")))?;
            }
        }
        if self.metrics.primary.name.trim().is_empty() {
            return Err(invalid("metrics.primary.name", "must not be empty".into()));
        }
        if self.metrics.primary.min_effect.is_nan() || self.metrics.primary.min_effect < 0.0 {
            return Err(invalid(
                "metrics.primary.min_effect",
                "must be a non-negative number".into(),
            ));
        }
        for (i, g) in self.metrics.guardrails.iter().enumerate() {
            let field = format!("metrics.guardrails[{i}] ({})", g.name);
            let limits = [
                ("attention", g.attention),
                ("hard", g.hard),
                ("attention_max", g.attention_max),
                ("max", g.max),
                ("attention_min", g.attention_min),
                ("min", g.min),
            ];
            if limits.iter().all(|(_, v)| v.is_none()) {
                return Err(invalid(
                    &field,
                    "sets no limit: give relative `attention`/`hard` (0.05 = 5 % worse than \
                     production) and/or absolute `max` (direction decrease) or `min` (increase)"
                        .into(),
                ));
            }
            for (key, v) in limits {
                if v.is_some_and(|v| !v.is_finite()) {
                    return Err(invalid(&field, format!("`{key}` must be a finite number")));
                }
            }
            if g.attention.is_some_and(|a| a < 0.0) || g.hard.is_some_and(|h| h < 0.0) {
                return Err(invalid(&field, "thresholds must be non-negative".into()));
            }
            if let (Some(a), Some(h)) = (g.attention, g.hard)
                && a > h
            {
                return Err(invalid(
                    &field,
                    format!(
                        "attention threshold {a} exceeds hard threshold {h} for {}",
                        g.name
                    ),
                ));
            }
            let wrong_way = match g.direction {
                Direction::Decrease => g.min.or(g.attention_min).map(|_| "min"),
                Direction::Increase => g.max.or(g.attention_max).map(|_| "max"),
            };
            if let Some(kind) = wrong_way {
                return Err(invalid(
                    &field,
                    format!(
                        "an absolute `{kind}` limit does not fit direction {:?}: a metric that \
                         should decrease gets `max`, one that should increase gets `min`",
                        g.direction
                    ),
                ));
            }
            if let (Some(a), Some(h)) = (g.attention_max, g.max)
                && a > h
            {
                return Err(invalid(
                    &field,
                    format!("attention_max {a} exceeds max {h}"),
                ));
            }
            if let (Some(a), Some(h)) = (g.attention_min, g.min)
                && a < h
            {
                return Err(invalid(
                    &field,
                    format!("attention_min {a} is below min {h}"),
                ));
            }
        }
        let o = &self.online;
        if !PLATFORMS.contains(&o.platform.as_str()) {
            return Err(invalid(
                "online.platform",
                format!("{:?} is not one of {PLATFORMS:?}", o.platform),
            ));
        }
        if o.ramp.is_empty() {
            return Err(invalid("online.ramp", "must have at least one step".into()));
        }
        let mut previous = 0.0;
        for &step in &o.ramp {
            if !(step > previous && step <= 0.5) {
                return Err(invalid(
                    "online.ramp",
                    format!(
                        "steps must increase strictly and stay in (0, 0.5]; found {step} after {previous}"
                    ),
                ));
            }
            previous = step;
        }
        if !(o.alpha > 0.0 && o.alpha < 0.5) {
            return Err(invalid(
                "online.alpha",
                format!("{} is not in (0, 0.5)", o.alpha),
            ));
        }
        if o.platform == "logs" && o.logs.is_none() {
            return Err(invalid(
                "online.logs",
                "platform \"logs\" needs `logs` (a directory or a postgres:// URL)".into(),
            ));
        }
        self.validate_external(origin)?;
        if let Some(llm) = &self.llm {
            const PROVIDERS: [&str; 6] = [
                "openai",
                "anthropic",
                "openai-compatible",
                "local",
                "scripted",
                "replay",
            ];
            if !PROVIDERS.contains(&llm.provider.as_str()) {
                return Err(invalid(
                    "llm.provider",
                    format!("{:?} is not one of {PROVIDERS:?}", llm.provider),
                ));
            }
            if llm.provider == "openai-compatible" && llm.base_url.is_none() {
                return Err(invalid(
                    "llm.base_url",
                    "provider \"openai-compatible\" needs a base_url".into(),
                ));
            }
            if let Some(b) = llm.budget_usd
                && (b.is_nan() || b < 0.0)
            {
                return Err(invalid("llm.budget_usd", "must be non-negative".into()));
            }
            if let Some(mode) = &llm.structured_output
                && mode != "json_schema"
                && mode != "prompt"
            {
                return Err(invalid(
                    "llm.structured_output",
                    format!("{mode:?} is not one of \"json_schema\", \"prompt\""),
                ));
            }
            if llm.max_output_tokens == Some(0) {
                return Err(invalid(
                    "llm.max_output_tokens",
                    "must be at least 1".into(),
                ));
            }
        }
        if let Some(x) = &self.executor {
            if !EXECUTOR_KINDS.contains(&x.kind.as_str()) {
                return Err(invalid(
                    "executor.kind",
                    format!("{:?} is not one of {EXECUTOR_KINDS:?}", x.kind),
                ));
            }
            if let Some(a) = &x.address {
                if x.kind != "ray" {
                    return Err(invalid(
                        "executor.address",
                        format!("only kind = \"ray\" has an address, not {:?}", x.kind),
                    ));
                }
                if !(a.starts_with("http://") || a.starts_with("https://")) {
                    return Err(invalid(
                        "executor.address",
                        format!("{a:?} is not an http:// or https:// URL"),
                    ));
                }
            }
            if x.partition.is_some() && x.kind != "slurm" {
                return Err(invalid(
                    "executor.partition",
                    format!("only kind = \"slurm\" has partitions, not {:?}", x.kind),
                ));
            }
            if let Some(p) = &x.partition
                && (p.trim().is_empty() || p.contains(char::is_whitespace))
            {
                return Err(invalid(
                    "executor.partition",
                    format!("{p:?} is not a partition name"),
                ));
            }
            if !x.sbatch_args.is_empty() && x.kind != "slurm" {
                return Err(invalid(
                    "executor.sbatch_args",
                    format!(
                        "only kind = \"slurm\" takes sbatch arguments, not {:?}",
                        x.kind
                    ),
                ));
            }
            if x.cpus == 0 {
                return Err(invalid("executor.cpus", "must be at least 1".into()));
            }
            if x.memory_mib == Some(0) {
                return Err(invalid("executor.memory_mib", "must be at least 1".into()));
            }
            if x.time_limit_s == Some(0) {
                return Err(invalid(
                    "executor.time_limit_s",
                    "must be at least 1".into(),
                ));
            }
            if x.max_attempts == 0 || x.max_attempts > 20 {
                return Err(invalid(
                    "executor.max_attempts",
                    format!("{} is not between 1 and 20", x.max_attempts),
                ));
            }
            if !(x.poll_s.is_finite() && (0.05..=600.0).contains(&x.poll_s)) {
                return Err(invalid(
                    "executor.poll_s",
                    format!("{} is not between 0.05 and 600 seconds", x.poll_s),
                ));
            }
        }
        let w = &self.workers;
        if !(w.lease_ttl_s.is_finite() && (0.5..=86_400.0).contains(&w.lease_ttl_s)) {
            return Err(invalid(
                "workers.lease_ttl_s",
                format!("{} is not between 0.5 and 86400 seconds", w.lease_ttl_s),
            ));
        }
        if !(w.poll_s.is_finite() && w.poll_s >= 0.01 && w.poll_s <= w.lease_ttl_s) {
            return Err(invalid(
                "workers.poll_s",
                format!(
                    "{} is not between 0.01 seconds and lease_ttl_s ({})",
                    w.poll_s, w.lease_ttl_s
                ),
            ));
        }
        if w.remote.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(invalid(
                "workers.remote",
                "must name a git remote or URL (or be left out)".into(),
            ));
        }
        self.validate_search(origin)
    }

    /// `[search]`: names unique, files editable, ranges well-formed, conditions resolvable.
    /// `[online.external]` and `[[online.metrics]]`.
    fn validate_external(&self, origin: &Path) -> Result<()> {
        let invalid = |field: &str, reason: String| CoreError::Invalid {
            path: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        let o = &self.online;
        match (&o.external, o.platform.as_str()) {
            (None, "external") => {
                return Err(invalid(
                    "online.external",
                    "platform \"external\" needs an [online.external] table with start, \
                     traffic and stop commands and the logs"
                        .into(),
                ));
            }
            (Some(x), _) => {
                for (key, command) in [
                    ("start", &x.start),
                    ("traffic", &x.traffic),
                    ("stop", &x.stop),
                ] {
                    if command.trim().is_empty() {
                        return Err(invalid(
                            &format!("online.external.{key}"),
                            "must be a command".into(),
                        ));
                    }
                }
                if x.logs.trim().is_empty() {
                    return Err(invalid(
                        "online.external.logs",
                        "must name a directory or a postgres:// URL".into(),
                    ));
                }
                for (key, relation) in [("exposures", &x.exposures), ("events", &x.events)] {
                    if relation.trim().is_empty() || relation.contains(';') {
                        return Err(invalid(
                            &format!("online.external.{key}"),
                            format!(
                                "{relation:?} is not a relation (a table, a view or a parenthesised query with an alias, without `;`)"
                            ),
                        ));
                    }
                }
                if !(x.day_seconds.is_finite() && x.day_seconds > 0.0) {
                    return Err(invalid(
                        "online.external.day_seconds",
                        format!("{} is not a positive number of seconds", x.day_seconds),
                    ));
                }
                if !(x.settle_seconds.is_finite() && x.settle_seconds >= 0.0) {
                    return Err(invalid(
                        "online.external.settle_seconds",
                        format!("{} is not a number of seconds ≥ 0", x.settle_seconds),
                    ));
                }
            }
            (None, _) => {}
        }
        if let Some(x) = &o.off_policy {
            if !OFF_POLICY_ESTIMATORS.contains(&x.estimator.as_str()) {
                return Err(invalid(
                    "online.off_policy.estimator",
                    format!("{:?} is not one of {OFF_POLICY_ESTIMATORS:?}", x.estimator),
                ));
            }
            if x.dataset != "obd" {
                return Err(invalid(
                    "online.off_policy.dataset",
                    format!("{:?} is not a known logged dataset (\"obd\")", x.dataset),
                ));
            }
            if x.policy.trim().is_empty() {
                return Err(invalid(
                    "online.off_policy.policy",
                    "must name the workspace file holding the policy".into(),
                ));
            }
            if !(x.prior_weight.is_finite() && x.prior_weight >= 0.0) {
                return Err(invalid(
                    "online.off_policy.prior_weight",
                    format!("{} is not a weight ≥ 0", x.prior_weight),
                ));
            }
        }
        for (i, m) in o.metrics.iter().enumerate() {
            let field = format!("online.metrics[{i}]");
            match (m.kind.as_str(), &m.denominator) {
                ("mean" | "proportion", None) | ("ratio", Some(_)) => {}
                ("ratio", None) => {
                    return Err(invalid(
                        &field,
                        format!("ratio `{}` needs a denominator", m.name),
                    ));
                }
                ("mean" | "proportion", Some(_)) => {
                    return Err(invalid(
                        &field,
                        format!("{} `{}` takes no denominator", m.kind, m.name),
                    ));
                }
                (other, _) => {
                    return Err(invalid(
                        &field,
                        format!("kind {other:?} is not one of \"mean\", \"proportion\", \"ratio\""),
                    ));
                }
            }
            if o.metrics[..i].iter().any(|x| x.name == m.name) {
                return Err(invalid(
                    &field,
                    format!("metric `{}` is declared twice", m.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_search(&self, origin: &Path) -> Result<()> {
        let params = &self.search.params;
        for (i, p) in params.iter().enumerate() {
            let field = format!("search.params[{i}] ({})", p.label());
            let invalid = |reason: String| CoreError::Invalid {
                path: origin.to_path_buf(),
                field: field.clone(),
                reason,
            };
            if p.key.trim().is_empty() {
                return Err(invalid("`key` must name a value in the file".into()));
            }
            if !self.is_editable(&p.file) {
                return Err(invalid(format!(
                    "file {:?} is not editable (add it to project.editable, and not to protected)",
                    p.file
                )));
            }
            let ext_ok = [".toml", ".json", ".yaml", ".yml"]
                .iter()
                .any(|e| p.file.to_ascii_lowercase().ends_with(e));
            if !ext_ok {
                return Err(invalid(format!(
                    "file {:?}: only TOML, JSON and YAML files are searched",
                    p.file
                )));
            }
            if params[..i].iter().any(|q| q.label() == p.label()) {
                return Err(invalid("the name is used twice".into()));
            }
            match (p.min, p.max, p.choices.is_empty()) {
                (Some(lo), Some(hi), true) => {
                    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                        return Err(invalid(format!("needs min < max (got {lo} and {hi})")));
                    }
                    if p.log && lo <= 0.0 {
                        return Err(invalid("a log scale needs min > 0".into()));
                    }
                }
                (None, None, false) => {
                    if p.choices.len() < 2 {
                        return Err(invalid("needs at least two choices".into()));
                    }
                }
                _ => {
                    return Err(invalid(
                        "declare either a range (min and max) or choices, not both or neither"
                            .into(),
                    ));
                }
            }
            if let Some(w) = &p.when {
                let ok = params
                    .iter()
                    .any(|q| q.label() == w.param && q.choices.contains(&w.equals));
                if !ok {
                    return Err(invalid(format!(
                        "`when` names {:?} = {}, which is not a declared choice parameter with that choice",
                        w.param, w.equals
                    )));
                }
            }
        }
        Ok(())
    }

    /// True when `path` (relative, `/`-separated) may be changed by an agent.
    pub fn is_editable(&self, path: &str) -> bool {
        let matches = |patterns: &[String]| {
            patterns.iter().any(|p| {
                globset::Glob::new(p)
                    .map(|g| g.compile_matcher().is_match(path))
                    .unwrap_or(false)
            })
        };
        !matches(&self.project.protected) && matches(&self.project.editable)
    }
}

/// Render a TOML error with its line and column.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[project]
name = "movielens-demo"
production = "main"
editable = ["pipeline.toml", "scripts/**/*.rhai"]
protected = ["recloop.toml", "eval/**"]

[commands]
offline_eval = "recloop rec eval --split validation --json"
holdout_eval = "recloop rec eval --split holdout --json"

[metrics]
primary   = { name = "ndcg@10", direction = "increase", min_effect = 0.002 }
north_star = { name = "retention_d7", direction = "increase" }
guardrails = [
  { name = "latency_p99_ms", direction = "decrease", attention = 0.05, hard = 0.20 },
  { name = "coverage@10",    direction = "increase", attention = 0.05, hard = 0.25 },
]

[online]
platform = "simulator"
ramp = [0.01, 0.05, 0.20, 0.50]
alpha = 0.05
"#;

    #[test]
    fn parses_the_documented_example() {
        let m = Manifest::parse(EXAMPLE, Path::new("recloop.toml")).unwrap();
        assert_eq!(m.metrics.guardrails.len(), 2);
        assert!(m.llm.is_none());
        assert!(m.is_editable("pipeline.toml"));
        assert!(m.is_editable("scripts/score/a.rhai"));
        assert!(!m.is_editable("recloop.toml"));
        assert!(!m.is_editable("eval/holdout.json"));
        assert!(!m.is_editable("src/main.rs"));
    }

    #[test]
    fn personas_get_their_defaults_and_bad_ones_are_refused_by_field() {
        let parse = |extra: &str| {
            Manifest::parse(&format!("{EXAMPLE}\n{extra}"), Path::new("recloop.toml"))
                .map_err(|e| e.to_string())
        };
        let m = parse(
            "[[personas]]\nname = \"reward\"\n\n[[personas]]\nname = \"ranker\"\nlevers = [\"rerank.\"]\n",
        )
        .unwrap();
        let reward = m.persona("reward").unwrap();
        assert!(reward.allows("positives.min_rating") && !reward.allows("model.ease.lambda"));
        assert_eq!(reward.proxy.as_ref().unwrap().name, "mean_rating@10");
        assert!(reward.tools.contains(&"run_sql_query".to_string()));
        let custom = m.persona("ranker").unwrap();
        assert!(custom.allows("rerank.mmr_lambda") && custom.proxy.is_none());
        assert_eq!(m.personas().len(), 2);
        assert!(m.persona("optimizer").is_none());
        for (extra, needle) in [
            ("[[personas]]\nname = \"ranker\"\n", "personas[0].levers"),
            (
                "[[personas]]\nname = \"reward\"\ntools = [\"shell\"]\n",
                "personas[0].tools",
            ),
            (
                "[[personas]]\nname = \"reward\"\n[[personas]]\nname = \"reward\"\n",
                "personas[1].name",
            ),
            (
                "[[personas]]\nname = \"optimizer\"\nprimary_tolerance = 0.1\n",
                "personas[0].primary_tolerance",
            ),
            (
                "[[personas]]\nname = \"a b\"\nlevers = [\"x\"]\n",
                "personas[0].name",
            ),
        ] {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }

    #[test]
    fn the_dual_loop_keys_are_checked() {
        let parse = |extra: &str, ramp: &str| {
            let text = EXAMPLE.replace("ramp = [0.01, 0.05, 0.20, 0.50]", ramp);
            Manifest::parse(&format!("{text}{extra}"), Path::new("recloop.toml"))
        };
        let dual = "\n[run]\nmode = \"dual\"\nfast_trials = 6\n";
        let m = parse(dual, "ramp = [0.01, 0.05, 0.25]\nslots = 2").unwrap();
        assert_eq!((m.run.mode.as_str(), m.run.fast_trials), ("dual", Some(6)));
        assert_eq!(m.online.slots(), 2);
        // slots and fast trials mean nothing to the single loop
        let err = parse("", "ramp = [0.01, 0.25]\nslots = 2").unwrap_err();
        assert!(err.to_string().contains("online.slots"), "{err}");
        let err = parse("\n[run]\nfast_trials = 6\n", "ramp = [0.5]").unwrap_err();
        assert!(err.to_string().contains("run.fast_trials"), "{err}");
        // two experiments at 50 % each do not fit one layer
        let err = parse(dual, "ramp = [0.01, 0.5]\nslots = 2").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("200%") && msg.contains("at most 0.250"),
            "{msg}"
        );
        let err = parse("\n[run]\nmode = \"triple\"\n", "ramp = [0.5]").unwrap_err();
        assert!(err.to_string().contains("run.mode"), "{err}");
    }

    #[test]
    fn missing_primary_metric_is_named() {
        let text = EXAMPLE.replace(
            "primary   = { name = \"ndcg@10\", direction = \"increase\", min_effect = 0.002 }\n",
            "",
        );
        let err = Manifest::parse(&text, Path::new("ws/recloop.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ws/recloop.toml"), "{msg}");
        assert!(msg.contains("primary"), "{msg}");
    }

    #[test]
    fn syntax_error_reports_line() {
        let text = EXAMPLE.replace("alpha = 0.05", "alpha = = 0.05");
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 23"), "{msg}");
    }

    #[test]
    fn the_external_platform_is_checked_where_it_is_declared() {
        let err = |text: &str| {
            Manifest::parse(text, Path::new("recloop.toml"))
                .unwrap_err()
                .to_string()
        };
        let external = EXAMPLE.replace("platform = \"simulator\"", "platform = \"external\"");
        assert!(
            err(&external).contains("online.external"),
            "{}",
            err(&external)
        );
        let table =
            "\n[online.external]\nstart = \"a\"\ntraffic = \"b\"\nstop = \"c\"\nlogs = \"logs/\"\n";
        let m = Manifest::parse(&format!("{external}{table}"), Path::new("recloop.toml")).unwrap();
        let x = m.online.external.as_ref().unwrap();
        assert_eq!(
            (x.day_seconds, x.exposures.as_str()),
            (86_400.0, "exposures")
        );
        assert!(!m.online.runs_final_comparison());
        let bad = format!(
            "{external}{}",
            table.replace("stop = \"c\"", "stop = \" \"")
        );
        assert!(err(&bad).contains("online.external.stop"), "{}", err(&bad));
        let bad = format!("{external}{table}events = \"events; DROP TABLE x\"\n");
        assert!(
            err(&bad).contains("online.external.events"),
            "{}",
            err(&bad)
        );
        let metric = "\n[[online.metrics]]\nname = \"ctr\"\nkind = \"ratio\"\nevent = \"click\"\n";
        let bad = format!("{EXAMPLE}{metric}");
        assert!(
            err(&bad).contains("online.metrics[0]") && err(&bad).contains("denominator"),
            "{}",
            err(&bad)
        );
        let ok = format!("{EXAMPLE}{metric}denominator = \"view\"\n");
        let m = Manifest::parse(&ok, Path::new("recloop.toml")).unwrap();
        assert_eq!(m.online.metrics.len(), 1);
        assert!(m.online.runs_final_comparison());
    }

    #[test]
    fn ramp_must_increase() {
        let text = EXAMPLE.replace("[0.01, 0.05, 0.20, 0.50]", "[0.05, 0.01]");
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("online.ramp"), "{msg}");
    }

    #[test]
    fn attention_above_hard_is_rejected() {
        let text = EXAMPLE.replace(
            "attention = 0.05, hard = 0.20",
            "attention = 0.5, hard = 0.20",
        );
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("attention threshold"), "{msg}");
    }

    #[test]
    fn absolute_guardrail_limits_parse_and_must_fit_the_direction() {
        let text = EXAMPLE.replace(
            "attention = 0.05, hard = 0.20",
            "attention_max = 2.0, max = 5.0",
        );
        let m = Manifest::parse(&text, Path::new("recloop.toml")).unwrap();
        assert_eq!(m.metrics.guardrails[0].max, Some(5.0));
        assert_eq!(m.metrics.guardrails[0].hard, None);
        let text = EXAMPLE.replace("attention = 0.05, hard = 0.20", "min = 1.0");
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not fit direction"), "{msg}");
        let text = EXAMPLE.replace(", attention = 0.05, hard = 0.20", "");
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sets no limit"), "{msg}");
    }

    #[test]
    fn evolve_section_defaults_parses_and_rejects_what_would_do_nothing() {
        let m = Manifest::parse(EXAMPLE, Path::new("recloop.toml")).unwrap();
        assert_eq!(m.evolve.every, 0, "off unless asked for");
        assert_eq!(m.evolve.agents, ["develop"]);
        assert_eq!(m.evolve.rounds, 1);
        let text = format!(
            "{EXAMPLE}\n[evolve]\nevery = 3\nrounds = 2\nagents = [\"develop\", \"brainstorm\"]\n"
        );
        let m = Manifest::parse(&text, Path::new("recloop.toml")).unwrap();
        assert_eq!((m.evolve.every, m.evolve.rounds), (3, 2));
        assert_eq!(m.evolve.agents, ["develop", "brainstorm"]);
        for (section, field) in [
            ("every = 1\nagents = [\"evaluate\"]", "evolve.agents"),
            ("every = 1\nagents = []", "evolve.agents"),
            ("every = 2\nrounds = 0", "evolve.rounds"),
            ("every = 1\nround = 2", "round"),
        ] {
            let text = format!("{EXAMPLE}\n[evolve]\n{section}\n");
            let msg = Manifest::parse(&text, Path::new("recloop.toml"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "{section}: {msg}");
        }
    }

    #[test]
    fn workers_section_defaults_parse_and_bad_values_name_their_key() {
        let m = Manifest::parse(EXAMPLE, Path::new("recloop.toml")).unwrap();
        assert_eq!(m.workers, WorkersSection::default());
        let w = Manifest::parse(
            &format!("{EXAMPLE}\n[workers]\nremote = \"origin\"\nlease_ttl_s = 3\npoll_s = 0.2\n"),
            Path::new("recloop.toml"),
        )
        .unwrap()
        .workers;
        assert_eq!(
            (w.remote.as_deref(), w.lease_ttl_s, w.poll_s),
            (Some("origin"), 3.0, 0.2)
        );
        for (body, key) in [
            ("lease_ttl_s = 0", "workers.lease_ttl_s"),
            ("poll_s = 0", "workers.poll_s"),
            ("lease_ttl_s = 2\npoll_s = 5", "workers.poll_s"),
            ("remote = \" \"", "workers.remote"),
        ] {
            let err = Manifest::parse(
                &format!("{EXAMPLE}\n[workers]\n{body}\n"),
                Path::new("recloop.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
    }

    #[test]
    fn executor_section_parses_and_bad_values_name_their_key() {
        let m = Manifest::parse(EXAMPLE, Path::new("recloop.toml")).unwrap();
        assert!(m.executor.is_none());
        let text = format!(
            "{EXAMPLE}\n[executor]\nkind = \"slurm\"\npartition = \"gpu\"\ncpus = 4\n\
             memory_mib = 8000\ntime_limit_s = 3600\nmax_attempts = 2\nsbatch_args = [\"--qos=low\"]\n"
        );
        let x = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap()
            .executor
            .unwrap();
        assert_eq!(
            (x.kind.as_str(), x.partition.as_deref(), x.cpus),
            ("slurm", Some("gpu"), 4)
        );
        assert_eq!(
            (x.memory_mib, x.time_limit_s, x.max_attempts),
            (Some(8000), Some(3600), 2)
        );
        let local = Manifest::parse(
            &format!("{EXAMPLE}\n[executor]\nkind = \"local\"\n"),
            Path::new("recloop.toml"),
        )
        .unwrap();
        let ray = Manifest::parse(
            &format!("{EXAMPLE}\n[executor]\nkind = \"ray\"\naddress = \"http://h:8265\"\n"),
            Path::new("recloop.toml"),
        )
        .unwrap();
        assert_eq!(
            ray.executor.unwrap().address.as_deref(),
            Some("http://h:8265")
        );
        let x = local.executor.as_ref().unwrap();
        assert_eq!((x.cpus, x.max_attempts), (1, 3));
        assert_eq!(x.time_limit(&local.commands), local.commands.timeout_s);
        assert_eq!(x.memory(&local.sandbox), local.sandbox.memory_mib);
        for (body, key) in [
            (
                "kind = \"local\"\naddress = \"http://h:8265\"",
                "executor.address",
            ),
            ("kind = \"ray\"\naddress = \"h:8265\"", "executor.address"),
            ("kind = \"k8s\"", "executor.kind"),
            (
                "kind = \"local\"\npartition = \"gpu\"",
                "executor.partition",
            ),
            (
                "kind = \"slurm\"\npartition = \"a b\"",
                "executor.partition",
            ),
            (
                "kind = \"local\"\nsbatch_args = [\"-x\"]",
                "executor.sbatch_args",
            ),
            ("kind = \"slurm\"\ncpus = 0", "executor.cpus"),
            (
                "kind = \"slurm\"\nmax_attempts = 0",
                "executor.max_attempts",
            ),
            (
                "kind = \"slurm\"\ntime_limit_s = 0",
                "executor.time_limit_s",
            ),
            ("kind = \"slurm\"\npoll_s = 0.0", "executor.poll_s"),
            ("kind = \"slurm\"\npartiton = \"x\"", "partiton"),
            ("partition = \"x\"", "kind"),
        ] {
            let text = format!("{EXAMPLE}\n[executor]\n{body}\n");
            let msg = Manifest::parse(&text, Path::new("recloop.toml"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(key), "{body}: {msg}");
        }
    }

    #[test]
    fn platform_none_is_accepted_and_unknown_platforms_are_named() {
        let text = EXAMPLE.replace("platform = \"simulator\"", "platform = \"none\"");
        assert!(Manifest::parse(&text, Path::new("recloop.toml")).is_ok());
        let text = EXAMPLE.replace("platform = \"simulator\"", "platform = \"optimizely\"");
        let msg = Manifest::parse(&text, Path::new("recloop.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("optimizely") && msg.contains("none"), "{msg}");
    }
}
