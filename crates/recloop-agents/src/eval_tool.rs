//! `compute_eval`: a persona measures a candidate pipeline before proposing it — the built-in
//! recommender's offline metrics (a named proxy such as `mean_rating@10`, or the primary) on the
//! validation split, in-process, with the workspace's data and seed. The sealed holdout is never
//! offered.

use recloop_rec::pipeline::{
    EvalConfig, EvalSplit, PIPELINE_FILE, PipelineData, PipelineSpec, evaluate_spec, load_data,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Metrics `compute_eval` returns when the call names none.
const DEFAULT_METRICS: [&str; 3] = ["ndcg@10", "mean_rating@10", "coverage@10"];

/// The `compute_eval` tool over one workspace (its data is loaded on the first call).
pub struct EvalTool {
    workspace: PathBuf,
    data: OnceLock<std::result::Result<(PipelineData, u64), String>>,
}

impl EvalTool {
    /// The tool for `workspace` (a checkout of production with `pipeline.toml` and
    /// `eval/eval.toml`); `None` when the workspace is not the built-in recommender.
    pub fn for_workspace(workspace: &Path) -> Option<EvalTool> {
        (workspace.join(PIPELINE_FILE).is_file()
            && workspace
                .join(recloop_rec::pipeline::EVAL_CONFIG_FILE)
                .is_file())
        .then(|| EvalTool {
            workspace: workspace.to_path_buf(),
            data: OnceLock::new(),
        })
    }

    /// The tool's definition: (name, description, JSON Schema of the arguments).
    pub fn definition() -> (String, String, Value) {
        (
            "compute_eval".into(),
            "Evaluate a candidate pipeline offline on the validation split (the same data, seed \
             and code as the real evaluation; the holdout stays sealed) and return the named \
             metrics, with production's for comparison. `pipeline`: the candidate's whole \
             pipeline.toml (omit it to measure production). `metrics`: names such as ndcg@10, \
             recall@10, coverage@10, mean_rating@10 (the mean training rating of the top 10: a \
             loss-independent proxy of quality), latency_p99_ms."
                .into(),
            json!({"type": "object", "properties": {
                "pipeline": {"type": "string"},
                "metrics": {"type": "array", "items": {"type": "string"}}
            }}),
        )
    }

    /// Answer a call; errors are returned to the model as tool errors.
    pub fn call(&self, args: &Value) -> std::result::Result<String, String> {
        let metrics: Vec<String> = match args.get("metrics").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
        };
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
        let measured = self.measure(&candidate)?;
        let baseline = if candidate == production {
            measured.clone()
        } else {
            self.measure(&production)?
        };
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

    fn measure(&self, spec: &PipelineSpec) -> std::result::Result<BTreeMap<String, f64>, String> {
        let loaded = self.data.get_or_init(|| {
            let config = EvalConfig::load_workspace(&self.workspace).map_err(|e| e.to_string())?;
            let seed = config.seed;
            load_data(&config)
                .map(|d| (d, seed))
                .map_err(|e| e.to_string())
        });
        let (data, seed) = loaded.as_ref().map_err(Clone::clone)?;
        evaluate_spec(
            spec,
            Some(&self.workspace),
            data,
            EvalSplit::Validation,
            *seed,
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_candidate_against_production_and_refuses_unknown_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        crate::example::synthetic_example(tmp.path(), 120, 90).unwrap();
        let tool = EvalTool::for_workspace(tmp.path()).unwrap();
        let candidate =
            "[[models]]\nname = \"pop\"\nkind = \"mostpop\"\n\n[positives]\nmin_rating = 4.0\n";
        let out: Value = serde_json::from_str(
            &tool
                .call(&json!({"pipeline": candidate, "metrics": ["mean_rating@10", "ndcg@10"]}))
                .unwrap(),
        )
        .unwrap();
        let mr = &out["mean_rating@10"];
        assert!(mr["candidate"].as_f64().unwrap() > 0.0, "{out}");
        assert!(mr["production"].as_f64().unwrap() > 0.0, "{out}");
        // popularity among interactions rated ≥ 4 recommends better-rated items
        assert!(mr["change"].as_f64().unwrap() > 0.0, "{out}");
        let err = tool.call(&json!({"metrics": ["nope@10"]})).unwrap_err();
        assert!(
            err.contains("unknown metric") && err.contains("ndcg@10"),
            "{err}"
        );
        let err = tool
            .call(&json!({"pipeline": "[[models]]\nname = \"x\"\nkind = \"nope\"\n"}))
            .unwrap_err();
        assert!(err.contains("candidate pipeline.toml"), "{err}");
        assert!(EvalTool::for_workspace(Path::new("/nonexistent")).is_none());
    }
}
