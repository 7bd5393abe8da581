//! Offline ranking metrics (definitions of `shared/reference/anchors.md`).
//!
//! Per user, with `ranked` the recommended list (best first), `R` the relevant (held-out) items
//! and `hit(r) = 1` when the item at rank `r` (1-based) is in `R`:
//!
//! - `ndcg@K` = DCG / IDCG, DCG = Σ_{r ≤ K} hit(r) / log2(r + 1), IDCG over `min(K, |R|)` hits;
//! - `recall@K` = hits@K / min(K, |R|) (the anchors' protocol-A definition, so a perfect list
//!   scores 1);
//! - `recall_of_all@K` = hits@K / |R| (RecBole's Recall, the anchors' protocol-B second number);
//! - `precision@K` = hits@K / K;
//! - `hr@K` = 1 if any hit in the top K;
//! - `mrr@K` = 1 / rank of the first hit in the top K (0 if none).
//!
//! User metrics are averaged over users with at least one relevant item. Beyond accuracy, over
//! all evaluated users' top-K lists:
//!
//! - `coverage@K` = |∪ lists| / n_items (catalog coverage);
//! - `novelty@K` = mean over list entries of −log2 p(i), p(i) = max(count_i, 1) / n_users, the
//!   share of training users who interacted with `i` (clamped so unseen items stay finite);
//! - `diversity@K` = mean over lists of 1 − mean pairwise genre Jaccard similarity of the list's
//!   items (two genre-less items have similarity 0); needs item genres;
//! - `arp@K` (popularity bias, average recommendation popularity) = mean over list entries of
//!   p(i) as above without the clamp.

/// `hits[r]` = whether `ranked[r]` is in `relevant` (sorted ascending).
pub fn hit_flags(ranked: &[u32], relevant: &[u32]) -> Vec<bool> {
    ranked
        .iter()
        .map(|i| relevant.binary_search(i).is_ok())
        .collect()
}

/// 1 / log2(r + 2) for 0-based rank r.
fn discount(r: usize) -> f64 {
    1.0 / ((r + 2) as f64).log2()
}

/// NDCG@k from hit flags and the number of relevant items.
pub fn ndcg_from_hits(hits: &[bool], n_relevant: usize, k: usize) -> f64 {
    let ideal: f64 = (0..k.min(n_relevant)).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = hits
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, h)| **h)
        .map(|(r, _)| discount(r))
        .sum();
    dcg / ideal
}

fn hits_at(hits: &[bool], k: usize) -> usize {
    hits.iter().take(k).filter(|h| **h).count()
}

/// Recall@k = hits / min(k, |relevant|).
pub fn recall_from_hits(hits: &[bool], n_relevant: usize, k: usize) -> f64 {
    let denom = k.min(n_relevant);
    if denom == 0 {
        0.0
    } else {
        hits_at(hits, k) as f64 / denom as f64
    }
}

/// RecBole's Recall@k = hits / |relevant| (a user with more than k relevant items cannot reach 1;
/// the anchors' protocol-B recall is this one).
pub fn recall_of_all_from_hits(hits: &[bool], n_relevant: usize, k: usize) -> f64 {
    if n_relevant == 0 {
        0.0
    } else {
        hits_at(hits, k) as f64 / n_relevant as f64
    }
}

/// Precision@k = hits / k.
pub fn precision_from_hits(hits: &[bool], k: usize) -> f64 {
    if k == 0 {
        0.0
    } else {
        hits_at(hits, k) as f64 / k as f64
    }
}

/// Hit rate@k: 1 if any of the top k is relevant.
pub fn hit_rate_from_hits(hits: &[bool], k: usize) -> f64 {
    if hits_at(hits, k) > 0 { 1.0 } else { 0.0 }
}

/// MRR@k: reciprocal rank of the first hit within the top k.
pub fn mrr_from_hits(hits: &[bool], k: usize) -> f64 {
    hits.iter()
        .take(k)
        .position(|h| *h)
        .map_or(0.0, |r| 1.0 / (r + 1) as f64)
}

/// NDCG@k of a ranked list against sorted relevant items.
pub fn ndcg_at_k(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    ndcg_from_hits(&hit_flags(ranked, relevant), relevant.len(), k)
}

/// Recall@k of a ranked list against sorted relevant items.
pub fn recall_at_k(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    recall_from_hits(&hit_flags(ranked, relevant), relevant.len(), k)
}

/// Precision@k of a ranked list against sorted relevant items.
pub fn precision_at_k(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    precision_from_hits(&hit_flags(ranked, relevant), k)
}

/// Hit rate@k of a ranked list against sorted relevant items.
pub fn hit_rate_at_k(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    hit_rate_from_hits(&hit_flags(ranked, relevant), k)
}

/// MRR@k of a ranked list against sorted relevant items.
pub fn mrr_at_k(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    mrr_from_hits(&hit_flags(ranked, relevant), k)
}

