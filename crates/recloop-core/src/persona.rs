//! Brainstorm personas (`[[personas]]`): specialists that each propose changes to one part of the
//! recommender with their own instructions, tools, model chain (`[llm.roles] <name>`) and,
//! optionally, their own offline judge.
//!
//! Three are built in for the built-in recommender (`pipeline.toml`) and need only their name:
//!
//! - `optimizer`: training hyper-parameters and solvers (`model.<label>.<param>`);
//! - `architecture`: model composition, blends, reranking and the scoring script
//!   (`candidates.switch.*`, `blend.*`, `rerank.*`, `script*`);
//! - `reward`: what the models learn from (`positives.*`: which interactions count as positives),
//!   judged offline by a loss-independent proxy (`mean_rating@10`) because a changed reward
//!   changes what the primary metric's loss rewards.
//!
//! A workspace can define its own: a name, the lever prefixes it may pull, its tools and
//! instructions, and an optional proxy.

use crate::metric::MetricSpec;
use serde::{Deserialize, Serialize};

/// Names of the tools a persona may be given.
pub const PERSONA_TOOLS: [&str; 4] = [
    "run_sql_query",
    "journal_search",
    "compute_eval",
    "compute_loss",
];

/// One `[[personas]]` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaSpec {
    /// Name; `optimizer`, `architecture` and `reward` have built-in defaults for every other
    /// field. Also the `[llm.roles]` key of its model chain (default: the brainstorm chain).
    pub name: String,
    /// Lever prefixes its proposals may pull (`model.`, `blend.`, `positives.`, or a declared
    /// parameter's name); admission rejects a proposal outside them.
    #[serde(default)]
    pub levers: Option<Vec<String>>,
    /// Tools offered to a language model in this persona (from [`PERSONA_TOOLS`]; the file
    /// reading tools are always offered).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// What the persona is for, added to the Brainstorm system prompt.
    #[serde(default)]
    pub instructions: Option<String>,
    /// An offline metric that judges this persona's candidates instead of the primary (which
    /// must then stay within `primary_tolerance` of production).
    #[serde(default)]
    pub proxy: Option<MetricSpec>,
    /// With a proxy: how much worse than production the primary may be offline.
    #[serde(default)]
    pub primary_tolerance: Option<f64>,
}

/// A persona with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persona {
    /// Name.
    pub name: String,
    /// Lever prefixes it may pull.
    pub levers: Vec<String>,
    /// Tools offered to a language model.
    pub tools: Vec<String>,
    /// Instructions for the system prompt.
    pub instructions: String,
    /// Offline proxy judging its candidates, if any.
    pub proxy: Option<MetricSpec>,
    /// With a proxy: tolerated offline loss on the primary.
    pub primary_tolerance: f64,
}

impl Persona {
    /// Whether `lever` is in this persona's scope.
    pub fn allows(&self, lever: &str) -> bool {
        self.levers.iter().any(|p| lever.starts_with(p.as_str()))
    }
}

/// The built-in persona called `name`, if there is one.
pub fn builtin(name: &str) -> Option<Persona> {
    let tools = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let levers = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Some(match name {
        "optimizer" => Persona {
            name: name.into(),
            levers: levers(&["model."]),
            tools: tools(&["compute_loss", "compute_eval", "journal_search"]),
            instructions: "You are the optimizer persona. Change only how the existing models are \
                           trained: their hyper-parameters and solvers (`[[models]]` params). \
                           Keep the model composition, blend, reranking and positives as they are."
                .into(),
            proxy: None,
            primary_tolerance: 0.0,
        },
        "architecture" => Persona {
            name: name.into(),
            levers: levers(&["candidates.switch.", "blend.", "rerank.", "script"]),
            tools: tools(&["compute_loss", "compute_eval", "journal_search"]),
            instructions: "You are the architecture persona. Change what the recommender is made \
                           of: which models are blended and with what weights and normalisation, \
                           the reranking stage, and the scoring script (code, not only numbers). \
                           Leave hyper-parameters of kept models and the positives alone."
                .into(),
            proxy: None,
            primary_tolerance: 0.0,
        },
        "reward" => Persona {
            name: name.into(),
            levers: levers(&["positives."]),
            tools: tools(&["run_sql_query", "journal_search", "compute_eval"]),
            instructions: "You are the reward persona. Change what the models learn from: which \
                           interactions count as positives (`[positives]` in pipeline.toml). \
                           Find in the exposure and event logs (run_sql_query) which behaviour \
                           predicts that users come back, and make the models learn from it. \
                           Your candidates are judged offline by a loss-independent proxy \
                           (mean_rating@10: the quality of what is recommended), because a \
                           changed reward changes what the ranking metric's loss rewards."
                .into(),
            proxy: Some(MetricSpec {
                name: "mean_rating@10".into(),
                direction: crate::Direction::Increase,
                min_effect: 0.01,
            }),
            primary_tolerance: 0.005,
        },
        _ => return None,
    })
}

impl PersonaSpec {
    /// This entry with the built-in defaults of its name filled in; a custom persona must name
    /// its levers. Errors name the field.
    pub fn resolve(&self) -> Result<Persona, (String, String)> {
        let base = builtin(&self.name);
        let levers = match (&self.levers, &base) {
            (Some(l), _) => l.clone(),
            (None, Some(b)) => b.levers.clone(),
            (None, None) => {
                return Err((
                    "levers".into(),
                    format!(
                        "persona {:?} is not built in (optimizer, architecture, reward): name the \
                         lever prefixes it may pull",
                        self.name
                    ),
                ));
            }
        };
        if levers.is_empty() || levers.iter().any(|l| l.trim().is_empty()) {
            return Err(("levers".into(), "must list non-empty lever prefixes".into()));
        }
        let tools = match (&self.tools, &base) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => b.tools.clone(),
            (None, None) => vec!["journal_search".into()],
        };
        if let Some(t) = tools.iter().find(|t| !PERSONA_TOOLS.contains(&t.as_str())) {
            return Err((
                "tools".into(),
                format!("unknown tool {t:?}; personas may use {PERSONA_TOOLS:?}"),
            ));
        }
        let proxy = self
            .proxy
            .clone()
            .or_else(|| base.as_ref().and_then(|b| b.proxy.clone()));
        let primary_tolerance = self
            .primary_tolerance
            .or_else(|| base.as_ref().map(|b| b.primary_tolerance))
            .unwrap_or(0.0);
        if !(primary_tolerance.is_finite() && primary_tolerance >= 0.0) {
            return Err((
                "primary_tolerance".into(),
                format!("must be a number ≥ 0, found {primary_tolerance}"),
            ));
        }
        if self.primary_tolerance.is_some() && proxy.is_none() {
            return Err((
                "primary_tolerance".into(),
                "applies only with a proxy (the primary judges personas without one)".into(),
            ));
        }
        Ok(Persona {
            name: self.name.clone(),
            levers,
            tools,
            instructions: self
                .instructions
                .clone()
                .or_else(|| base.map(|b| b.instructions))
                .unwrap_or_else(|| format!("You are the {} persona.", self.name)),
            proxy,
            primary_tolerance,
        })
    }
}
