//! Per-user normalisation of model scores and their weighted blend.

use super::spec::Normalize;

/// Normalise `scores` in place over the items where `eligible` is true (the others are left as
/// they are and should be ignored by the caller). Constant score vectors become all zeros.
///
/// - `none`: unchanged;
/// - `minmax`: mapped to [0, 1];
/// - `zscore`: mean 0, standard deviation 1;
/// - `rank`: 1 for the best item down to 0 for the worst (ties share the best rank).
pub fn normalize(scores: &mut [f32], eligible: &[bool], how: Normalize) {
    match how {
        Normalize::None => {}
        Normalize::MinMax => {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for (s, &e) in scores.iter().zip(eligible) {
                if e {
                    lo = lo.min(*s);
                    hi = hi.max(*s);
                }
            }
            let range = hi - lo;
            for (s, &e) in scores.iter_mut().zip(eligible) {
                if e {
                    *s = if range > 0.0 { (*s - lo) / range } else { 0.0 };
                }
            }
        }
        Normalize::ZScore => {
            let (mut n, mut sum) = (0usize, 0f64);
            for (s, &e) in scores.iter().zip(eligible) {
                if e {
                    n += 1;
                    sum += f64::from(*s);
                }
            }
            if n == 0 {
                return;
            }
            let mean = sum / n as f64;
            let mut var = 0f64;
            for (s, &e) in scores.iter().zip(eligible) {
                if e {
                    let d = f64::from(*s) - mean;
                    var += d * d;
                }
            }
            let sd = (var / n as f64).sqrt();
            for (s, &e) in scores.iter_mut().zip(eligible) {
                if e {
                    *s = if sd > 0.0 {
                        ((f64::from(*s) - mean) / sd) as f32
                    } else {
                        0.0
                    };
                }
            }
        }
        Normalize::Rank => {
            let mut order: Vec<u32> = (0..scores.len() as u32)
                .filter(|&i| eligible[i as usize])
                .collect();
            let n = order.len();
            if n == 0 {
                return;
            }
            order.sort_unstable_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
            let denom = (n.max(2) - 1) as f32;
            let mut rank = 0usize;
            let mut prev = f32::NAN;
            let mut out = vec![0f32; n];
            for (pos, &i) in order.iter().enumerate() {
                let s = scores[i as usize];
                if pos == 0 || s != prev {
                    rank = pos;
                    prev = s;
                }
                out[pos] = if n == 1 {
                    1.0
                } else {
                    1.0 - rank as f32 / denom
                };
            }
            for (pos, &i) in order.iter().enumerate() {
                scores[i as usize] = out[pos];
            }
        }
    }
}

/// Add `weight · scores` into `acc` for eligible items.
pub fn accumulate(acc: &mut [f32], scores: &[f32], weight: f32, eligible: &[bool]) {
    for ((a, s), &e) in acc.iter_mut().zip(scores).zip(eligible) {
        if e {
            *a += weight * *s;
        }
    }
}

/// The `n` eligible items with the highest `scores`, best first (ties: lower item id first).
pub fn top_n(scores: &[f32], eligible: &[bool], n: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| eligible[i as usize] && !scores[i as usize].is_nan())
        .collect();
    let cmp = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if idx.len() > n && n > 0 {
        idx.select_nth_unstable_by(n - 1, cmp);
        idx.truncate(n);
    } else if n == 0 {
        idx.clear();
    }
    idx.sort_unstable_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize) -> Vec<bool> {
        vec![true; n]
    }

    #[test]
    fn minmax_maps_to_unit_interval() {
        let mut s = vec![2.0, 4.0, 3.0];
        normalize(&mut s, &all(3), Normalize::MinMax);
        assert_eq!(s, vec![0.0, 1.0, 0.5]);
    }

    #[test]
    fn zscore_has_mean_zero_sd_one() {
        let mut s = vec![1.0, 2.0, 3.0, 4.0];
        normalize(&mut s, &all(4), Normalize::ZScore);
        let mean: f32 = s.iter().sum::<f32>() / 4.0;
        let var: f32 = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6);
        assert!((var - 1.0).abs() < 1e-5);
    }

    #[test]
    fn rank_gives_one_to_best_and_shares_ties() {
        let mut s = vec![0.1, 0.9, 0.5, 0.9, -3.0];
        normalize(&mut s, &all(5), Normalize::Rank);
        assert_eq!(s, vec![0.25, 1.0, 0.5, 1.0, 0.0]);
    }

    #[test]
    fn ineligible_items_are_ignored_and_constant_becomes_zero() {
        let mut s = vec![5.0, 5.0, 100.0];
        normalize(&mut s, &[true, true, false], Normalize::MinMax);
        assert_eq!(&s[..2], &[0.0, 0.0]);
        assert_eq!(s[2], 100.0);
        let mut z = vec![5.0, 5.0];
        normalize(&mut z, &all(2), Normalize::ZScore);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn blend_of_normalised_scores_reorders() {
        // Model a prefers item 0, model b (larger scale) prefers item 2; with minmax and equal
        // weights item 1 (good in both) wins.
        let elig = all(3);
        let mut a = vec![1.0, 0.8, 0.0];
        let mut b = vec![0.0, 80.0, 100.0];
        normalize(&mut a, &elig, Normalize::MinMax);
        normalize(&mut b, &elig, Normalize::MinMax);
        let mut acc = vec![0.0; 3];
        accumulate(&mut acc, &a, 1.0, &elig);
        accumulate(&mut acc, &b, 1.0, &elig);
        assert_eq!(top_n(&acc, &elig, 3), vec![1, 0, 2]);
        // Without normalisation, b's scale dominates.
        let a = vec![1.0, 0.8, 0.0];
        let b = vec![0.0, 80.0, 100.0];
        let mut acc = vec![0.0; 3];
        accumulate(&mut acc, &a, 1.0, &elig);
        accumulate(&mut acc, &b, 1.0, &elig);
        assert_eq!(top_n(&acc, &elig, 1), vec![2]);
    }

    #[test]
    fn top_n_skips_ineligible_and_breaks_ties_by_id() {
        let s = vec![1.0, 3.0, 3.0, 2.0];
        assert_eq!(top_n(&s, &[true, true, true, false], 2), vec![1, 2]);
        assert_eq!(top_n(&s, &[true, false, true, true], 10), vec![2, 3, 0]);
    }
}
