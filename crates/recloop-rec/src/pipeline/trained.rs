//! A pipeline trained on a set of interactions: blend → top candidates → script → rerank.
//! The evaluator, the simulator and the agents all serve recommendations through this type.

use super::blend::{accumulate, normalize, top_n};
use super::factory::build_model;
use super::features::{ItemFeatures, user_activity};
use super::rerank::rerank;
use super::script::ScoringScript;
use super::spec::PipelineSpec;
use crate::Interactions;
use crate::error::{RecError, Result};
use crate::models::Model;
use rhai::{Array, Dynamic, Map};
use std::path::Path;

/// One fitted candidate model.
struct Member {
    name: String,
    weight: f32,
    model: Box<dyn Model>,
}

/// A trained pipeline, ready to recommend. `Send + Sync`: share it across threads.
pub struct TrainedPipeline {
    spec: PipelineSpec,
    members: Vec<Member>,
    n_users: usize,
    n_items: usize,
    popularity: Vec<u32>,
    activity: Vec<u32>,
    genres: Vec<Vec<u16>>,
    /// Per-item constant part of the script's `item` map (only built when a script is set).
    item_maps: Vec<Map>,
    script: Option<ScoringScript>,
    fit_seconds: f64,
}

impl std::fmt::Debug for TrainedPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedPipeline")
            .field("spec", &self.spec)
            .field("n_users", &self.n_users)
            .field("n_items", &self.n_items)
            .finish()
    }
}

