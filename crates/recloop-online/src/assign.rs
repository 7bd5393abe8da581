//! Deterministic assignment of units to arms, layers with mutually exclusive buckets, and the
//! conflict check between live experiments.

use crate::error::{OnlineError, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Number of buckets in a layer.
pub const BUCKETS: u32 = 10_000;

/// The two arms of an A/B test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Production (A).
    Control,
    /// The candidate (B).
    Treatment,
}

impl Arm {
    /// 0 for control, 1 for treatment.
    pub fn index(self) -> usize {
        match self {
            Arm::Control => 0,
            Arm::Treatment => 1,
        }
    }
}

/// SplitMix64 finaliser: a bijective, well-mixing 64-bit hash.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes, then SplitMix64: hash of a string unit id.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

/// Uniform position in [0, 1) of a unit under a seed (53 bits of the mixed hash).
pub fn unit_position(unit: u64, seed: u64) -> f64 {
    let h = splitmix64(splitmix64(unit) ^ splitmix64(seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Ramp-stable assignment: treatment takes positions `[0, share)` and control `[0.5, 0.5 + share)`,
/// so both arms have the same intended size, grow monotonically with the ramp and no unit ever
/// switches arm. Units outside both ranges are not in the experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    /// Experiment seed.
    pub seed: u64,
}

impl Assignment {
    /// The arm of `unit` when the treatment has traffic `share` (≤ 0.5), or `None`.
    pub fn arm(&self, unit: u64, share: f64) -> Option<Arm> {
        let p = unit_position(unit, self.seed);
        if p < share {
            Some(Arm::Treatment)
        } else if (0.5..0.5 + share).contains(&p) {
            Some(Arm::Control)
        } else {
            None
        }
    }

    /// Same as [`Assignment::arm`] for a string unit id.
    pub fn arm_of_str(&self, unit: &str, share: f64) -> Option<Arm> {
        self.arm(hash_str(unit), share)
    }
}

/// A live experiment registered in a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveExperiment {
    /// Experiment id.
    pub id: String,
    /// Parameters (config keys) it changes.
    pub parameters: BTreeSet<String>,
    /// Its buckets `[start, end)`.
    pub buckets: (u32, u32),
}

/// A layer: experiments inside it get disjoint bucket ranges (mutually exclusive traffic) and may
/// not change the same parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Layer name.
    pub name: String,
    /// Seed of the layer's bucket hash (independent of experiment seeds).
    pub seed: u64,
    /// Live experiments.
    pub live: Vec<LiveExperiment>,
}

impl Layer {
    /// An empty layer.
    pub fn new(name: &str, seed: u64) -> Layer {
        Layer {
            name: name.to_string(),
            seed,
            live: Vec::new(),
        }
    }

    /// Bucket of a unit in this layer.
    pub fn bucket(&self, unit: u64) -> u32 {
        (unit_position(unit, self.seed) * f64::from(BUCKETS)) as u32
    }

    /// The live experiment whose buckets hold `unit`, if any.
    pub fn experiment_of(&self, unit: u64) -> Option<&LiveExperiment> {
        let b = self.bucket(unit);
        self.live
            .iter()
            .find(|e| (e.buckets.0..e.buckets.1).contains(&b))
    }

    /// Register an experiment taking `traffic` (fraction of the layer) that changes `parameters`.
    /// Refuses when a live experiment in this layer already owns one of the parameters, or when
    /// not enough buckets are free. Returns the bucket range granted.
    pub fn register(&mut self, id: &str, parameters: &[&str], traffic: f64) -> Result<(u32, u32)> {
        if !(traffic > 0.0 && traffic <= 1.0) {
            return Err(OnlineError::Config {
                field: "traffic".into(),
                reason: format!("{traffic} is not in (0, 1]"),
            });
        }
        for live in &self.live {
            if let Some(p) = parameters.iter().find(|p| live.parameters.contains(**p)) {
                return Err(OnlineError::Conflict {
                    experiment: id.to_string(),
                    owner: live.id.clone(),
                    layer: self.name.clone(),
                    parameter: (*p).to_string(),
                });
            }
        }
        let needed = (traffic * f64::from(BUCKETS)).round().max(1.0) as u32;
        // first free gap large enough
        let mut taken: Vec<(u32, u32)> = self.live.iter().map(|e| e.buckets).collect();
        taken.sort_unstable();
        let mut start = 0;
        let mut free_total = 0;
        let mut granted = None;
        for (s, e) in taken
            .iter()
            .copied()
            .chain(std::iter::once((BUCKETS, BUCKETS)))
        {
            let gap = s.saturating_sub(start);
            free_total += gap;
            if granted.is_none() && gap >= needed {
                granted = Some((start, start + needed));
            }
            start = start.max(e);
        }
        let Some(range) = granted else {
            return Err(OnlineError::LayerFull {
                layer: self.name.clone(),
                experiment: id.to_string(),
                free: free_total,
                needed,
            });
        };
        self.live.push(LiveExperiment {
            id: id.to_string(),
            parameters: parameters.iter().map(|p| p.to_string()).collect(),
            buckets: range,
        });
        Ok(range)
    }

