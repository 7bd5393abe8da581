//! The same log written in the shapes other tools produce (plain strings, narrow integer ids,
//! timestamp types, zstd, small row groups, daily hive partitions, CSV), for tests and
//! benchmarks of the readers.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::columns::{i64_column, str_column, u32_column, u64_column};
use crate::error::{LogsError, Result};
use crate::schema::{EVENTS, EXPOSURES, LogFormat};
use crate::synthetic::SyntheticLogs;
use crate::writer::LogWriter;

/// A file layout of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// recloop's own writer: dictionary strings, UInt64 ids, Snappy, 1M-row row groups.
    Recloop,
    /// Plain Utf8 strings, not dictionary-encoded on disk either.
    PlainStrings,
    /// Int32 ids and days (signed, as many SQL engines write INTEGER).
    Int32Ids,
    /// `ts` as Parquet timestamps: seconds in exposures, milliseconds in events.
    TimestampType,
    /// Zstd compression.
    Zstd,
    /// Row groups of 10,000 rows.
    SmallRowGroups,
    /// Events in `events/day=N/part-0.parquet` (day only in the path), exposures in one file.
    DailyPartitions,
    /// CSV with a header line.
    Csv,
}

impl Shape {
    /// All shapes.
    pub const ALL: [Shape; 8] = [
        Shape::Recloop,
        Shape::PlainStrings,
        Shape::Int32Ids,
        Shape::TimestampType,
        Shape::Zstd,
        Shape::SmallRowGroups,
        Shape::DailyPartitions,
        Shape::Csv,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Recloop => "recloop",
            Shape::PlainStrings => "plain-strings",
            Shape::Int32Ids => "int32-ids",
            Shape::TimestampType => "timestamp-type",
            Shape::Zstd => "zstd",
            Shape::SmallRowGroups => "small-row-groups",
            Shape::DailyPartitions => "daily-partitions",
            Shape::Csv => "csv",
        }
    }
}

fn err(e: impl std::fmt::Display) -> LogsError {
    LogsError::invalid("shapes", e.to_string())
}

fn props(shape: Shape) -> WriterProperties {
    let b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    match shape {
        Shape::PlainStrings => b.set_dictionary_enabled(false),
        Shape::Zstd => b.set_compression(Compression::ZSTD(ZstdLevel::default())),
        Shape::SmallRowGroups => b.set_max_row_group_row_count(Some(10_000)),
        _ => b,
    }
    .build()
}

fn plain(col: &crate::columns::StrColumn<'_>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(
        col.keys
            .iter()
            .map(|&k| col.dictionary[k as usize].as_str()),
    ))
}

/// Convert a canonical batch into `shape` (without the columns named in `drop`).
fn convert(batch: &RecordBatch, shape: Shape, events: bool, drop: &[&str]) -> Result<RecordBatch> {
    let src = "shapes";
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = f.name().as_str();
        if drop.contains(&name) {
            continue;
        }
        let col: ArrayRef = match (shape, name) {
            (Shape::PlainStrings, "experiment" | "arm" | "metric") => {
                plain(&str_column(batch, name, src)?)
            }
            (Shape::Int32Ids, "unit_id") => Arc::new(Int32Array::from(
                u64_column(batch, name, src)?
                    .iter()
                    .map(|&u| i32::try_from(u).map_err(err))
                    .collect::<Result<Vec<_>>>()?,
            )),
            (Shape::Int32Ids, "day") => Arc::new(Int32Array::from(
                u32_column(batch, name, src)?
                    .iter()
                    .map(|&d| i32::try_from(d).map_err(err))
                    .collect::<Result<Vec<_>>>()?,
            )),
            (Shape::TimestampType, "ts") if events => Arc::new(TimestampMillisecondArray::from(
                i64_column(batch, name, src)?
                    .iter()
                    .map(|&t| t * 1000)
                    .collect::<Vec<_>>(),
            )),
            (Shape::TimestampType, "ts") => Arc::new(TimestampSecondArray::from(
                i64_column(batch, name, src)?.to_vec(),
            )),
            _ => c.clone(),
        };
        fields.push(Field::new(name, col.data_type().clone(), false));
        cols.push(col);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(err)
}

