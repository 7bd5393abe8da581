//! Print policy outcomes on a generated world (tuning aid).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use recloop_sim::*;
use std::sync::Arc;
fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let users = args.first().copied().filter(|&u| u > 0).unwrap_or(5000);
    let days = args.get(1).copied().filter(|&u| u > 0).unwrap_or(45) as u32;
    let world = Arc::new(World::synthetic(2000, 1500, 1)?);
    println!("intercept {:.3}", world.params.click_intercept);
    let rel = relevance_policy(&world, 1.0, 7);
    let cb = clickbait_boost_policy(&world, 1.0, 7, 1.0);
    let div = diversity_policy(&world, 1.0, 7, 1);
    let div2 = diversity_policy(&world, 1.0, 7, 2);
    let cbo = clickbait_only_policy(&world);
    let pop = most_popular_policy(&world);
    let rnd = RandomPolicy;
    let exp = exploration_policy(&world, 1.0, 7, 0.5);
    let t = std::time::Instant::now();
    let out = scenario::compare_policies(
        world.clone(),
        &[&rel, &cb, &div, &div2, &cbo, &pop, &rnd, &exp],
        users,
        days,
        3,
    )?;
    for o in &out {
        println!(
            "{:16} ctr {:.4} hide/click {:.3} watch {:7.1} active {:5.2} d7 {:.3} d30 {:.3} churn {:.3} weekly {:?}",
            o.policy,
            o.ctr,
            o.hide_rate,
            o.watch_per_user,
            o.active_days,
            o.retention_d7,
            o.retention_d30,
            o.churned,
            o.weekly_ctr
                .iter()
                .map(|x| (x * 1e4).round() / 1e4)
                .collect::<Vec<_>>()
        );
    }
    eprintln!("{:?}", t.elapsed());
    let r = &out[0].weekly_ctr;
    for o in &out {
        println!(
            "{:16} lift by week {:?}",
            o.policy,
            o.weekly_ctr
                .iter()
                .zip(r)
                .map(|(a, b)| ((a / b - 1.0) * 1000.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}
