//! The offline benchmark behind `recloop rec bench`: every built-in model with the anchors'
//! hyper-parameters (see `shared/reference/anchors.md`), fitted and evaluated `runs` times on one
//! dataset and protocol, reporting median (and minimum) fit and evaluation seconds plus the
//! metrics, as one JSON object keyed by model name.
//!
//! Models are fitted on [`Split::benchmark_fit`] and evaluated on [`Split::benchmark_truth`] with
//! all items ranked and training items masked (protocol A: fit on the 80 %, test on the 20 % of
//! every user — validation and holdout together).

use crate::Model;
use crate::data::{self, DatasetName};
use crate::error::{RecError, Result};
use crate::eval::Evaluator;
use crate::models::bpr::Bpr;
use crate::models::ease::Ease;
use crate::models::ials::Ials;
use crate::models::itemknn::ItemKnn;
use crate::models::mostpop::MostPop;
use crate::split::{self, Protocol, Split};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

/// The models of the benchmark, in report order.
pub const MODELS: [&str; 5] = ["mostpop", "itemknn", "ease", "ials", "bpr"];

/// What to benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Dataset (`ml-100k` or `ml-1m`).
    pub dataset: DatasetName,
    /// Splitting protocol.
    pub protocol: Protocol,
    /// Repetitions per model (the report gives medians); at least 1.
    pub runs: usize,
    /// Seed of the split (models use their own default seeds).
    pub seed: u64,
    /// Models to run (names of [`MODELS`]); empty means all.
    pub models: Vec<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dataset: DatasetName::Ml1m,
            protocol: Protocol::A,
            runs: 5,
            seed: 0,
            models: Vec::new(),
        }
    }
}

/// The anchors' hyper-parameters of `model` on `dataset` (EASE λ = 250 on ML-100K, 500 otherwise;
/// ItemKNN K = 20; iALS 64 factors, reg 0.05, alpha 1, 15 iterations; BPR its defaults).
pub fn anchor_params(model: &str, dataset: DatasetName) -> BTreeMap<String, f64> {
    let mut p = BTreeMap::new();
    match model {
        "itemknn" => {
            p.insert("k".into(), 20.0);
        }
        "ease" => {
            let lambda = if dataset == DatasetName::Ml100k {
                250.0
            } else {
                500.0
            };
            p.insert("lambda".into(), lambda);
        }
        "ials" => {
            p.insert("factors".into(), 64.0);
            p.insert("reg".into(), 0.05);
            p.insert("alpha".into(), 1.0);
            p.insert("iterations".into(), 15.0);
        }
        _ => {}
    }
    p
}

/// A fresh, unfitted model by benchmark name.
pub fn build_model(name: &str, params: &BTreeMap<String, f64>) -> Result<Box<dyn Model>> {
    Ok(match name {
        "mostpop" => Box::new(MostPop::from_params(params)?),
        "itemknn" => Box::new(ItemKnn::from_params(params)?),
        "ease" => Box::new(Ease::from_params(params)?),
        "ials" => Box::new(Ials::from_params(params)?),
        "bpr" => Box::new(Bpr::from_params(params)?),
        other => {
            return Err(RecError::Model {
                model: other.to_string(),
                reason: format!("unknown model; expected one of {}", MODELS.join(", ")),
            });
        }
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Benchmark one model on a prepared split.
pub fn bench_model(
    name: &str,
    params: &BTreeMap<String, f64>,
    split: &Split,
    runs: usize,
) -> Result<Value> {
    let train = split.benchmark_fit();
    let evaluator = Evaluator::benchmark(split);
    let mut fit_s = Vec::new();
    let mut eval_s = Vec::new();
    let mut metrics = BTreeMap::new();
    for _ in 0..runs.max(1) {
        let mut model = build_model(name, params)?;
        let t = Instant::now();
        model.fit(train)?;
        fit_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        metrics = evaluator.evaluate(model.as_ref())?;
        eval_s.push(t.elapsed().as_secs_f64());
    }
    let mut out = Map::new();
    out.insert("fit_s".into(), json!(median(&fit_s)));
    out.insert("fit_s_min".into(), json!(min(&fit_s)));
    out.insert("eval_s".into(), json!(median(&eval_s)));
    out.insert("eval_s_min".into(), json!(min(&eval_s)));
    out.insert("runs".into(), json!(fit_s.len()));
    out.insert("params".into(), json!(params));
    for (k, v) in metrics {
        out.insert(k, json!(v));
    }
    Ok(Value::Object(out))
}

/// Run the benchmark: load (fetching if needed) the dataset, split it, and benchmark each model.
/// Returns `{ "<model>": { "fit_s", "fit_s_min", "eval_s", "eval_s_min", "runs", "params",
/// "ndcg@10", "recall@20", "hr@10", … }, … }`.
pub fn run(opts: &BenchOptions) -> Result<Value> {
    let names: Vec<String> = if opts.models.is_empty() {
        MODELS.iter().map(|s| s.to_string()).collect()
    } else {
        opts.models.clone()
    };
    for n in &names {
        if !MODELS.contains(&n.as_str()) {
            return Err(RecError::Model {
                model: n.clone(),
                reason: format!("unknown model; expected one of {}", MODELS.join(", ")),
            });
        }
    }
    let ds = data::load(opts.dataset)?;
    let (_, split) = split::prepare_and_split(&ds, opts.protocol, opts.seed)?;
    let mut out = Map::new();
    for n in &names {
        let params = anchor_params(n, opts.dataset);
        out.insert(n.clone(), bench_model(n, &params, &split, opts.runs)?);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Interactions;

    #[test]
    fn median_and_min() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(min(&[4.0, 1.0]), 1.0);
    }

    #[test]
    fn unknown_model_is_an_error() {
        let e = build_model("svd", &BTreeMap::new())
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("expected one of mostpop"));
        let opts = BenchOptions {
            models: vec!["svd".into()],
            ..Default::default()
        };
        assert!(run(&opts).is_err());
    }

    #[test]
    fn every_model_builds_with_anchor_params() {
        let x = Interactions::from_pairs(3, 4, &[(0, 0), (0, 1), (1, 1), (2, 3)]);
        for m in MODELS {
            let mut model = build_model(m, &anchor_params(m, DatasetName::Ml1m)).unwrap();
            model.fit(&x).unwrap();
            assert!(model.score(0, 4).iter().all(|v| v.is_finite()), "{m}");
        }
    }
}