/// Jaccard similarity of two sorted genre sets (0 when both are empty).
pub fn jaccard(a: &[u16], b: &[u16]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Intra-list diversity: 1 − mean pairwise genre Jaccard of the list (0 for lists shorter than 2).
pub fn intra_list_diversity(list: &[u32], item_genres: &[Vec<u16>]) -> f64 {
    if list.len() < 2 {
        return 0.0;
    }
    let empty: Vec<u16> = Vec::new();
    let g = |i: u32| item_genres.get(i as usize).unwrap_or(&empty);
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for a in 0..list.len() {
        for b in a + 1..list.len() {
            sum += jaccard(g(list[a]), g(list[b]));
            pairs += 1;
        }
    }
    1.0 - sum / pairs as f64
}

/// Item popularity as the share of users who interacted with each item: `count_i / n_users`.
pub fn item_popularity(item_counts: &[u32], n_users: usize) -> Vec<f64> {
    let n = n_users.max(1) as f64;
    item_counts.iter().map(|&c| f64::from(c) / n).collect()
}

/// Self-information −log2 p(i) with p clamped to at least `1 / n_users`.
pub fn self_information(popularity: f64, n_users: usize) -> f64 {
    let floor = 1.0 / n_users.max(1) as f64;
    -(popularity.max(floor)).log2()
}

/// Mean self-information of a list's items (0 for an empty list).
pub fn novelty(list: &[u32], popularity: &[f64], n_users: usize) -> f64 {
    if list.is_empty() {
        return 0.0;
    }
    list.iter()
        .map(|&i| self_information(popularity.get(i as usize).copied().unwrap_or(0.0), n_users))
        .sum::<f64>()
        / list.len() as f64
}

/// Mean popularity of a list's items (average recommendation popularity; 0 for an empty list).
pub fn average_popularity(list: &[u32], popularity: &[f64]) -> f64 {
    if list.is_empty() {
        return 0.0;
    }
    list.iter()
        .map(|&i| popularity.get(i as usize).copied().unwrap_or(0.0))
        .sum::<f64>()
        / list.len() as f64
}

/// Share of the catalog appearing in at least one list.
pub fn catalog_coverage<'a>(lists: impl IntoIterator<Item = &'a [u32]>, n_items: usize) -> f64 {
    if n_items == 0 {
        return 0.0;
    }
    let mut seen = vec![false; n_items];
    for l in lists {
        for &i in l {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
    }
    seen.iter().filter(|s| **s).count() as f64 / n_items as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_hand_cases() {
        // ranked 5,3,9,1; relevant {1,3,7}
        let ranked = [5, 3, 9, 1];
        let rel = [1, 3, 7];
        // DCG@4 = 1/log2(3) + 1/log2(5); IDCG@4 over 3 hits = 1 + 1/log2(3) + 1/2
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!(close(ndcg_at_k(&ranked, &rel, 4), dcg / idcg));
        // @2: DCG = 1/log2 3, IDCG = 1 + 1/log2 3
        assert!(close(
            ndcg_at_k(&ranked, &rel, 2),
            (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2())
        ));
        assert!(close(recall_at_k(&ranked, &rel, 4), 2.0 / 3.0));
        assert!(close(recall_at_k(&ranked, &rel, 2), 1.0 / 2.0)); // min(2, 3) = 2
        let flags = hit_flags(&ranked, &rel);
        assert!(close(
            recall_of_all_from_hits(&flags, rel.len(), 2),
            1.0 / 3.0
        )); // RecBole: / |R|
        assert!(close(
            recall_of_all_from_hits(&flags, rel.len(), 4),
            2.0 / 3.0
        ));
        assert_eq!(recall_of_all_from_hits(&flags, 0, 4), 0.0);
        assert!(close(precision_at_k(&ranked, &rel, 4), 0.5));
        assert!(close(hit_rate_at_k(&ranked, &rel, 1), 0.0));
        assert!(close(hit_rate_at_k(&ranked, &rel, 2), 1.0));
        assert!(close(mrr_at_k(&ranked, &rel, 4), 0.5));
        assert!(close(mrr_at_k(&ranked, &rel, 1), 0.0));
        // perfect list
        assert!(close(ndcg_at_k(&[1, 3, 7], &rel, 10), 1.0));
        assert!(close(recall_at_k(&[1, 3, 7], &rel, 10), 1.0));
        // no relevant items → 0, never NaN
        assert_eq!(ndcg_at_k(&ranked, &[], 10), 0.0);
        assert_eq!(recall_at_k(&ranked, &[], 10), 0.0);
    }

    #[test]
    fn beyond_accuracy_hand_cases() {
        let genres = vec![vec![0, 1], vec![1], vec![2], vec![]];
        assert!(close(jaccard(&genres[0], &genres[1]), 0.5));
        assert!(close(jaccard(&genres[0], &genres[2]), 0.0));
        assert!(close(jaccard(&[], &[]), 0.0));
        // pairs (0,1)=0.5 (0,2)=0 (1,2)=0 → mean 1/6 → diversity 5/6
        assert!(close(
            intra_list_diversity(&[0, 1, 2], &genres),
            1.0 - 0.5 / 3.0
        ));
        assert_eq!(intra_list_diversity(&[0], &genres), 0.0);
        let pop = item_popularity(&[4, 2, 1, 0], 4);
        assert_eq!(pop, vec![1.0, 0.5, 0.25, 0.0]);
        // −log2: 0, 1, 2, and the clamped unseen item −log2(1/4) = 2
        assert!(close(
            novelty(&[0, 1, 2, 3], &pop, 4),
            (0.0 + 1.0 + 2.0 + 2.0) / 4.0
        ));
        assert!(close(average_popularity(&[0, 1], &pop), 0.75));
        let lists: Vec<&[u32]> = vec![&[0, 1], &[1, 2]];
        assert!(close(catalog_coverage(lists, 4), 0.75));
        assert_eq!(catalog_coverage(Vec::<&[u32]>::new(), 0), 0.0);
    }
}
