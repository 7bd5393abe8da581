//! `recloop rec ...`: evaluate a workspace's pipeline, benchmark the built-in models.

use crate::choices::{ProtocolArg, RatingsDatasetArg, SplitArg};
use anyhow::Context;
use clap::Subcommand;
use recloop_rec::pipeline::evaluate_workspace;
use std::path::PathBuf;

/// Subcommands of `recloop rec`.
#[derive(Subcommand)]
pub enum Command {
    /// Train what `pipeline.toml` says on the train split and evaluate it with full ranking.
    Eval {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Which split to score.
        #[arg(long, value_enum, default_value_t = SplitArg::Validation)]
        split: SplitArg,
        /// Print one JSON object of metrics (the default output is `name value` lines).
        #[arg(long)]
        json: bool,
    },
    /// Fit `pipeline.toml` on the train split and print each trained model's own training
    /// objective per user (data term, regularization, their sum) and the same loss on the
    /// validation split (what the `compute_loss` tool answers).
    Loss {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Print JSON (the default output is a table).
        #[arg(long)]
        json: bool,
    },
    /// Dry run: train and score `pipeline.toml` (and its script) end to end on a small generated
    /// sample; prints one JSON object (the `check` gate of the MovieLens example).
    Check {
        /// Workspace directory (holds `pipeline.toml` and `eval/eval.toml`).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Fit and evaluate every built-in model with the anchors' hyper-parameters on one dataset
    /// and protocol; report median fit and evaluation seconds and the metrics per model.
    Bench {
        /// Dataset (fetched if absent).
        #[arg(long, value_enum, default_value_t = RatingsDatasetArg::Ml1m)]
        dataset: RatingsDatasetArg,
        /// Splitting protocol.
        #[arg(long, value_enum, default_value_t = ProtocolArg::A)]
        protocol: ProtocolArg,
        /// Repetitions per model (medians are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seed of the split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only these models (comma-separated: mostpop,itemknn,ease,ials,bpr).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Print one JSON object keyed by model name (the default output is a table).
        #[arg(long)]
        json: bool,
    },
    /// Research yield: the built-in brain, random search and (when `python3` can import
    /// `optuna`) Optuna's TPE search the same ranges from the MovieLens example's MostPop start,
    /// same trial budget and seeds; prints the best validation value after 10, 15 and `--trials`
    /// trials (mean, median, min, max over seeds).
    SearchBench {
        /// Dataset of the example workspace (fetched if absent).
        #[arg(long, value_enum, default_value_t = RatingsDatasetArg::Ml1m)]
        dataset: RatingsDatasetArg,
        /// Trials per seed.
        #[arg(long, default_value_t = 30)]
        trials: usize,
        /// Seeds (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2, 3, 4, 5])]
        seeds: Vec<u64>,
        /// Searches to run (comma-separated: builtin, random, optuna).
        #[arg(long, value_delimiter = ',', default_values_t = ["builtin".to_string(), "random".to_string(), "optuna".to_string()])]
        searches: Vec<String>,
        /// Also print every trial's change and value.
        #[arg(long)]
        trace: bool,
    },
}

/// Execute a `recloop rec` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::SearchBench {
            dataset,
            trials,
            seeds,
            searches,
            trace,
        } => search_bench(dataset, trials, &seeds, &searches, trace),
        Command::Eval {
            workspace,
            split,
            json,
        } => {
            let metrics = evaluate_workspace(&workspace, split.into())
                .with_context(|| format!("evaluating workspace {}", workspace.display()))?;
            if json {
                println!("{}", serde_json::to_string(&metrics)?);
            } else {
                for (k, v) in &metrics {
                    println!("{k:<20} {v:.6}");
                }
            }
            Ok(())
        }
        Command::Loss { workspace, json } => {
            let objectives = recloop_rec::pipeline::objectives_workspace(&workspace)
                .with_context(|| format!("fitting workspace {}", workspace.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&objectives)?);
                return Ok(());
            }
            println!(
                "{:<12} {:<8} {:>12} {:>14} {:>15} {:>15}",
                "model",
                "kind",
                "train_loss",
                "regularization",
                "train_objective",
                "validation_loss"
            );
            for m in &objectives {
                match &m.objective {
                    Some(o) => println!(
                        "{:<12} {:<8} {:>12.4} {:>14.4} {:>15.4} {:>15.4}",
                        m.model,
                        m.kind,
                        o.train_loss,
                        o.regularization,
                        o.train_objective,
                        o.validation_loss
                    ),
                    None => println!(
                        "{:<12} {:<8} (count-based: no training objective)",
                        m.model, m.kind
                    ),
                }
            }
            Ok(())
        }
        Command::Check { workspace } => {
            let metrics = recloop_rec::pipeline::dry_run_workspace(&workspace)
                .with_context(|| format!("dry run of workspace {}", workspace.display()))?;
            let (users, items) = recloop_rec::pipeline::DRY_RUN_SIZE;
            let mut out = serde_json::Map::new();
            out.insert("dry_run_users".into(), users.into());
            out.insert("dry_run_items".into(), items.into());
            for (k, v) in metrics {
                out.insert(format!("dry_run_{k}"), serde_json::json!(v));
            }
            println!("{}", serde_json::Value::Object(out));
            Ok(())
        }
        Command::Bench {
            dataset,
            protocol,
            runs,
            seed,
            models,
            json,
        } => {
            let opts = recloop_rec::bench::BenchOptions {
                dataset: dataset.into(),
                protocol: protocol.into(),
                runs,
                seed,
                models,
            };
            let report = recloop_rec::bench::run(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_bench_table(&report);
            }
            Ok(())
        }
    }
}