    /// Remove a finished experiment, freeing its buckets and parameters.
    pub fn release(&mut self, id: &str) -> bool {
        let before = self.live.len();
        self.live.retain(|e| e.id != id);
        before != self.live.len()
    }
}

/// All layers by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Layers {
    /// Layers by name.
    pub layers: BTreeMap<String, Layer>,
}

impl Layers {
    /// Register an experiment in `layer` (created on first use with a seed derived from its name).
    pub fn register(
        &mut self,
        layer: &str,
        id: &str,
        parameters: &[&str],
        traffic: f64,
    ) -> Result<(u32, u32)> {
        self.layers
            .entry(layer.to_string())
            .or_insert_with(|| Layer::new(layer, hash_str(layer)))
            .register(id, parameters, traffic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_deterministic_and_balanced() {
        let a = Assignment { seed: 7 };
        let mut counts = [0u32; 2];
        for u in 0..100_000u64 {
            let arm = a.arm(u, 0.2);
            assert_eq!(arm, a.arm(u, 0.2));
            if let Some(arm) = arm {
                counts[arm.index()] += 1;
            }
        }
        for c in counts {
            assert!((19_000..21_000).contains(&c), "{counts:?}");
        }
        // a different seed reshuffles
        let b = Assignment { seed: 8 };
        let same = (0..1000u64)
            .filter(|&u| a.arm(u, 0.5) == b.arm(u, 0.5))
            .count();
        assert!(same < 600, "{same}");
    }

    #[test]
    fn ramp_never_switches_arms() {
        let a = Assignment { seed: 3 };
        for u in 0..20_000u64 {
            let mut seen = None;
            for share in [0.01, 0.05, 0.2, 0.5] {
                if let Some(arm) = a.arm(u, share) {
                    if let Some(prev) = seen {
                        assert_eq!(prev, arm);
                    }
                    seen = Some(arm);
                } else {
                    assert!(seen.is_none(), "unit left the experiment");
                }
            }
        }
    }

    #[test]
    fn layers_are_exclusive_and_conflicts_refused() {
        let mut l = Layers::default();
        let r1 = l.register("ranking", "e1", &["blend.weight"], 0.3).unwrap();
        let r2 = l.register("ranking", "e2", &["rerank.mmr"], 0.3).unwrap();
        assert!(r1.1 <= r2.0);
        let err = l
            .register("ranking", "e3", &["model", "blend.weight"], 0.1)
            .unwrap_err();
        assert!(err.to_string().contains("blend.weight"), "{err}");
        assert!(err.to_string().contains("e1"));
        // another layer may change the same parameter
        l.register("ui", "e4", &["blend.weight"], 0.5).unwrap();
        let full = l.register("ranking", "e5", &["x"], 0.5).unwrap_err();
        assert!(matches!(full, OnlineError::LayerFull { .. }));
        let layer = &l.layers["ranking"];
        let mut in_e1 = 0;
        for u in 0..10_000u64 {
            if layer.experiment_of(u).is_some_and(|e| e.id == "e1") {
                in_e1 += 1;
            }
        }
        assert!((2_700..3_300).contains(&in_e1), "{in_e1}");
        let mut layer = layer.clone();
        assert!(layer.release("e1"));
        layer.register("e3", &["blend.weight"], 0.1).unwrap();
    }
}
