//! Offline metrics of recommendation lists (the pipeline's output after reranking).
//!
//! Definitions (anchors.md, protocol A): per user with test items, binary relevance;
//! NDCG@10 with the ideal DCG over min(10, |test|); Recall@20 = hits / min(20, |test|);
//! HR@10 = any hit; MRR@10 = 1 / rank of the first hit; Precision@10 = hits / 10; averaged over
//! those users. Beyond accuracy, over the same users' top-10 lists: coverage@10 = distinct items /
//! catalogue size; novelty@10 = mean self-information −log2(p) with p = max(1, train count) /
//! users; diversity@10 = mean pairwise genre dissimilarity (1 − Jaccard); popularity_bias@10 =
//! mean share of training users who interacted with a recommended item.

use super::rerank::genre_diversity;
use std::collections::BTreeMap;

/// Accumulates per-user results; `finish` turns them into the metrics map.
#[derive(Debug, Default, Clone)]
pub struct MetricsAccumulator {
    users: usize,
    ndcg10: f64,
    recall20: f64,
    hr10: f64,
    mrr10: f64,
    precision10: f64,
    novelty10: f64,
    diversity10: f64,
    pop_bias10: f64,
    seen_items: Vec<bool>,
}

/// Largest cut-off any metric needs: recommend this many items per user.
pub const MAX_K: usize = 20;

/// The metrics of one user's list.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserMetrics {
    ndcg10: f64,
    recall20: f64,
    hr10: f64,
    mrr10: f64,
    precision10: f64,
    novelty10: f64,
    diversity10: f64,
    pop_bias10: f64,
}

/// Metrics of one ranked list against the sorted `relevant` items.
pub fn user_metrics(
    list: &[u32],
    relevant: &[u32],
    popularity: &[u32],
    n_users: usize,
    genres: &[Vec<u16>],
) -> UserMetrics {
    let is_rel = |i: u32| relevant.binary_search(&i).is_ok();
    let mut m = UserMetrics::default();
    let top10 = &list[..list.len().min(10)];
    let mut dcg = 0.0;
    let mut hits10 = 0usize;
    for (r, &i) in top10.iter().enumerate() {
        if is_rel(i) {
            dcg += 1.0 / ((r + 2) as f64).log2();
            hits10 += 1;
            if m.mrr10 == 0.0 {
                m.mrr10 = 1.0 / (r + 1) as f64;
            }
        }
    }
    let idcg: f64 = (0..relevant.len().min(10))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    m.ndcg10 = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    m.hr10 = if hits10 > 0 { 1.0 } else { 0.0 };
    m.precision10 = hits10 as f64 / 10.0;
    let hits20 = list.iter().take(20).filter(|&&i| is_rel(i)).count();
    let denom = relevant.len().min(20);
    m.recall20 = if denom > 0 {
        hits20 as f64 / denom as f64
    } else {
        0.0
    };
    if !top10.is_empty() {
        let users = n_users.max(1) as f64;
        let mut nov = 0.0;
        let mut pb = 0.0;
        for &i in top10 {
            let c = popularity.get(i as usize).copied().unwrap_or(0);
            nov += -(f64::from(c.max(1)) / users).log2();
            pb += f64::from(c) / users;
        }
        m.novelty10 = nov / top10.len() as f64;
        m.pop_bias10 = pb / top10.len() as f64;
        m.diversity10 = genre_diversity(top10, genres);
    }
    m
}

impl MetricsAccumulator {
    /// An accumulator for a catalogue of `n_items`.
    pub fn new(n_items: usize) -> MetricsAccumulator {
        MetricsAccumulator {
            seen_items: vec![false; n_items],
            ..Default::default()
        }
    }

    /// Add one user's list and metrics.
    pub fn add(&mut self, list: &[u32], m: &UserMetrics) {
        self.users += 1;
        self.ndcg10 += m.ndcg10;
        self.recall20 += m.recall20;
        self.hr10 += m.hr10;
        self.mrr10 += m.mrr10;
        self.precision10 += m.precision10;
        self.novelty10 += m.novelty10;
        self.diversity10 += m.diversity10;
        self.pop_bias10 += m.pop_bias10;
        for &i in list.iter().take(10) {
            if let Some(s) = self.seen_items.get_mut(i as usize) {
                *s = true;
            }
        }
    }

    /// Number of users added.
    pub fn users(&self) -> usize {
        self.users
    }

    /// Averages over the users added (all zeros when none).
    pub fn finish(&self) -> BTreeMap<String, f64> {
        let n = self.users.max(1) as f64;
        let covered = self.seen_items.iter().filter(|&&s| s).count();
        let coverage = if self.seen_items.is_empty() {
            0.0
        } else {
            covered as f64 / self.seen_items.len() as f64
        };
        BTreeMap::from([
            ("ndcg@10".to_string(), self.ndcg10 / n),
            ("recall@20".to_string(), self.recall20 / n),
            ("hr@10".to_string(), self.hr10 / n),
            ("mrr@10".to_string(), self.mrr10 / n),
            ("precision@10".to_string(), self.precision10 / n),
            ("coverage@10".to_string(), coverage),
            ("novelty@10".to_string(), self.novelty10 / n),
            ("diversity@10".to_string(), self.diversity10 / n),
            ("popularity_bias@10".to_string(), self.pop_bias10 / n),
            ("users".to_string(), self.users as f64),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // relevant {2, 7}; list hits at ranks 2 and 4
        let list = [5, 2, 9, 7, 1];
        let pop = vec![10u32; 10];
        let genres = vec![Vec::new(); 10];
        let m = user_metrics(&list, &[2, 7], &pop, 100, &genres);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg10 - dcg / idcg).abs() < 1e-12);
        assert_eq!(m.hr10, 1.0);
        assert_eq!(m.mrr10, 0.5);
        assert_eq!(m.precision10, 0.2);
        assert_eq!(m.recall20, 1.0);
        assert!((m.novelty10 - (100f64 / 10.0).log2()).abs() < 1e-12);
        assert!((m.pop_bias10 - 0.1).abs() < 1e-12);
        assert_eq!(m.diversity10, 1.0);
        let mut acc = MetricsAccumulator::new(10);
        acc.add(&list, &m);
        acc.add(&[], &user_metrics(&[], &[3], &pop, 100, &genres));
        let out = acc.finish();
        assert_eq!(out["hr@10"], 0.5);
        assert_eq!(out["coverage@10"], 0.5);
        assert_eq!(out["users"], 2.0);
    }
}
