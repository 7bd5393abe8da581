//! `recloop rec eval`: train what `pipeline.toml` says on the train split and score the requested
//! split with full ranking (training items masked; validation items too for the holdout, holdout
//! items too for validation).

use super::config::EvalConfig;
use super::data::{PipelineData, check_shapes, load_data};
use super::report::{MAX_K, MetricsAccumulator, user_metrics};
use super::spec::PipelineSpec;
use super::trained::TrainedPipeline;
use crate::error::{RecError, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Which part of the data to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSplit {
    /// The validation split (agents see these numbers).
    Validation,
    /// The sealed holdout (agents only learn pass/fail).
    Holdout,
}

impl std::str::FromStr for EvalSplit {
    type Err = RecError;
    fn from_str(s: &str) -> Result<EvalSplit> {
        match s {
            "validation" => Ok(EvalSplit::Validation),
            "holdout" => Ok(EvalSplit::Holdout),
            other => Err(RecError::Spec {
                location: "--split".into(),
                reason: format!("unknown split {other:?} (expected validation or holdout)"),
            }),
        }
    }
}

/// Users whose single-user latency is sampled for `p99_score_ms`.
const LATENCY_SAMPLE: usize = 300;
/// Timed repetitions per sampled user.
const REPEATS: usize = 3;

/// Evaluate the workspace `dir` on `split`: reads `eval/eval.toml` and `pipeline.toml`, trains,
/// ranks, and returns the metrics JSON object's entries (`ndcg@10`, `recall@20`, `hr@10`,
/// `mrr@10`, `precision@10`, `coverage@10`, `novelty@10`, `diversity@10`, `popularity_bias@10`,
/// `users`, `fit_s`, `eval_s`, `p99_score_ms`, `latency_p99_ms`).
pub fn evaluate_workspace(dir: &Path, split: EvalSplit) -> Result<BTreeMap<String, f64>> {
    let config = EvalConfig::load_workspace(dir)?;
    let spec = PipelineSpec::load_workspace(dir)?;
    let data = load_data(&config)?;
    evaluate_spec(&spec, Some(dir), &data, split, config.seed)
}

/// Users and items of the dry run's sample.
pub const DRY_RUN_SIZE: (usize, usize) = (200, 150);

/// A dry run of the workspace `dir`: its `pipeline.toml` and scoring script trained and scored
/// end to end on a small generated sample (200 users, 150 items, the workspace's seed) instead of
/// its dataset. Catches what breaks at run time (a script error, a model that cannot fit) in
/// seconds, before the full evaluation.
pub fn dry_run_workspace(dir: &Path) -> Result<BTreeMap<String, f64>> {
    let mut config = EvalConfig::load_workspace(dir)?;
    config.dataset = "synthetic".into();
    (config.synthetic.users, config.synthetic.items) = DRY_RUN_SIZE;
    let spec = PipelineSpec::load_workspace(dir)?;
    let data = load_data(&config)?;
    evaluate_spec(&spec, Some(dir), &data, EvalSplit::Validation, config.seed)
}

/// Evaluate a specification on already loaded data: fit on the data that precedes `split`
/// (train for validation; `holdout_train` for the holdout), then score `split`.
pub fn evaluate_spec(
    spec: &PipelineSpec,
    workspace: Option<&Path>,
    data: &PipelineData,
    split: EvalSplit,
    seed: u64,
) -> Result<BTreeMap<String, f64>> {
    check_shapes(data, "workspace data")?;
    let fit_on = data.fit_data(split, &spec.positives);
    let pipeline = TrainedPipeline::fit(spec, workspace, &fit_on, &data.items, seed)?;
    let mut metrics = evaluate_trained(&pipeline, data, split)?;
    metrics.insert("fit_s".into(), pipeline.fit_seconds());
    Ok(metrics)
}

/// Score a trained pipeline on `split` (adds `eval_s`, `p99_score_ms` and `latency_p99_ms`).
pub fn evaluate_trained(
    pipeline: &TrainedPipeline,
    data: &PipelineData,
    split: EvalSplit,
) -> Result<BTreeMap<String, f64>> {
    let start = Instant::now();
    let test = match split {
        EvalSplit::Validation => &data.validation,
        EvalSplit::Holdout => &data.holdout,
    };
    let users: Vec<usize> = (0..test.n_users)
        .filter(|&u| !test.items_of(u).is_empty())
        .collect();
    let exclude_for = |u: usize| -> Vec<u32> {
        let mut ex = data.train.items_of(u).to_vec();
        match split {
            EvalSplit::Holdout => ex.extend_from_slice(data.validation.items_of(u)),
            // Holdout items are positives the model was never shown: ranking them high must not
            // count as a miss on validation. They stay sealed: only the metric is reported.
            EvalSplit::Validation => ex.extend_from_slice(data.holdout.items_of(u)),
        }
        ex
    };
    let popularity = pipeline.popularity();
    let genres = &data.items.genres;
    let ids: Vec<u32> = users.iter().map(|&u| u as u32).collect();
    let lists = pipeline.recommend_many(&ids, MAX_K, |u| exclude_for(u as usize))?;
    let per_user: Vec<(Vec<u32>, super::report::UserMetrics)> = users
        .par_iter()
        .zip(lists)
        .map(|(&u, list)| {
            let m = user_metrics(
                &list,
                test.items_of(u),
                popularity,
                data.train.n_users,
                genres,
            );
            (list, m)
        })
        .collect();
    let mut acc = MetricsAccumulator::new(pipeline.n_items());
    for (list, m) in &per_user {
        acc.add(list, m);
    }
    let mut out = acc.finish();
    out.insert(
        "mean_rating@10".into(),
        mean_rating_at(&per_user, &data.items, 10),
    );
    out.insert("eval_s".into(), start.elapsed().as_secs_f64());
    let p99 = latency_p99_ms(pipeline, data, &users)?;
    out.insert("p99_score_ms".into(), p99);
    out.insert("latency_p99_ms".into(), p99);
    Ok(out)
}

/// The mean training rating of the items in the top `k` of every list: a proxy for the quality
/// of what is recommended that does not depend on any model's loss (a reward change that makes
/// the models learn from liked items should raise it).
fn mean_rating_at<M>(lists: &[(Vec<u32>, M)], items: &super::ItemFeatures, k: usize) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (list, _) in lists {
        for &i in list.iter().take(k) {
            sum += f64::from(items.mean_rating_of(i));
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// 99th percentile of the time to recommend for one user (single thread), over an evenly spaced
/// sample of users, in milliseconds. Each user is timed `REPEATS` times and the fastest run
/// counts, so that preemption by other processes does not masquerade as pipeline latency.
pub fn latency_p99_ms(
    pipeline: &TrainedPipeline,
    data: &PipelineData,
    users: &[usize],
) -> Result<f64> {
    if users.is_empty() {
        return Ok(0.0);
    }
    let step = users.len().div_ceil(LATENCY_SAMPLE).max(1);
    let mut times = Vec::with_capacity(LATENCY_SAMPLE);
    for &u in users.iter().step_by(step) {
        let mut best = f64::INFINITY;
        for _ in 0..REPEATS {
            let t = Instant::now();
            let list = pipeline.recommend(u as u32, MAX_K, data.train.items_of(u))?;
            std::hint::black_box(list);
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        times.push(best);
    }
    times.sort_unstable_by(f64::total_cmp);
    let idx = ((times.len() as f64 * 0.99).ceil() as usize).clamp(1, times.len()) - 1;
    Ok(times[idx])
}
