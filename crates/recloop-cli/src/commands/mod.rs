//! One module per command group; each owns its clap arguments and its output format.

pub mod approvals;
pub mod bench;
pub mod data;
pub mod demo;
pub mod evolve;
pub mod init;
pub mod journal;
pub mod llm;
pub mod rec;
pub mod run;
pub mod serve;
pub mod sim;
pub mod stats;
