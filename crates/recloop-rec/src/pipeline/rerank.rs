//! The reranking stage: popularity penalty, MMR diversification by genre, per-genre caps.

use super::spec::RerankSpec;

/// Jaccard similarity of two sorted genre-id lists (0 when either is empty).
pub fn genre_similarity(a: &[u16], b: &[u16]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    common as f32 / union as f32
}

/// Rerank `candidates` (item ids with their scores, any order) into at most `k` items.
///
/// 1. popularity penalty: `score − β·ln(1 + popularity[item])`;
/// 2. greedy maximal marginal relevance: at each step take the item maximising
///    `(1 − λ)·relevance − λ·max similarity to the items already chosen`, where relevance is the
///    penalised score min-max scaled to [0, 1] over the candidates and similarity is the Jaccard
///    similarity of genres (λ = 0 is the plain ranking);
/// 3. per-genre cap: an item is skipped when one of its genres already appears `genre_cap` times
///    in the list (0 = no cap). The list is shorter than `k` when the cap leaves too few items.
///
/// Ties go to the item ranked higher by penalised score, then to the lower id.
pub fn rerank(
    candidates: &[(u32, f32)],
    k: usize,
    spec: &RerankSpec,
    popularity: &[u32],
    genres: &[Vec<u16>],
) -> Vec<u32> {
    let beta = spec.popularity_penalty as f32;
    let mut ranked: Vec<(u32, f32)> = candidates
        .iter()
        .map(|&(i, s)| {
            let pop = popularity.get(i as usize).copied().unwrap_or(0) as f32;
            let s = if beta > 0.0 {
                s - beta * pop.ln_1p()
            } else {
                s
            };
            (i, s)
        })
        .filter(|(_, s)| !s.is_nan())
        .collect();
    ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let lambda = spec.mmr_lambda as f32;
    let cap = spec.genre_cap;
    let no_genres: &[u16] = &[];
    let genres_of = |i: u32| genres.get(i as usize).map_or(no_genres, |g| g.as_slice());
    if lambda <= 0.0 && cap == 0 {
        return ranked.into_iter().take(k).map(|(i, _)| i).collect();
    }
    let (lo, hi) = ranked
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(_, s)| {
            (lo.min(s), hi.max(s))
        });
    let range = hi - lo;
    let relevance: Vec<f32> = ranked
        .iter()
        .map(|&(_, s)| if range > 0.0 { (s - lo) / range } else { 1.0 })
        .collect();
    // max similarity of each remaining candidate to the chosen list, updated incrementally
    let mut max_sim = vec![0f32; ranked.len()];
    let mut taken = vec![false; ranked.len()];
    let mut genre_count: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let mut best: Option<(usize, f32)> = None;
        for (pos, &(item, _)) in ranked.iter().enumerate() {
            if taken[pos] {
                continue;
            }
            if cap > 0
                && genres_of(item)
                    .iter()
                    .any(|&g| genre_count.get(g as usize).copied().unwrap_or(0) >= cap)
            {
                continue;
            }
            let value = (1.0 - lambda) * relevance[pos] - lambda * max_sim[pos];
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((pos, value));
            }
            if lambda <= 0.0 {
                break; // plain ranking under the cap: the first eligible item wins
            }
        }
        let Some((pos, _)) = best else { break };
        taken[pos] = true;
        let item = ranked[pos].0;
        out.push(item);
        for &g in genres_of(item) {
            let g = g as usize;
            if genre_count.len() <= g {
                genre_count.resize(g + 1, 0);
            }
            genre_count[g] += 1;
        }
        if lambda > 0.0 {
            let gi = genres_of(item);
            for (p, &(other, _)) in ranked.iter().enumerate() {
                if !taken[p] {
                    max_sim[p] = max_sim[p].max(genre_similarity(gi, genres_of(other)));
                }
            }
        }
    }
    out
}

