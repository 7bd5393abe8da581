//! Datasets: fetching the pinned artifacts ([`fetch`]), loading MovieLens into compact id-mapped
//! arrays ([`Dataset`]) and the Open Bandit Dataset logs ([`obd`]).
//!
//! ```no_run
//! use recloop_rec::data::{self, DatasetName};
//! let ds = data::load(DatasetName::Ml1m)?; // fetches into the cache on first use
//! println!("{} users × {} items, {} ratings", ds.n_users(), ds.n_items(), ds.len());
//! # Ok::<(), recloop_rec::RecError>(())
//! ```

pub mod dataset;
pub mod fetch;
pub mod movielens;
pub mod obd;
mod parse;

pub use dataset::Dataset;
pub use fetch::{
    Artifact, FetchOptions, Source, artifact, cached_in, data_root, ensure, fetch, fetch_with, path,
};
pub use obd::{ObdItemContext, ObdLog};

use crate::error::{RecError, Result};
use std::fmt;
use std::str::FromStr;

/// The datasets recloop can obtain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetName {
    /// MovieLens-100K (943 users, 1,682 items, 100,000 ratings).
    Ml100k,
    /// MovieLens-1M (6,040 users, 3,706 items, 1,000,209 ratings).
    Ml1m,
    /// The Open Bandit Dataset sample (logged bandit feedback).
    Obd,
}

impl DatasetName {
    /// All datasets.
    pub const ALL: [DatasetName; 3] = [DatasetName::Ml100k, DatasetName::Ml1m, DatasetName::Obd];

    /// The name used on the command line and in the cache (`ml-100k`, `ml-1m`, `obd`).
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Ml100k => "ml-100k",
            DatasetName::Ml1m => "ml-1m",
            DatasetName::Obd => "obd",
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = RecError;
    fn from_str(s: &str) -> Result<DatasetName> {
        DatasetName::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| RecError::Data {
                name: s.to_string(),
                reason: "unknown dataset; expected one of ml-100k, ml-1m, obd".into(),
            })
    }
}

/// Load a MovieLens dataset from the default cache, fetching it first if needed.
///
/// `obd` is not a rating dataset: use [`obd::load`] for it.
pub fn load(name: DatasetName) -> Result<Dataset> {
    let dir = ensure(name)?;
    movielens::load_dir(name, &dir)
}