impl TrainedPipeline {
    /// Fit every candidate model of `spec` on `train` and prepare features and the script.
    ///
    /// `workspace` is where the script path is resolved (required when the spec has a script);
    /// `seed` seeds every stochastic model.
    pub fn fit(
        spec: &PipelineSpec,
        workspace: Option<&Path>,
        train: &Interactions,
        items: &ItemFeatures,
        seed: u64,
    ) -> Result<TrainedPipeline> {
        let start = std::time::Instant::now();
        let script = match &spec.script {
            None => None,
            Some(s) => {
                let Some(ws) = workspace else {
                    return Err(RecError::Spec {
                        location: s.path.clone(),
                        reason: "a scripted pipeline needs its workspace directory".into(),
                    });
                };
                Some(ScoringScript::load(&ws.join(&s.path), Path::new(&s.path))?)
            }
        };
        let mut members = Vec::with_capacity(spec.models.len());
        for (i, m) in spec.models.iter().enumerate() {
            // A zero-weight model only matters when the script can read its score.
            if m.weight == 0.0 && script.is_none() {
                continue;
            }
            let mut model = build_model(m.kind, &m.params, seed.wrapping_add(i as u64))?;
            model.fit(train)?;
            members.push(Member {
                name: m.name.clone(),
                weight: m.weight as f32,
                model,
            });
        }
        let popularity = train.item_counts();
        let n_items = train.n_items;
        let mut genres = items.genres.clone();
        genres.resize(n_items, Vec::new());
        let item_maps = if script.is_some() {
            (0..n_items as u32)
                .map(|i| item_map(i, popularity[i as usize], items))
                .collect()
        } else {
            Vec::new()
        };
        Ok(TrainedPipeline {
            spec: spec.clone(),
            members,
            n_users: train.n_users,
            n_items,
            popularity,
            activity: user_activity(train),
            genres,
            item_maps,
            script,
            fit_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The fitted models with their `pipeline.toml` labels (a zero-weight model is fitted only
    /// when the script can read its score).
    pub fn models(&self) -> impl Iterator<Item = (&str, &dyn Model)> {
        self.members
            .iter()
            .map(|m| (m.name.as_str(), m.model.as_ref() as &dyn Model))
    }

    /// The specification this pipeline was trained from.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Number of items in the catalogue.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of users known at training time.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Wall-clock seconds `fit` took.
    pub fn fit_seconds(&self) -> f64 {
        self.fit_seconds
    }

    /// Training interactions per item (what the popularity penalty uses).
    pub fn popularity(&self) -> &[u32] {
        &self.popularity
    }

    /// The top `k` items for `user`, never any item in `exclude` (pass the user's seen items to
    /// mask them). Users unknown at training time get the most popular items. The list is shorter
    /// than `k` only when the catalogue, the candidate pool or a genre cap runs out.
    pub fn recommend(&self, user: u32, k: usize, exclude: &[u32]) -> Result<Vec<u32>> {
        if user as usize >= self.n_users {
            return Ok(self.popular(k, exclude));
        }
        let raw = self.raw_scores(user);
        self.finish(user, &raw, k, exclude)
    }

    /// [`TrainedPipeline::recommend`] for many users at once: model scores are computed in
    /// batches (one matrix product per model and batch) and users in parallel. `exclude(user)`
    /// gives each user's masked items. Same lists as calling `recommend` per user.
    pub fn recommend_many<F>(&self, users: &[u32], k: usize, exclude: F) -> Result<Vec<Vec<u32>>>
    where
        F: Fn(u32) -> Vec<u32> + Sync,
    {
        use rayon::prelude::*;
        const BATCH: usize = 256;
        let n = self.n_items;
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(BATCH) {
            let known: Vec<usize> = chunk
                .iter()
                .filter(|&&u| (u as usize) < self.n_users)
                .map(|&u| u as usize)
                .collect();
            // slot of each chunk entry in `known` (None for unknown users)
            let mut next = 0usize;
            let slots: Vec<Option<usize>> = chunk
                .iter()
                .map(|&u| {
                    ((u as usize) < self.n_users).then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            let mut bufs: Vec<Vec<f32>> = Vec::with_capacity(self.members.len());
            for m in &self.members {
                let mut buf = vec![0f32; known.len() * n];
                m.model.score_batch(&known, &mut buf);
                bufs.push(buf);
            }
            let lists: Vec<Result<Vec<u32>>> = chunk
                .par_iter()
                .zip(slots.par_iter())
                .map(|(&u, slot)| {
                    let ex = exclude(u);
                    match *slot {
                        Some(pos) => {
                            let raw: Vec<Vec<f32>> = bufs
                                .iter()
                                .map(|b| b[pos * n..(pos + 1) * n].to_vec())
                                .collect();
                            self.finish(u, &raw, k, &ex)
                        }
                        None => Ok(self.popular(k, &ex)),
                    }
                })
                .collect();
            for l in lists {
                out.push(l?);
            }
        }
        Ok(out)
    }

    /// Final scores (blend, then script; before reranking) of a given slate of items for `user`,
    /// in slate order. Cheap compared with `recommend`: no top-k selection over the catalogue.
    pub fn score_slate(&self, user: u32, slate: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = slate.iter().find(|&&i| i as usize >= self.n_items) {
            return Err(RecError::Model {
                model: "pipeline".into(),
                reason: format!("item {bad} is outside the catalogue of {}", self.n_items),
            });
        }
        if user as usize >= self.n_users {
            return Ok(slate
                .iter()
                .map(|&i| (self.popularity[i as usize] as f32).ln_1p())
                .collect());
        }
        let eligible = vec![true; self.n_items];
        let mut raw = self.raw_scores(user);
        let (blended, per_model) = self.blend(&mut raw, &eligible);
        let scored = self.script_scores(user, slate, &blended, &per_model)?;
        Ok(scored.into_iter().map(|(_, s)| s).collect())
    }

    /// Most popular items not in `exclude` (the answer for unknown users).
    fn popular(&self, k: usize, exclude: &[u32]) -> Vec<u32> {
        let eligible = self.eligible(exclude);
        let pop: Vec<f32> = self.popularity.iter().map(|&c| c as f32).collect();
        top_n(&pop, &eligible, k)
    }

    fn eligible(&self, exclude: &[u32]) -> Vec<bool> {
        let mut eligible = vec![true; self.n_items];
        for &i in exclude {
            if let Some(e) = eligible.get_mut(i as usize) {
                *e = false;
            }
        }
        eligible
    }

    /// Each member model's raw scores for a known user.
    fn raw_scores(&self, user: u32) -> Vec<Vec<f32>> {
        self.members
            .iter()
            .map(|m| {
                let mut buf = vec![0f32; self.n_items];
                m.model.score_into(user as usize, &mut buf);
                buf
            })
            .collect()
    }

    /// From raw model scores to the reranked list.
    fn finish(&self, user: u32, raw: &[Vec<f32>], k: usize, exclude: &[u32]) -> Result<Vec<u32>> {
        let eligible = self.eligible(exclude);
        let n_cand = self.spec.rerank.candidates.max(k);
        let mut raw = raw.to_vec();
        let (blended, per_model) = self.blend(&mut raw, &eligible);
        let cands = top_n(&blended, &eligible, n_cand);
        let scored = self.script_scores(user, &cands, &blended, &per_model)?;
        Ok(rerank(
            &scored,
            k,
            &self.spec.rerank,
            &self.popularity,
            &self.genres,
        ))
    }

    /// Weighted blend of normalised model scores over eligible items (normalising `raw` in
    /// place); also each model's normalised scores when the script needs them.
    fn blend(&self, raw: &mut [Vec<f32>], eligible: &[bool]) -> (Vec<f32>, Vec<Vec<f32>>) {
        let mut acc = vec![0f32; self.n_items];
        for (m, buf) in self.members.iter().zip(raw.iter_mut()) {
            for s in buf.iter_mut() {
                if !s.is_finite() {
                    *s = f32::MIN;
                }
            }
            normalize(buf, eligible, self.spec.blend.normalize);
            if m.weight != 0.0 {
                accumulate(&mut acc, buf, m.weight, eligible);
            }
        }
        let per_model = if self.script.is_some() {
            raw.to_vec()
        } else {
            Vec::new()
        };
        (acc, per_model)
    }

    fn script_scores(
        &self,
        user: u32,
        items: &[u32],
        blended: &[f32],
        per_model: &[Vec<f32>],
    ) -> Result<Vec<(u32, f32)>> {
        let Some(script) = &self.script else {
            return Ok(items.iter().map(|&i| (i, blended[i as usize])).collect());
        };
        let mut user_map = Map::new();
        user_map.insert("id".into(), Dynamic::from_int(i64::from(user)));
        user_map.insert(
            "activity".into(),
            Dynamic::from_int(i64::from(self.activity[user as usize])),
        );
        let mut out = Vec::with_capacity(items.len());
        for &i in items {
            let mut item = self.item_maps[i as usize].clone();
            item.insert(
                "score".into(),
                Dynamic::from_float(f64::from(blended[i as usize])),
            );
            let mut scores = Map::new();
            for (m, s) in self.members.iter().zip(per_model) {
                scores.insert(
                    m.name.as_str().into(),
                    Dynamic::from_float(f64::from(s[i as usize])),
                );
            }
            item.insert("scores".into(), Dynamic::from_map(scores));
            let s = script.score(item, user_map.clone())?;
            out.push((i, s as f32));
        }
        Ok(out)
    }
}

/// The constant part of the script's `item` map.
fn item_map(item: u32, popularity: u32, features: &ItemFeatures) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), Dynamic::from_int(i64::from(item)));
    m.insert(
        "popularity".into(),
        Dynamic::from_int(i64::from(popularity)),
    );
    m.insert(
        "mean_rating".into(),
        Dynamic::from_float(f64::from(features.mean_rating_of(item))),
    );
    m.insert(
        "year".into(),
        Dynamic::from_int(i64::from(features.year_of(item))),
    );
    let genres: Array = features
        .genres_of(item)
        .iter()
        .map(|&g| {
            let name = features
                .genre_names
                .get(g as usize)
                .cloned()
                .unwrap_or_else(|| format!("genre{g}"));
            Dynamic::from(name)
        })
        .collect();
    m.insert("genres".into(), Dynamic::from_array(genres));
    m
}
