//! Streaming readers of log directories: record batches in the canonical schema, for Parquet
//! (with column projection) and CSV (parsed with line/field errors).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::columns::{f64_column, i64_column, str_column, u32_column, u64_column};
use crate::error::{LogsError, Result};
use crate::schema::{
    EVENT_COLUMNS, EVENTS, EXPOSURE_COLUMNS, EXPOSURES, EventRow, ExposureRow, LogFormat,
    event_schema, exposure_schema,
};

/// Rows per record batch produced by the readers.
pub const READ_BATCH_ROWS: usize = 64 * 1024;

/// An iterator of record batches.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>>>;

/// A log directory holding an exposure table and an event table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReader {
    dir: PathBuf,
    format: LogFormat,
}

impl LogReader {
    /// Open `dir`, detecting the format from `exposures.parquet`/`events.parquet` or the `.csv` pair.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        for format in [LogFormat::Parquet, LogFormat::Csv] {
            let x = dir.join(format!("{EXPOSURES}.{}", format.extension()));
            let e = dir.join(format!("{EVENTS}.{}", format.extension()));
            if x.is_file() && e.is_file() {
                return Ok(LogReader { dir, format });
            }
        }
        Err(LogsError::Schema {
            path: dir,
            message: "expected exposures.parquet + events.parquet or exposures.csv + events.csv"
                .into(),
        })
    }

    /// The detected format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the exposure table.
    pub fn exposures_path(&self) -> PathBuf {
        self.dir
            .join(format!("{EXPOSURES}.{}", self.format.extension()))
    }

    /// Path of the event table.
    pub fn events_path(&self) -> PathBuf {
        self.dir
            .join(format!("{EVENTS}.{}", self.format.extension()))
    }

    /// Exposure batches (all columns).
    pub fn exposure_batches(&self) -> Result<BatchIter> {
        let path = self.exposures_path();
        match self.format {
            LogFormat::Parquet => parquet_batches(&path, &EXPOSURE_COLUMNS),
            LogFormat::Csv => csv_batches(&path, Table::Exposures),
        }
    }

    /// Event batches restricted to `columns` where the format allows (Parquet); CSV yields all.
    pub fn event_batches(&self, columns: &[&str]) -> Result<BatchIter> {
        let path = self.events_path();
        match self.format {
            LogFormat::Parquet => parquet_batches(&path, columns),
            LogFormat::Csv => csv_batches(&path, Table::Events),
        }
    }

    /// All exposure rows (convenience for small logs and tests).
    pub fn read_exposures(&self) -> Result<Vec<ExposureRow>> {
        let src = self.exposures_path().display().to_string();
        let mut out = Vec::new();
        for batch in self.exposure_batches()? {
            let b = batch?;
            let unit = u64_column(&b, "unit_id", &src)?;
            let exp = str_column(&b, "experiment", &src)?;
            let arm = str_column(&b, "arm", &src)?;
            let ts = i64_column(&b, "ts", &src)?;
            let day = u32_column(&b, "day", &src)?;
            for i in 0..b.num_rows() {
                out.push(ExposureRow {
                    unit_id: unit[i],
                    experiment: exp.dictionary[exp.keys[i] as usize].clone(),
                    arm: arm.dictionary[arm.keys[i] as usize].clone(),
                    ts: ts[i],
                    day: day[i],
                });
            }
        }
        Ok(out)
    }

    /// All event rows (convenience for small logs and tests).
    pub fn read_events(&self) -> Result<Vec<EventRow>> {
        let src = self.events_path().display().to_string();
        let mut out = Vec::new();
        for batch in self.event_batches(&EVENT_COLUMNS)? {
            let b = batch?;
            let unit = u64_column(&b, "unit_id", &src)?;
            let ts = i64_column(&b, "ts", &src)?;
            let day = u32_column(&b, "day", &src)?;
            let metric = str_column(&b, "metric", &src)?;
            let value = f64_column(&b, "value", &src)?;
            for i in 0..b.num_rows() {
                out.push(EventRow {
                    unit_id: unit[i],
                    ts: ts[i],
                    day: day[i],
                    metric: metric.dictionary[metric.keys[i] as usize].clone(),
                    value: value[i],
                });
            }
        }
        Ok(out)
    }
}

