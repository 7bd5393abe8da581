//! Sanity scenarios: the simulated world rewards what it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_sim::scenario::{PolicyOutcome, compare_policies};
use recloop_sim::{World, clickbait_boost_policy, diversity_policy, relevance_policy};
use std::sync::{Arc, OnceLock};

fn outcomes() -> &'static [PolicyOutcome] {
    static CELL: OnceLock<Vec<PolicyOutcome>> = OnceLock::new();
    CELL.get_or_init(compute)
}

fn compute() -> Vec<PolicyOutcome> {
    let world = Arc::new(World::synthetic(2000, 1500, 1).unwrap());
    let base = relevance_policy(&world, 1.0, 7);
    let bait = clickbait_boost_policy(&world, 1.0, 7, 1.0);
    let div = diversity_policy(&world, 1.0, 7, 1);
    compare_policies(world, &[&base, &bait, &div], 10_000, 42, 3).unwrap()
}

#[test]
fn clickbait_wins_ctr_and_loses_d30_retention() {
    let o = outcomes();
    let (base, bait) = (&o[0], &o[1]);
    assert!(bait.ctr > base.ctr * 1.05, "{} vs {}", bait.ctr, base.ctr);
    assert!(bait.retention_d30 < base.retention_d30 - 0.015);
    assert!(bait.hide_rate > base.hide_rate);
}

#[test]
fn diversity_wins_retention_at_a_small_ctr_cost() {
    let o = outcomes();
    let (base, div) = (&o[0], &o[2]);
    assert!(div.retention_d30 > base.retention_d30 + 0.015);
    assert!(
        div.ctr < base.ctr && div.ctr > base.ctr * 0.9,
        "{} vs {}",
        div.ctr,
        base.ctr
    );
}

#[test]
fn novelty_effect_fades_over_weeks() {
    // the diversified slates show novel topics: their early CTR lift fades as topics get familiar
    let o = outcomes();
    let (base, div) = (&o[0], &o[2]);
    let lift = |w: usize| div.weekly_ctr[w] / base.weekly_ctr[w] - 1.0;
    let early = lift(0);
    let late = 0.5 * (lift(4) + lift(5));
    assert!(early > late + 0.015, "early {early}, late {late}");
}
