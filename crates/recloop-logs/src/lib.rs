//! Exposure and event logs: schema, Parquet/CSV reading and writing, streaming aggregation
//! into per-arm sufficient statistics for `recloop-stats`.
//!
//! # Schema
//!
//! Two tables per log directory (see [`schema`] for the column table):
//! - `exposures(unit_id u64, experiment dict<string>, arm dict<string>, ts i64, day u32)`
//! - `events(unit_id u64, ts i64, day u32, metric dict<string>, value f64)`
//!
//! stored as `exposures.parquet` + `events.parquet` (Snappy, dictionary-encoded strings) or
//! `exposures.csv` + `events.csv` (header line with the column names), or as directories
//! `exposures/` and `events/` of such files (e.g. hive-style `events/day=3/part-0.parquet`).
//! Files written by other tools are accepted: plain or dictionary strings, any integer width
//! for ids and days, timestamps as integers or timestamp types, Snappy/zstd/LZ4/uncompressed.
//!
//! # Speed
//!
//! [`aggregate`] scans the event table in parallel (see [`scan`]): Parquet row groups and CSV
//! byte ranges are the parts, read with column projection and metric filtering, summed per
//! unit and merged in a fixed order, so results are identical bit for bit on any number of
//! threads. [`synthetic::SyntheticLogs::aggregate`] streams a generated log of any size with
//! memory proportional to units.
//!
//! # Use
//!
//! ```no_run
//! use recloop_logs::{AggregateOptions, LogReader, LogWriter, MetricDef, aggregate};
//! # fn main() -> recloop_logs::Result<()> {
//! let mut w = LogWriter::parquet("logs/exp-1")?;
//! w.exposure(42, "exp-1", "control", 1_000, 0)?;
//! w.event(42, 1_500, 0, "click", 1.0)?;
//! w.finish()?;
//! let agg = aggregate(&LogReader::open("logs/exp-1")?, AggregateOptions {
//!     metrics: vec![MetricDef::mean("click")],
//!     ..Default::default()
//! })?;
//! # let _ = agg; Ok(()) }
//! ```

pub mod aggregate;
pub mod columns;
pub mod error;
pub mod reader;
pub mod scan;
pub mod schema;
pub mod shapes;
pub mod synthetic;
pub mod unit_index;
pub mod writer;

pub use aggregate::{
    AggregateOptions, Aggregation, Aggregator, ArmMetric, ArmUnits, MetricDef, aggregate,
};
pub use error::{LogsError, Result};
pub use reader::{BatchIter, LogReader, TableFile};
pub use scan::{EventRows, EventSink, EventSource, FileEvents, Slots, with_threads};
pub use schema::{EventRow, ExposureRow, LogFormat, event_schema, exposure_schema};
pub use writer::{LogWriter, WrittenLogs};
