//! The exposure and event log schema (identical for Parquet and CSV).
//!
//! | table | column | Arrow type | meaning |
//! |---|---|---|---|
//! | `exposures` | `unit_id` | UInt64 | randomisation unit (user) |
//! | | `experiment` | Dictionary(Int32, Utf8) | experiment key |
//! | | `arm` | Dictionary(Int32, Utf8) | arm (variation) name; `control` is the conventional baseline |
//! | | `ts` | Int64 | time of the exposure (any monotone unit, e.g. ms since epoch) |
//! | | `day` | UInt32 | day index of the exposure (for cumulative looks) |
//! | `events` | `unit_id` | UInt64 | unit that produced the event |
//! | | `ts` | Int64 | time of the event, same unit as exposures |
//! | | `day` | UInt32 | day index of the event |
//! | | `metric` | Dictionary(Int32, Utf8) | event/metric name, e.g. `click`, `watch_minutes` |
//! | | `value` | Float64 | value (1.0 for a count) |
//!
//! Files in a log directory: `exposures.parquet` + `events.parquet`, or `exposures.csv` +
//! `events.csv` (CSV with a header line naming exactly these columns).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// File stem of the exposure table.
pub const EXPOSURES: &str = "exposures";
/// File stem of the event table.
pub const EVENTS: &str = "events";

/// Column names of the exposure table, in order.
pub const EXPOSURE_COLUMNS: [&str; 5] = ["unit_id", "experiment", "arm", "ts", "day"];
/// Column names of the event table, in order.
pub const EVENT_COLUMNS: [&str; 5] = ["unit_id", "ts", "day", "metric", "value"];

/// One exposure: a unit saw an arm of an experiment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExposureRow {
    /// Randomisation unit.
    pub unit_id: u64,
    /// Experiment key.
    pub experiment: String,
    /// Arm name.
    pub arm: String,
    /// Time of the exposure.
    pub ts: i64,
    /// Day index.
    pub day: u32,
}

/// One event: a unit produced a value of a metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRow {
    /// Unit.
    pub unit_id: u64,
    /// Time of the event.
    pub ts: i64,
    /// Day index.
    pub day: u32,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Arrow schema of the exposure table.
pub fn exposure_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("unit_id", DataType::UInt64, false),
        Field::new("experiment", dict(), false),
        Field::new("arm", dict(), false),
        Field::new("ts", DataType::Int64, false),
        Field::new("day", DataType::UInt32, false),
    ]))
}

/// Arrow schema of the event table.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("unit_id", DataType::UInt64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("day", DataType::UInt32, false),
        Field::new("metric", dict(), false),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// On-disk format of a log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Apache Parquet (Snappy, dictionary-encoded strings).
    Parquet,
    /// CSV with a header line.
    Csv,
}

impl LogFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            LogFormat::Parquet => "parquet",
            LogFormat::Csv => "csv",
        }
    }
}
