//! The pipeline specification (`pipeline.toml`): candidate models, how their scores are blended,
//! a reranking stage and an optional Rhai scoring script. This is what the agents edit.
//!
//! - [`spec`] and [`load`]: the file format and its validation (errors name file and line);
//! - [`params`]: the hyper-parameters of each model kind (the mutation schema);
//! - [`trained::TrainedPipeline`]: fit once, then `recommend` / `score_slate` per user;
//! - [`evaluate::evaluate_workspace`]: what `recloop rec eval` runs;
//! - [`objective::objectives_spec`]: each trained model's own training objective (`compute_loss`);
//! - [`config`], [`data`], [`synthetic`]: the protected evaluation setup of a workspace.

pub mod blend;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod factory;
pub mod features;
pub mod load;
pub mod locate;
pub mod objective;
pub mod params;
pub mod report;
pub mod rerank;
pub mod script;
pub mod spec;
pub mod synthetic;
pub mod trained;

pub use config::{EVAL_CONFIG_FILE, EvalConfig};
pub use data::{PipelineData, load_data};
pub use evaluate::{
    DRY_RUN_SIZE, EvalSplit, dry_run_workspace, evaluate_spec, evaluate_trained, evaluate_workspace,
};
pub use features::ItemFeatures;
pub use load::PIPELINE_FILE;
pub use objective::{ModelObjective, ObjectiveReport, objectives_spec, objectives_workspace};
pub use spec::{
    BlendSpec, CandidateModelSpec, Normalize, PipelineSpec, PositivesSpec, RerankSpec, ScriptSpec,
};
pub use trained::TrainedPipeline;
