//! Medians of loading ML-1M, splitting it (protocol A), fitting ItemKNN (K = 20) and full-ranking
//! evaluation of all users, plus the NDCG@10 reached. Run:
//! `cargo bench -p recloop-rec --bench data_eval -- [runs] [dataset] [protocol]`
//! (default 5, ml-1m, a). Protocol B reports the holdout (test) after fitting on train.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::Model;
use recloop_rec::data::{self, DatasetName};
use recloop_rec::eval::{Evaluator, FnScorer};
use recloop_rec::models::{itemknn::ItemKnn, mostpop::MostPop};
use recloop_rec::split::{self, Protocol};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let name: DatasetName = args.get(1).map_or(Ok(DatasetName::Ml1m), |a| a.parse())?;
    let protocol: Protocol = args.get(2).map_or(Ok(Protocol::A), |a| a.parse())?;
    let dir = data::ensure(name)?;
    let mut load = Vec::new();
    let mut ds = None;
    for _ in 0..runs {
        let (t, d) = time(|| data::movielens::load_dir(name, &dir));
        load.push(t);
        ds = Some(d?);
    }
    let ds = ds.ok_or("no runs")?;
    let ds = protocol.prepare(&ds);
    let (t_split, s) = time(|| split::split(&ds, protocol, 0));
    let s = s?;
    let train = s.benchmark_fit();
    let ev = Evaluator::benchmark(&s).with_genres(&ds.item_genres);

    let mut fit = Vec::new();
    let mut knn = ItemKnn::new(20)?;
    for _ in 0..runs {
        let mut m = ItemKnn::new(20)?;
        let (t, r) = time(|| m.fit(train));
        r?;
        fit.push(t);
        knn = m;
    }
    let mut pop = MostPop::new();
    pop.fit(train)?;
    // a precomputed-score model: the scores are a copy of a fixed vector
    let counts = pop.counts().to_vec();
    let pre = FnScorer(|_u: usize, out: &mut [f32]| out.copy_from_slice(&counts));
    let mut ev_pre = Vec::new();
    let mut ev_knn = Vec::new();
    let (mut m_pre, mut m_knn) = (None, None);
    for _ in 0..runs {
        let (t, m) = time(|| ev.evaluate(&pre));
        ev_pre.push(t);
        m_pre = Some(m?);
        let (t, m) = time(|| ev.evaluate(&knn));
        ev_knn.push(t);
        m_knn = Some(m?);
    }
    let (m_pre, m_knn) = (m_pre.ok_or("no runs")?, m_knn.ok_or("no runs")?);
    println!(
        "{name}: {} users × {} items, {} ratings; median of {runs} (threads {})",
        ds.n_users(),
        ds.n_items(),
        ds.len(),
        rayon::current_num_threads()
    );
    println!("load            {:.4} s", median(load));
    println!("split {:<9} {:.4} s", protocol.as_str(), t_split);
    println!("itemknn fit     {:.4} s", median(fit));
    println!(
        "eval mostpop    {:.4} s  ndcg@10 {:.4}  recall@10 {:.4}  recall@20 {:.4}  hr@10 {:.4}",
        median(ev_pre),
        m_pre["ndcg@10"],
        m_pre["recall@10"],
        m_pre["recall@20"],
        m_pre["hr@10"]
    );
    println!(
        "eval itemknn    {:.4} s  ndcg@10 {:.4}  recall@10 {:.4}  recall@20 {:.4}  hr@10 {:.4}  coverage@10 {:.4}",
        median(ev_knn),
        m_knn["ndcg@10"],
        m_knn["recall@10"],
        m_knn["recall@20"],
        m_knn["hr@10"],
        m_knn["coverage@10"]
    );
    Ok(())
}
