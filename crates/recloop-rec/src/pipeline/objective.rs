//! Each trained model's own training objective (what its `fit` minimizes), on the training rows
//! and on the validation split: the offline objective `compute_loss` reports. Blending, the
//! reranker and a scoring script train nothing, so they have no objective; count-based models
//! (MostPop, ItemKNN) neither.

use super::config::EvalConfig;
use super::data::{PipelineData, check_shapes, load_data};
use super::evaluate::EvalSplit;
use super::spec::PipelineSpec;
use super::trained::TrainedPipeline;
use crate::error::Result;
use crate::models::objective::data_term;
use serde::Serialize;
use std::path::Path;

/// One trained model of a pipeline and its objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelObjective {
    /// The model's label in `pipeline.toml`.
    pub model: String,
    /// Its kind (`ease`, `ials`, ...: the model's own name).
    pub kind: String,
    /// Its objective; `None` for a count-based model.
    pub objective: Option<ObjectiveReport>,
}

/// A fitted model's objective, per user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveReport {
    /// What the objective is.
    pub name: String,
    /// The data term on the rows the model was fitted on (after `[positives]`), per user.
    pub train_loss: f64,
    /// The regularization term, per training user.
    pub regularization: f64,
    /// `train_loss + regularization`: what `fit` minimized, per user.
    pub train_objective: f64,
    /// The data term on the validation split (the users' training and holdout items neither
    /// positive nor negative), per validation user: the model's own measure of generalization.
    pub validation_loss: f64,
    /// Users with training positives.
    pub train_users: usize,
    /// Users with validation items.
    pub validation_users: usize,
}

/// The objectives of the workspace `dir`'s `pipeline.toml` (what `recloop rec loss` prints).
pub fn objectives_workspace(dir: &Path) -> Result<Vec<ModelObjective>> {
    let config = EvalConfig::load_workspace(dir)?;
    let spec = PipelineSpec::load_workspace(dir)?;
    let data = load_data(&config)?;
    objectives_spec(&spec, Some(dir), &data, config.seed)
}

/// Fit `spec` on the training rows (as the validation evaluation does, `seed` for every
/// stochastic model and for the pairwise negatives) and report each model's objective.
pub fn objectives_spec(
    spec: &PipelineSpec,
    workspace: Option<&Path>,
    data: &PipelineData,
    seed: u64,
) -> Result<Vec<ModelObjective>> {
    check_shapes(data, "workspace data")?;
    let fit_on = data.fit_data(EvalSplit::Validation, &spec.positives);
    let pipeline = TrainedPipeline::fit(spec, workspace, &fit_on, &data.items, seed)?;
    let masked_in_validation = |u: usize| {
        let mut m = data.train.items_of(u).to_vec();
        m.extend_from_slice(data.holdout.items_of(u));
        m.sort_unstable();
        m
    };
    Ok(pipeline
        .models()
        .map(|(label, model)| {
            let objective = model.objective_form().map(|form| {
                let train = data_term(model, form.loss, &fit_on, &|_| Vec::new(), seed);
                let validation = data_term(
                    model,
                    form.loss,
                    &data.validation,
                    &masked_in_validation,
                    seed,
                );
                let regularization = if train.users == 0 {
                    f64::NAN
                } else {
                    form.regularization / train.users as f64
                };
                ObjectiveReport {
                    name: form.name.to_string(),
                    train_loss: train.per_user(),
                    regularization,
                    train_objective: train.per_user() + regularization,
                    validation_loss: validation.per_user(),
                    train_users: train.users,
                    validation_users: validation.users,
                }
            });
            ModelObjective {
                model: label.to_string(),
                kind: model.name().to_string(),
                objective,
            }
        })
        .collect())
}
