//! The real ML-1M (fetched through the library into `$RECLOOP_DATA` or the user cache) under
//! protocol B must reproduce the anchors (shared/reference/anchors.md, "Protocol B") within
//! ±0.01 NDCG@10 for MostPop, ItemKNN, iALS and EASE with the anchors' hyper-parameters; the
//! second anchor number, RecBole's recall@10 (hits / |test|), is checked as well. The split is
//! random, so three seeds are averaged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::bench::{anchor_params, build_model};
use recloop_rec::data::{self, DatasetName};
use recloop_rec::eval::Evaluator;
use recloop_rec::split::{self, Protocol};

/// (model, NDCG@10, RecBole recall@10) measured by the anchors.
const ANCHORS: [(&str, f64, f64); 4] = [
    ("mostpop", 0.1267, 0.0773),
    ("itemknn", 0.2231, 0.1467),
    ("ials", 0.2490, 0.1735),
    ("ease", 0.2999, 0.2073),
];

#[test]
fn ml1m_protocol_b_matches_the_anchors() {
    let ds = data::load(DatasetName::Ml1m).expect("fetch/load ml-1m");
    let ds = Protocol::B.prepare(&ds);
    assert_eq!(ds.len(), 836_478, "ratings >= 3");
    let seeds = [0u64, 1, 2];
    let mut sums = [(0.0, 0.0); 4];
    for &seed in &seeds {
        let s = split::split(&ds, Protocol::B, seed).unwrap();
        let ev = Evaluator::benchmark(&s);
        for (sum, (name, _, _)) in sums.iter_mut().zip(ANCHORS) {
            let mut m = build_model(name, &anchor_params(name, DatasetName::Ml1m)).unwrap();
            m.fit(s.benchmark_fit()).unwrap();
            let metrics = ev.evaluate(m.as_ref()).unwrap();
            sum.0 += metrics["ndcg@10"];
            sum.1 += metrics["recall_of_all@10"];
        }
    }
    let n = seeds.len() as f64;
    let mut misses = Vec::new();
    for ((ndcg, recall), (name, want_ndcg, want_recall)) in sums.iter().zip(ANCHORS) {
        let (ndcg, recall) = (ndcg / n, recall / n);
        eprintln!(
            "{name}: ndcg@10 {ndcg:.4} (anchor {want_ndcg}), recall@10 {recall:.4} (anchor {want_recall})"
        );
        if (ndcg - want_ndcg).abs() > 0.01 || (recall - want_recall).abs() > 0.01 {
            misses.push(format!(
                "{name}: {ndcg:.4}/{recall:.4} vs {want_ndcg}/{want_recall}"
            ));
        }
    }
    assert!(
        misses.is_empty(),
        "outside ±0.01 of the anchors: {misses:?}"
    );
}
