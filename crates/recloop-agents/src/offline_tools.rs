//! The offline tools a persona measures a candidate pipeline with before proposing it, in-process
//! on the workspace's data and seed (the sealed holdout is never offered):
//! - `compute_eval`: the built-in recommender's offline metrics (a named proxy such as
//!   `mean_rating@10`, or the primary) on the validation split;
//! - `compute_loss`: each trained model's own training objective, on the training rows and on
//!   the validation split.

use recloop_rec::pipeline::{
    EvalConfig, EvalSplit, ModelObjective, PIPELINE_FILE, PipelineData, PipelineSpec,
    evaluate_spec, load_data, objectives_spec,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Metrics `compute_eval` returns when the call names none.
const DEFAULT_METRICS: [&str; 3] = ["ndcg@10", "mean_rating@10", "coverage@10"];

/// The names of the tools [`OfflineTools`] answers.
pub const OFFLINE_TOOLS: [&str; 2] = ["compute_eval", "compute_loss"];

/// `compute_eval` and `compute_loss` over one workspace (its data is loaded on the first call).
pub struct OfflineTools {
    workspace: PathBuf,
    data: OnceLock<std::result::Result<(PipelineData, u64), String>>,
}

/// The candidate's whole `pipeline.toml`, as both tools take it.
const PIPELINE_ARG: &str =
    "`pipeline`: the candidate's whole pipeline.toml (omit it to measure production).";

impl OfflineTools {
    /// The tools for `workspace` (a checkout of production with `pipeline.toml` and
    /// `eval/eval.toml`); `None` when the workspace is not the built-in recommender.
    pub fn for_workspace(workspace: &Path) -> Option<OfflineTools> {
        (workspace.join(PIPELINE_FILE).is_file()
            && workspace
                .join(recloop_rec::pipeline::EVAL_CONFIG_FILE)
                .is_file())
        .then(|| OfflineTools {
            workspace: workspace.to_path_buf(),
            data: OnceLock::new(),
        })
    }

    /// The tools' definitions: (name, description, JSON Schema of the arguments).
    pub fn definitions() -> Vec<(String, String, Value)> {
        vec![
            (
                "compute_eval".into(),
                format!(
                    "Evaluate a candidate pipeline offline on the validation split (the same \
                     data, seed and code as the real evaluation; the holdout stays sealed) and \
                     return the named metrics, with production's for comparison. {PIPELINE_ARG} \
                     `metrics`: names such as ndcg@10, recall@10, coverage@10, mean_rating@10 \
                     (the mean training rating of the top 10: a loss-independent proxy of \
                     quality), latency_p99_ms."
                ),
                json!({"type": "object", "properties": {
                    "pipeline": {"type": "string"},
                    "metrics": {"type": "array", "items": {"type": "string"}}
                }}),
            ),
            (
                "compute_loss".into(),
                format!(
                    "Fit a candidate pipeline on the training split and return each trained \
                     model's own training objective (EASE: squared reconstruction error + \
                     λ‖B‖²; iALS: confidence-weighted squared error + L2; BPR: pairwise \
                     log-loss + L2), per user: `train_loss` and `regularization` (their sum, \
                     `train_objective`, is what fitting minimized) and `validation_loss`, the \
                     same data term on the validation split (lower generalizes better by the \
                     model's own measure), with production's models for comparison. Count-based \
                     models (mostpop, itemknn) have no objective. Compare a model with \
                     production's model of the same kind; train and validation values are on \
                     different scales. {PIPELINE_ARG}"
                ),
                json!({"type": "object", "properties": {
                    "pipeline": {"type": "string"}
                }}),
            ),
        ]
    }

    /// Answer a call of one of [`OFFLINE_TOOLS`] (`None` for any other name); errors are
    /// returned to the model as tool errors.
    pub fn call(&self, name: &str, args: &Value) -> Option<std::result::Result<String, String>> {
        match name {
            "compute_eval" => Some(self.compute_eval(args)),
            "compute_loss" => Some(self.compute_loss(args)),
            _ => None,
        }
    }

    /// `measure` of the candidate (production when the call names none) and of production.
    fn beside_production<T: Clone>(
        &self,
        args: &Value,
        measure: impl Fn(&PipelineSpec) -> std::result::Result<T, String>,
    ) -> std::result::Result<(T, T), String> {
        let production =
            PipelineSpec::load_workspace(&self.workspace).map_err(|e| e.to_string())?;
        let candidate = match args.get("pipeline").and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => PipelineSpec::parse(
                text,
                Path::new("candidate pipeline.toml"),
                Some(&self.workspace),
            )
            .map_err(|e| e.to_string())?,
            _ => production.clone(),
        };
        let measured = measure(&candidate)?;
        let baseline = if candidate == production {
            measured.clone()
        } else {
            measure(&production)?
        };
        Ok((measured, baseline))
    }

    fn compute_eval(&self, args: &Value) -> std::result::Result<String, String> {
        let metrics: Vec<String> = match args.get("metrics").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
        };
        let (measured, baseline) = self.beside_production(args, |spec| self.measure(spec))?;
        let mut out = serde_json::Map::new();
        for m in &metrics {
            let (Some(c), Some(p)) = (measured.get(m), baseline.get(m)) else {
                return Err(format!(
                    "unknown metric {m:?}; the evaluation reports {}",
                    measured.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            out.insert(
                m.clone(),
                json!({"candidate": c, "production": p, "change": c - p}),
            );
        }
        Ok(Value::Object(out).to_string())
    }

    fn compute_loss(&self, args: &Value) -> std::result::Result<String, String> {
        let (measured, baseline) = self.beside_production(args, |spec| self.objectives(spec))?;
        Ok(json!({"candidate": measured, "production": baseline}).to_string())
    }

    fn loaded(&self) -> std::result::Result<(&PipelineData, u64), String> {
        let loaded = self.data.get_or_init(|| {
            let config = EvalConfig::load_workspace(&self.workspace).map_err(|e| e.to_string())?;
            let seed = config.seed;
            load_data(&config)
                .map(|d| (d, seed))
                .map_err(|e| e.to_string())
        });
        loaded.as_ref().map(|(d, s)| (d, *s)).map_err(Clone::clone)
    }

    fn measure(&self, spec: &PipelineSpec) -> std::result::Result<BTreeMap<String, f64>, String> {
        let (data, seed) = self.loaded()?;
        evaluate_spec(
            spec,
            Some(&self.workspace),
            data,
            EvalSplit::Validation,
            seed,
        )
        .map_err(|e| e.to_string())
    }

    fn objectives(&self, spec: &PipelineSpec) -> std::result::Result<Vec<ModelObjective>, String> {
        let (data, seed) = self.loaded()?;
        objectives_spec(spec, Some(&self.workspace), data, seed).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_candidate_against_production_and_refuses_unknown_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        crate::example::synthetic_example(tmp.path(), 120, 90).unwrap();
        let tool = OfflineTools::for_workspace(tmp.path()).unwrap();
        let candidate =
            "[[models]]\nname = \"pop\"\nkind = \"mostpop\"\n\n[positives]\nmin_rating = 4.0\n";
        let out: Value = serde_json::from_str(
            &tool
                .call(
                    "compute_eval",
                    &json!({"pipeline": candidate, "metrics": ["mean_rating@10", "ndcg@10"]}),
                )
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let mr = &out["mean_rating@10"];
        assert!(mr["candidate"].as_f64().unwrap() > 0.0, "{out}");
        assert!(mr["production"].as_f64().unwrap() > 0.0, "{out}");
        // popularity among interactions rated ≥ 4 recommends better-rated items
        assert!(mr["change"].as_f64().unwrap() > 0.0, "{out}");
        let err = tool
            .call("compute_eval", &json!({"metrics": ["nope@10"]}))
            .unwrap()
            .unwrap_err();
        assert!(
            err.contains("unknown metric") && err.contains("ndcg@10"),
            "{err}"
        );
        let err = tool
            .call(
                "compute_loss",
                &json!({"pipeline": "[[models]]\nname = \"x\"\nkind = \"nope\"\n"}),
            )
            .unwrap()
            .unwrap_err();
        assert!(err.contains("candidate pipeline.toml"), "{err}");
        assert!(tool.call("run_sql_query", &json!({})).is_none());
        assert!(OfflineTools::for_workspace(Path::new("/nonexistent")).is_none());
    }

    #[test]
    fn reports_each_trained_models_objective_against_production() {
        let tmp = tempfile::tempdir().unwrap();
        crate::example::synthetic_example(tmp.path(), 120, 90).unwrap();
        let tool = OfflineTools::for_workspace(tmp.path()).unwrap();
        let ease = |lambda: f64| {
            format!(
                "[[models]]\nname = \"e\"\nkind = \"ease\"\nparams = {{ lambda = {lambda:.1} }}\n\n[[models]]\nname = \"pop\"\nkind = \"mostpop\"\n"
            )
        };
        let loss = |lambda: f64| -> Value {
            serde_json::from_str(
                &tool
                    .call("compute_loss", &json!({"pipeline": ease(lambda)}))
                    .unwrap()
                    .unwrap(),
            )
            .unwrap()
        };
        let tight = loss(5.0);
        let loose = loss(5000.0);
        let objective =
            |v: &Value, field: &str| v["candidate"][0]["objective"][field].as_f64().unwrap();
        assert_eq!(tight["candidate"][0]["kind"], "ease", "{tight}");
        // a count-based model minimizes nothing
        assert!(tight["candidate"][1]["objective"].is_null(), "{tight}");
        // ridge: a smaller λ fits the training rows more closely
        assert!(
            objective(&tight, "train_loss") < objective(&loose, "train_loss"),
            "{tight} {loose}"
        );
        for v in [&tight, &loose] {
            let sum = objective(v, "train_loss") + objective(v, "regularization");
            assert!((objective(v, "train_objective") - sum).abs() < 1e-9, "{v}");
            assert!(objective(v, "validation_loss").is_finite(), "{v}");
            assert!(
                v["candidate"][0]["objective"]["validation_users"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
        }
        // production is measured beside the candidate
        assert!(tight["production"].is_array(), "{tight}");
        assert_eq!(loss(5.0), tight, "deterministic");
    }
}