fn parquet_batches(path: &Path, columns: &[&str]) -> Result<BatchIter> {
    let file = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| LogsError::parquet(path, e))?;
    let schema = builder.parquet_schema();
    let mut roots = Vec::new();
    for &c in columns {
        let idx = (0..schema.root_schema().get_fields().len())
            .find(|&i| schema.root_schema().get_fields()[i].name() == c)
            .ok_or_else(|| LogsError::Schema {
                path: path.to_path_buf(),
                message: format!("missing column `{c}`"),
            })?;
        roots.push(idx);
    }
    let mask = ProjectionMask::roots(schema, roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| LogsError::parquet(path, e))?;
    let p = path.to_path_buf();
    Ok(Box::new(
        reader.map(move |b| b.map_err(|e| LogsError::parquet(&p, e))),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Exposures,
    Events,
}

/// CSV → record batches of the canonical schema.
struct CsvBatches {
    path: PathBuf,
    reader: csv::Reader<std::io::BufReader<File>>,
    table: Table,
    /// Index in the file of each canonical column.
    order: [usize; 5],
    dicts: [HashMap<String, i32>; 2],
    dict_values: [Vec<String>; 2],
    done: bool,
}

impl CsvBatches {
    fn err(&self, line: u64, field: &str, message: impl Into<String>) -> LogsError {
        LogsError::Csv {
            path: self.path.clone(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn key(&mut self, which: usize, s: &str) -> i32 {
        if let Some(&k) = self.dicts[which].get(s) {
            return k;
        }
        let k = self.dict_values[which].len() as i32;
        self.dict_values[which].push(s.to_string());
        self.dicts[which].insert(s.to_string(), k);
        k
    }

    fn dict(&self, which: usize, keys: Vec<i32>) -> Result<ArrayRef> {
        let values = Arc::new(StringArray::from(self.dict_values[which].clone()));
        DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), values)
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(|e| LogsError::parquet(&self.path, e))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let columns: &[&str; 5] = match self.table {
            Table::Exposures => &EXPOSURE_COLUMNS,
            Table::Events => &EVENT_COLUMNS,
        };
        let mut unit = Vec::new();
        let mut ts = Vec::new();
        let mut day = Vec::new();
        let mut s0 = Vec::new();
        let mut s1 = Vec::new();
        let mut value = Vec::new();
        let mut record = csv::StringRecord::new();
        while unit.len() < READ_BATCH_ROWS {
            let more = self.reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                self.err(line, "", e.to_string())
            })?;
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            let get = |i: usize| -> &str { record.get(self.order[i]).unwrap_or("").trim() };
            let parse_u64 = |i: usize| -> Result<u64> {
                get(i)
                    .parse::<u64>()
                    .map_err(|e| self.err(line, columns[i], format!("{:?}: {e}", get(i))))
            };
            let parse_i64 = |i: usize| -> Result<i64> {
                get(i)
                    .parse::<i64>()
                    .map_err(|e| self.err(line, columns[i], format!("{:?}: {e}", get(i))))
            };
            let parse_u32 = |i: usize| -> Result<u32> {
                get(i)
                    .parse::<u32>()
                    .map_err(|e| self.err(line, columns[i], format!("{:?}: {e}", get(i))))
            };
            match self.table {
                Table::Exposures => {
                    unit.push(parse_u64(0)?);
                    let (e, a) = (get(1).to_string(), get(2).to_string());
                    if e.is_empty() || a.is_empty() {
                        let f = if e.is_empty() { "experiment" } else { "arm" };
                        return Err(self.err(line, f, "empty value"));
                    }
                    let ts_v = parse_i64(3)?;
                    let day_v = parse_u32(4)?;
                    s0.push(self.key(0, &e));
                    s1.push(self.key(1, &a));
                    ts.push(ts_v);
                    day.push(day_v);
                }
                Table::Events => {
                    unit.push(parse_u64(0)?);
                    ts.push(parse_i64(1)?);
                    day.push(parse_u32(2)?);
                    let m = get(3).to_string();
                    let v: f64 = get(4)
                        .parse()
                        .map_err(|e| self.err(line, "value", format!("{:?}: {e}", get(4))))?;
                    if !v.is_finite() {
                        return Err(self.err(line, "value", format!("must be finite, got {v}")));
                    }
                    if m.is_empty() {
                        return Err(self.err(line, "metric", "empty value"));
                    }
                    s0.push(self.key(0, &m));
                    value.push(v);
                }
            }
        }
        if unit.is_empty() {
            return Ok(None);
        }
        let (schema, cols): (SchemaRef, Vec<ArrayRef>) = match self.table {
            Table::Exposures => (
                exposure_schema(),
                vec![
                    Arc::new(UInt64Array::from(unit)),
                    self.dict(0, s0)?,
                    self.dict(1, s1)?,
                    Arc::new(Int64Array::from(ts)),
                    Arc::new(UInt32Array::from(day)),
                ],
            ),
            Table::Events => (
                event_schema(),
                vec![
                    Arc::new(UInt64Array::from(unit)),
                    Arc::new(Int64Array::from(ts)),
                    Arc::new(UInt32Array::from(day)),
                    self.dict(0, s0)?,
                    Arc::new(Float64Array::from(value)),
                ],
            ),
        };
        RecordBatch::try_new(schema, cols)
            .map(Some)
            .map_err(|e| LogsError::parquet(&self.path, e))
    }
}

impl Iterator for CsvBatches {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn csv_batches(path: &Path, table: Table) -> Result<BatchIter> {
    let file = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let headers = reader
        .headers()
        .map_err(|e| LogsError::Csv {
            path: path.to_path_buf(),
            line: 1,
            field: String::new(),
            message: e.to_string(),
        })?
        .clone();
    let columns: &[&str; 5] = match table {
        Table::Exposures => &EXPOSURE_COLUMNS,
        Table::Events => &EVENT_COLUMNS,
    };
    let mut order = [0usize; 5];
    for (i, c) in columns.iter().enumerate() {
        order[i] = headers
            .iter()
            .position(|h| h.trim() == *c)
            .ok_or_else(|| LogsError::Csv {
                path: path.to_path_buf(),
                line: 1,
                field: (*c).to_string(),
                message: format!(
                    "missing column in header {:?}",
                    headers.iter().collect::<Vec<_>>()
                ),
            })?;
    }
    Ok(Box::new(CsvBatches {
        path: path.to_path_buf(),
        reader,
        table,
        order,
        dicts: [HashMap::new(), HashMap::new()],
        dict_values: [Vec::new(), Vec::new()],
        done: false,
    }))
}
