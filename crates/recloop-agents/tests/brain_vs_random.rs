//! Built-in brain (TPE) vs random search over the same mutation space, same budget, 5 seeds:
//! best validation NDCG@10 after 10, 15 and 30 trials. A quality measurement, not a speed one; ignored
//! by default because it trains 300 pipelines:
//!
//! `cargo test -p recloop-agents --test brain_vs_random -- --ignored --nocapture`
//! (`RECLOOP_BENCH_DATASET=ml-100k|ml-1m` for MovieLens; `RECLOOP_BENCH_TRIALS` to change 30,
//! `RECLOOP_BENCH_BRAINS=builtin` for one brain, `RECLOOP_BENCH_TRACE=1` to print every trial).
//! The same measurement in release mode: `cargo bench -p recloop-agents --bench brain`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_agents::bench::bench_brains;
use recloop_agents::example::{ExampleOptions, init_example};

#[test]
#[ignore = "trains 2 brains x 5 seeds x 30 pipelines; run explicitly"]
fn builtin_brain_vs_random_search() {
    let dataset = std::env::var("RECLOOP_BENCH_DATASET").unwrap_or_else(|_| "synthetic".into());
    let trials: usize = std::env::var("RECLOOP_BENCH_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let opts = ExampleOptions {
        synthetic: (dataset == "synthetic").then_some((600, 400)),
        dataset: Some(dataset.clone()),
        platform: Some("none".into()),
        generalist: true,
    };
    init_example(
        "movielens",
        dir.path(),
        &opts,
        Some(recloop_agents::git::FIXED_CLOCK),
    )
    .unwrap();
    let seeds = [1u64, 2, 3, 4, 5];
    let checkpoints = [10usize, 15, trials];
    let brains_env =
        std::env::var("RECLOOP_BENCH_BRAINS").unwrap_or_else(|_| "builtin,random".into());
    let brains: Vec<&str> = brains_env.split(',').map(str::trim).collect();
    let report = bench_brains(dir.path(), trials, &seeds, &checkpoints, &brains).unwrap();
    println!("dataset {dataset}, {trials} trials");
    if std::env::var_os("RECLOOP_BENCH_TRACE").is_some() {
        print!("{report:#}");
    } else {
        print!("{report}");
    }
    for ci in 0..report.checkpoints.len() {
        assert!(report.mean("builtin", ci) >= report.start);
    }
}
