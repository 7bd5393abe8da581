//! Built-in brain (TPE) vs random search over the same mutation space: same trial budget, 5 seeds,
//! best validation NDCG@10 after 10, 15 and 30 trials.
//!
//! `cargo bench -p recloop-agents --bench brain` (synthetic data, about a minute);
//! `RECLOOP_BENCH_DATASET=ml-100k cargo bench -p recloop-agents --bench brain` for MovieLens-100K
//! (`RECLOOP_BENCH_TRIALS`, `RECLOOP_BENCH_BRAINS=builtin`, `RECLOOP_BENCH_TRACE=1` as in the test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_agents::bench::bench_brains;
use recloop_agents::example::{ExampleOptions, init_example};

fn main() {
    let dataset = std::env::var("RECLOOP_BENCH_DATASET").unwrap_or_else(|_| "synthetic".into());
    let trials: usize = std::env::var("RECLOOP_BENCH_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(30);
    let dir = std::env::temp_dir().join(format!("recloop-brain-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let opts = ExampleOptions {
        synthetic: (dataset == "synthetic").then_some((600, 400)),
        dataset: Some(dataset.clone()),
        platform: Some("none".into()),
        generalist: true,
    };
    init_example(
        "movielens",
        &dir,
        &opts,
        Some(recloop_agents::git::FIXED_CLOCK),
    )
    .expect("workspace");
    let seeds = [1u64, 2, 3, 4, 5];
    let checkpoints = [10usize, 15, trials];
    let brains_env =
        std::env::var("RECLOOP_BENCH_BRAINS").unwrap_or_else(|_| "builtin,random".into());
    let brains: Vec<&str> = brains_env.split(',').map(str::trim).collect();
    let started = std::time::Instant::now();
    let report = bench_brains(&dir, trials, &seeds, &checkpoints, &brains).expect("benchmark");
    println!("dataset {dataset}, {trials} trials");
    if std::env::var_os("RECLOOP_BENCH_TRACE").is_some() {
        print!("{report:#}");
    } else {
        print!("{report}");
    }
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    println!("elapsed {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}
