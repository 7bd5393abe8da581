//! Worlds grounded in real data, and recommender pipelines served as policies unchanged.

use crate::error::{Result, SimError};
use crate::policy::{LIST_LEN, RankedListPolicy};
use crate::world::World;
use recloop_rec::Interactions;
use recloop_rec::data::{Dataset, DatasetName};
use recloop_rec::pipeline::{EvalConfig, EvalSplit, PipelineData, PipelineSpec, TrainedPipeline};
use recloop_rec::split::{Protocol, prepare_and_split};
use std::path::Path;
use std::sync::Arc;

/// Ground truth fitted on every rating of a dataset (ids as the dataset indexes them).
pub fn world_from_dataset(ds: &Dataset, seed: u64) -> Result<World> {
    let ratings: Vec<(u32, u32, f32)> = ds
        .users
        .iter()
        .zip(&ds.items)
        .zip(&ds.ratings)
        .map(|((&u, &i), &r)| (u, i, r))
        .collect();
    World::from_ratings(ds.n_users(), ds.n_items(), &ratings, seed)
}

/// The ML-1M world (fetched into the dataset cache on first use).
pub fn ml1m_world(seed: u64) -> Result<World> {
    let ds = recloop_rec::data::load(DatasetName::Ml1m)?;
    world_from_dataset(&ds, seed)
}

/// A workspace's data and the world grounded in the same dataset and id space.
pub struct WorkspaceWorld {
    /// The ground truth.
    pub world: Arc<World>,
    /// The workspace's train/validation/holdout data (pipelines are fitted on `holdout_train`).
    pub data: PipelineData,
    /// The evaluation seed of the workspace.
    pub seed: u64,
}

/// Load `eval/eval.toml` of a workspace, its dataset, and fit the ground truth on it.
pub fn load_workspace_world(dir: &Path, world_seed: u64) -> Result<WorkspaceWorld> {
    let config = EvalConfig::load_workspace(dir)?;
    let dataset = match config.dataset.as_str() {
        "synthetic" => recloop_rec::pipeline::synthetic::generate(&config.synthetic, config.seed),
        name => recloop_rec::data::load(name.parse::<DatasetName>()?)?,
    };
    let protocol: Protocol = config.protocol.parse()?;
    let (prepared, _) = prepare_and_split(&dataset, protocol, config.seed)?;
    let data = recloop_rec::pipeline::data::from_dataset(&dataset, protocol, config.seed)?;
    if data.holdout_train.n_items != prepared.n_items()
        || data.holdout_train.n_users != prepared.n_users()
    {
        return Err(SimError::GroundTruth(format!(
            "workspace data ({} users × {} items) and ground truth ({} × {}) disagree",
            data.holdout_train.n_users,
            data.holdout_train.n_items,
            prepared.n_users(),
            prepared.n_items()
        )));
    }
    let world = world_from_dataset(&prepared, world_seed)?;
    Ok(WorkspaceWorld {
        world: Arc::new(world),
        data,
        seed: config.seed,
    })
}

/// Serve a trained pipeline: each profile's ranked list is `pipeline.recommend(profile, LIST_LEN,
/// items it was trained on)`, computed once for every profile.
pub fn pipeline_policy(
    name: &str,
    pipeline: &TrainedPipeline,
    trained_on: &Interactions,
    n_profiles: usize,
) -> Result<RankedListPolicy> {
    let lists: Vec<std::result::Result<Vec<u32>, recloop_rec::RecError>> = {
        use rayon::prelude::*;
        (0..n_profiles)
            .into_par_iter()
            .map(|p| {
                let exclude = if p < trained_on.n_users {
                    trained_on.items_of(p)
                } else {
                    &[]
                };
                pipeline.recommend(p as u32, LIST_LEN, exclude)
            })
            .collect()
    };
    let mut rows = Vec::with_capacity(lists.len());
    for l in lists {
        rows.push(l?);
    }
    Ok(RankedListPolicy::from_fn(name, n_profiles, LIST_LEN, |p| {
        rows[p].clone()
    }))
}

/// Fit the pipeline of workspace `dir` (its `pipeline.toml`, scripts resolved in `dir`) on the
/// world's data and serve it unchanged.
pub fn workspace_policy(dir: &Path, ww: &WorkspaceWorld) -> Result<RankedListPolicy> {
    let spec = PipelineSpec::load_workspace(dir)?;
    // fitted on what `[positives]` counts; every interaction stays masked when serving
    let fit_on = ww.data.fit_data(EvalSplit::Holdout, &spec.positives);
    let pipeline = TrainedPipeline::fit(&spec, Some(dir), &fit_on, &ww.data.items, ww.seed)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workspace".into());
    pipeline_policy(
        &name,
        &pipeline,
        &ww.data.holdout_train,
        ww.world.n_profiles,
    )
}
