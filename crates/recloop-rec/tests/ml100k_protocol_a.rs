//! The real ML-100K (fetched through the library into `$RECLOOP_DATA` or the user cache) under
//! protocol A must reproduce the anchors (shared/reference/anchors.md): MostPop NDCG@10 0.2216,
//! ItemKNN (cosine, K = 20) 0.3640; and the factor and linear models must reach the bars:
//! EASE (λ = 250, the anchors' ML-100K setting) NDCG@10 ≥ 0.43 (anchor 0.4393), iALS (64 factors,
//! 15 iterations) ≥ 0.34 (anchor 0.3545). The split is random, so several seeds are averaged and
//! a small tolerance allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::Model;
use recloop_rec::bench::{anchor_params, build_model};
use recloop_rec::data::{self, DatasetName};
use recloop_rec::eval::Evaluator;
use recloop_rec::models::{itemknn::ItemKnn, mostpop::MostPop};
use recloop_rec::split::{self, Protocol};

#[test]
fn ml100k_protocol_a_matches_the_anchors() {
    let ds = data::load(DatasetName::Ml100k).expect("fetch/load ml-100k");
    assert_eq!((ds.n_users(), ds.n_items(), ds.len()), (943, 1682, 100_000));
    assert_eq!(ds.genre_names.len(), 19, "{:?}", ds.genre_names);
    let seeds = [0u64, 1, 2];
    let (mut pop, mut knn, mut knn_recall) = (0.0, 0.0, 0.0);
    let (mut ease, mut ials) = (0.0, 0.0);
    for &seed in &seeds {
        let s = split::split(&ds, Protocol::A, seed).unwrap();
        // validation ∪ holdout is exactly the anchors' 20 % test set
        assert_eq!(s.benchmark_truth.nnz(), 20_000, "test size");
        assert_eq!(s.validation.nnz() + s.holdout.nnz(), 20_000);
        let ev = Evaluator::benchmark(&s).with_genres(&ds.item_genres);
        let mut m = MostPop::new();
        m.fit(s.benchmark_fit()).unwrap();
        pop += ev.evaluate(&m).unwrap()["ndcg@10"];
        let mut k = ItemKnn::new(20).unwrap();
        k.fit(s.benchmark_fit()).unwrap();
        let mk = ev.evaluate(&k).unwrap();
        knn += mk["ndcg@10"];
        knn_recall += mk["recall@20"];
        for (name, sum) in [("ease", &mut ease), ("ials", &mut ials)] {
            let mut m = build_model(name, &anchor_params(name, DatasetName::Ml100k)).unwrap();
            m.fit(s.benchmark_fit()).unwrap();
            *sum += ev.evaluate(m.as_ref()).unwrap()["ndcg@10"];
        }
        for key in [
            "coverage@10",
            "novelty@10",
            "diversity@10",
            "arp@10",
            "mrr@10",
        ] {
            assert!(mk[key].is_finite() && mk[key] > 0.0, "{key} = {}", mk[key]);
        }
    }
    let n = seeds.len() as f64;
    let (pop, knn, knn_recall) = (pop / n, knn / n, knn_recall / n);
    let (ease, ials) = (ease / n, ials / n);
    eprintln!(
        "mostpop ndcg@10 {pop:.4}, itemknn ndcg@10 {knn:.4} recall@20 {knn_recall:.4}, \
         ease ndcg@10 {ease:.4}, ials ndcg@10 {ials:.4}"
    );
    assert!(
        ease >= 0.43,
        "EASE NDCG@10 {ease:.4} < 0.43 (anchor 0.4393)"
    );
    assert!(
        ials >= 0.34,
        "iALS NDCG@10 {ials:.4} < 0.34 (anchor 0.3545)"
    );
    assert!(
        (pop - 0.2216).abs() < 0.008,
        "MostPop NDCG@10 {pop:.4} vs anchor 0.2216"
    );
    assert!(
        (knn - 0.3640).abs() < 0.010,
        "ItemKNN NDCG@10 {knn:.4} vs anchor 0.3640"
    );
    assert!(
        (knn_recall - 0.3751).abs() < 0.012,
        "ItemKNN Recall@20 {knn_recall:.4} vs 0.3751"
    );
}