/// Mean pairwise genre dissimilarity (1 − Jaccard) of a list; 0 for fewer than two items.
pub fn genre_diversity(list: &[u32], genres: &[Vec<u16>]) -> f64 {
    let n = list.len();
    if n < 2 {
        return 0.0;
    }
    let no: &[u16] = &[];
    let g = |i: u32| genres.get(i as usize).map_or(no, |v| v.as_slice());
    let mut sum = 0f64;
    for a in 0..n {
        for b in a + 1..n {
            sum += 1.0 - f64::from(genre_similarity(g(list[a]), g(list[b])));
        }
    }
    sum / (n * (n - 1) / 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(lambda: f64, beta: f64, cap: usize) -> RerankSpec {
        RerankSpec {
            candidates: 100,
            mmr_lambda: lambda,
            popularity_penalty: beta,
            genre_cap: cap,
        }
    }

    /// Items 0..6 in descending score; genres: 0,1,2 are all genre 0 (drama), 3 is genre 1,
    /// 4 is genre 2, 5 is genres {0,1}.
    fn fixture() -> (Vec<(u32, f32)>, Vec<Vec<u16>>) {
        let cands = vec![(0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6), (4, 0.5), (5, 0.4)];
        let genres = vec![vec![0], vec![0], vec![0], vec![1], vec![2], vec![0, 1]];
        (cands, genres)
    }

    #[test]
    fn jaccard() {
        assert_eq!(genre_similarity(&[0, 1], &[1, 2]), 1.0 / 3.0);
        assert_eq!(genre_similarity(&[], &[1]), 0.0);
        assert_eq!(genre_similarity(&[3], &[3]), 1.0);
    }

    #[test]
    fn lambda_zero_is_plain_ranking() {
        let (c, g) = fixture();
        let pop = vec![0; 6];
        assert_eq!(
            rerank(&c, 4, &spec(0.0, 0.0, 0), &pop, &g),
            vec![0, 1, 2, 3]
        );
        // also through the greedy path (a cap so large it never binds)
        assert_eq!(
            rerank(&c, 4, &spec(0.0, 0.0, 99), &pop, &g),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn lambda_one_maximises_diversity() {
        let (c, g) = fixture();
        let pop = vec![0; 6];
        let plain = rerank(&c, 3, &spec(0.0, 0.0, 0), &pop, &g);
        let diverse = rerank(&c, 3, &spec(1.0, 0.0, 0), &pop, &g);
        // three distinct single genres: pairwise similarity 0, the maximum possible diversity
        assert_eq!(diverse, vec![0, 3, 4]);
        assert_eq!(genre_diversity(&diverse, &g), 1.0);
        assert!(genre_diversity(&diverse, &g) > genre_diversity(&plain, &g));
        // an intermediate λ trades off: still starts with the best item
        let mid = rerank(&c, 3, &spec(0.5, 0.0, 0), &pop, &g);
        assert_eq!(mid[0], 0);
    }

    #[test]
    fn genre_cap_is_respected() {
        let (c, g) = fixture();
        let pop = vec![0; 6];
        let out = rerank(&c, 5, &spec(0.0, 0.0, 1), &pop, &g);
        // genre 0 at most once, genre 1 at most once: 0 (g0), 3 (g1), 4 (g2); 5 has g0 and g1
        assert_eq!(out, vec![0, 3, 4]);
        let out2 = rerank(&c, 6, &spec(0.0, 0.0, 2), &pop, &g);
        for genre in 0..3u16 {
            let n = out2
                .iter()
                .filter(|&&i| g[i as usize].contains(&genre))
                .count();
            assert!(n <= 2, "genre {genre} appears {n} times in {out2:?}");
        }
    }

    #[test]
    fn popularity_penalty_lowers_popular_items() {
        let c = vec![(0, 1.0), (1, 0.9), (2, 0.8)];
        let g = vec![vec![], vec![], vec![]];
        let pop = vec![10_000, 10, 0];
        assert_eq!(rerank(&c, 3, &spec(0.0, 0.0, 0), &pop, &g), vec![0, 1, 2]);
        let out = rerank(&c, 3, &spec(0.0, 0.1, 0), &pop, &g);
        // 1.0 − 0.1·ln(10001) ≈ 0.079; 0.9 − 0.1·ln(11) ≈ 0.66; 0.8 − 0 = 0.8
        assert_eq!(out, vec![2, 1, 0]);
    }
}
