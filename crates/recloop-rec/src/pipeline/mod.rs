//! The pipeline specification (`pipeline.toml`): candidate models, how their scores are blended,
//! a reranking stage and an optional Rhai scoring script. This is what the agents edit.

pub mod spec;

pub use spec::{BlendSpec, CandidateModelSpec, PipelineSpec, RerankSpec, ScriptSpec};