/// One line per model: median fit and evaluation seconds and the headline metrics.
fn print_bench_table(report: &serde_json::Value) {
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "model", "fit_s", "eval_s", "ndcg@10", "recall@20", "hr@10"
    );
    if let Some(models) = report.as_object() {
        for (name, m) in models {
            let get = |k: &str| m.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            println!(
                "{:<10} {:>9.3} {:>9.3} {:>9.4} {:>10.4} {:>9.4}",
                name,
                get("fit_s"),
                get("eval_s"),
                get("ndcg@10"),
                get("recall@20"),
                get("hr@10")
            );
        }
    }
}

/// The Optuna side of `recloop rec search-bench` (run with the machine's `python3`).
const OPTUNA_SEARCH: &str = include_str!("assets/optuna_search.py");

fn search_bench(
    dataset: RatingsDatasetArg,
    trials: usize,
    seeds: &[u64],
    searches: &[String],
    trace: bool,
) -> anyhow::Result<()> {
    for s in searches {
        anyhow::ensure!(
            matches!(s.as_str(), "builtin" | "random" | "optuna"),
            "--searches: unknown search {s:?} (builtin, random, optuna)"
        );
    }
    let dir = std::env::temp_dir().join(format!("recloop-search-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = match dataset {
        RatingsDatasetArg::Ml100k => "ml-100k",
        RatingsDatasetArg::Ml1m => "ml-1m",
    };
    let opts = recloop_agents::example::ExampleOptions {
        synthetic: None,
        dataset: Some(name.into()),
        platform: Some("none".into()),
        generalist: true,
    };
    recloop_agents::example::init_example("movielens", &dir, &opts, None)
        .with_context(|| format!("writing the MovieLens example into {}", dir.display()))?;
    let checkpoints: Vec<usize> = [10, 15, trials]
        .into_iter()
        .filter(|c| *c <= trials)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let brains: Vec<&str> = searches
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "optuna")
        .collect();
    let started = std::time::Instant::now();
    let mut report =
        recloop_agents::bench::bench_brains(&dir, trials, seeds, &checkpoints, &brains)?;
    let brains_s = started.elapsed().as_secs_f64();
    if searches.iter().any(|s| s == "optuna") {
        match optuna_search(&dir, trials, seeds, &checkpoints, &report.metric)? {
            Some(per_seed) => {
                report.best.insert("optuna-tpe".into(), per_seed);
            }
            None => println!(
                "optuna: skipped (python3 cannot import optuna; `pip install optuna` to compare)"
            ),
        }
    }
    println!("dataset {name}, {trials} trials, MovieLens example from its pipeline.toml");
    if trace {
        print!("{report:#}");
    } else {
        print!("{report}");
    }
    println!(
        "elapsed {:.0} s ({brains_s:.0} s for {brains:?})",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Optuna's TPE over the same ranges, each trial scored by this binary's `rec eval`; `None`
/// when `python3` cannot import `optuna`.
fn optuna_search(
    dir: &std::path::Path,
    trials: usize,
    seeds: &[u64],
    checkpoints: &[usize],
    metric: &str,
) -> anyhow::Result<Option<Vec<Vec<f64>>>> {
    let has_optuna = std::process::Command::new("python3")
        .args(["-c", "import optuna"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_optuna {
        return Ok(None);
    }
    let script = dir.join("optuna_search.py");
    std::fs::write(&script, OPTUNA_SEARCH)
        .with_context(|| format!("writing {}", script.display()))?;
    let space = dir.join("space.json");
    std::fs::write(&space, recloop_agents::space::ranges_json().to_string())
        .with_context(|| format!("writing {}", space.display()))?;
    let exe = std::env::current_exe().context("locating this recloop binary")?;
    let join = |v: Vec<String>| v.join(",");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("--recloop")
        .arg(&exe)
        .arg("--workspace")
        .arg(dir)
        .arg("--space")
        .arg(&space)
        .args(["--trials", &trials.to_string()])
        .args(["--seeds", &join(seeds.iter().map(u64::to_string).collect())])
        .args([
            "--checkpoints",
            &join(checkpoints.iter().map(usize::to_string).collect()),
        ])
        .args(["--metric", metric])
        .output()
        .context("running python3 optuna_search.py")?;
    anyhow::ensure!(
        out.status.success(),
        "the Optuna search failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the Optuna search printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let per_seed: Vec<Vec<f64>> = serde_json::from_value(parsed["per_seed"].clone())
        .context("the Optuna search's per_seed is not a list of lists of numbers")?;
    Ok(Some(per_seed))
}