fn parquet_writer(path: &Path, sample: &RecordBatch, shape: Shape) -> Result<ArrowWriter<File>> {
    let f = File::create(path).map_err(|e| LogsError::io(path, e))?;
    ArrowWriter::try_new(f, sample.schema(), Some(props(shape)))
        .map_err(|e| LogsError::parquet(path, e))
}

/// Write `spec` into `dir` in `shape`; returns the number of event rows.
pub fn write_shape(spec: &SyntheticLogs, dir: &Path, shape: Shape) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| LogsError::io(dir, e))?;
    if matches!(shape, Shape::Recloop | Shape::Csv) {
        let format = if shape == Shape::Csv {
            LogFormat::Csv
        } else {
            LogFormat::Parquet
        };
        let mut w = LogWriter::create(dir, format)?;
        spec.write(&mut w)?;
        return Ok(w.finish()?.events);
    }
    // Exposures: one file.
    let xpath = dir.join(format!("{EXPOSURES}.parquet"));
    let mut xw: Option<ArrowWriter<File>> = None;
    for b in spec.exposure_batches()? {
        let b = convert(&b, shape, false, &[])?;
        let w = match xw.as_mut() {
            Some(w) => w,
            None => xw.insert(parquet_writer(&xpath, &b, shape)?),
        };
        w.write(&b).map_err(|e| LogsError::parquet(&xpath, e))?;
    }
    if let Some(w) = xw {
        w.close().map_err(|e| LogsError::parquet(&xpath, e))?;
    }
    // Events: one file, or one per day.
    let mut writers: BTreeMap<u32, (std::path::PathBuf, ArrowWriter<File>)> = BTreeMap::new();
    let mut rows = 0u64;
    spec.for_each_event_batch(|b| {
        rows += b.num_rows() as u64;
        if shape != Shape::DailyPartitions {
            let b = convert(&b, shape, true, &[])?;
            let (p, w) = match writers.entry(0) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let p = dir.join(format!("{EVENTS}.parquet"));
                    let w = parquet_writer(&p, &b, shape)?;
                    e.insert((p, w))
                }
            };
            w.write(&b)
                .map_err(|e| LogsError::parquet(p.as_path(), e))?;
            return Ok(());
        }
        let day = u32_column(&b, "day", "shapes")?.to_vec();
        let mut days: Vec<u32> = day.clone();
        days.sort_unstable();
        days.dedup();
        for d in days {
            let mask: arrow_array::BooleanArray = day.iter().map(|&x| Some(x == d)).collect();
            let cols = b
                .columns()
                .iter()
                .map(|c| arrow_select::filter::filter(c, &mask).map_err(err))
                .collect::<Result<Vec<_>>>()?;
            let part = RecordBatch::try_new(b.schema(), cols).map_err(err)?;
            let part = convert(&part, shape, true, &["day"])?;
            let (p, w) = match writers.entry(d) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let sub = dir.join(EVENTS).join(format!("day={d}"));
                    std::fs::create_dir_all(&sub).map_err(|e| LogsError::io(&sub, e))?;
                    let p = sub.join("part-0.parquet");
                    let w = parquet_writer(&p, &part, shape)?;
                    e.insert((p, w))
                }
            };
            w.write(&part)
                .map_err(|e| LogsError::parquet(p.as_path(), e))?;
        }
        Ok(())
    })?;
    for (_, (p, w)) in writers {
        w.close().map_err(|e| LogsError::parquet(&p, e))?;
    }
    Ok(rows)
}

/// The Arrow type a shape gives `ts` in events (for documentation and tests).
pub fn event_ts_type(shape: Shape) -> DataType {
    match shape {
        Shape::TimestampType => DataType::Timestamp(TimeUnit::Millisecond, None),
        _ => DataType::Int64,
    }
}
