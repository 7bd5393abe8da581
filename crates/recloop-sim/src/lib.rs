//! The simulated online world: users, sessions, satisfaction and retention.
//!
//! A [`World`] holds the ground truth (true affinity from a factorisation of real ratings, item
//! quality and clickbait); a [`Simulation`] advances a population of users copying real profiles
//! day by day under any [`Policy`]. It decides nothing about experiments.

pub mod engine;
pub mod error;
pub mod grounded;
pub mod logs;
pub mod params;
pub mod policy;
pub mod population;
pub mod scenario;
pub mod world;

pub use engine::{LogRecord, UserState};
pub use error::{Result, SimError};
pub use params::Params;
pub use policy::{
    Policy, RandomPolicy, RankedListPolicy, SlateRequest, clickbait_boost_policy,
    clickbait_only_policy, diversity_policy, exploration_policy, most_popular_policy,
    relevance_policy,
};
pub use population::{DayTotals, Simulation, UserSummary};
pub use world::{DIM, World};
