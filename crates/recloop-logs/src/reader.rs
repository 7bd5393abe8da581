//! Streaming readers of log directories: record batches for Parquet (column projection,
//! string columns kept dictionary-encoded) and CSV (parsed with line/field errors).
//!
//! A table is either one file (`events.parquet`, `events.csv`) or a directory of files
//! (`events/…/*.parquet` or `*.csv`, any depth), e.g. hive-style partitions by day such as
//! `events/day=3/part-0.parquet`. A column missing from a file is taken from a `column=value`
//! directory of its path (tools that partition by a column usually drop it from the files).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::columns::{f64_column, i64_column, str_column, u32_column, u64_column};
use crate::error::{LogsError, Result};
use crate::schema::{
    EVENT_COLUMNS, EVENTS, EXPOSURE_COLUMNS, EXPOSURES, EventRow, ExposureRow, LogFormat,
    event_schema, exposure_schema,
};

/// Rows per record batch produced by the readers.
pub const READ_BATCH_ROWS: usize = 64 * 1024;

/// String columns of the schema (read as dictionaries).
pub(crate) const STRING_COLUMNS: [&str; 3] = ["experiment", "arm", "metric"];

/// An iterator of record batches.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>>>;

/// One file of a table with the `column=value` directories of its path below the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// The file.
    pub path: PathBuf,
    /// Its format (from the extension).
    pub format: LogFormat,
    /// Hive-style partition values, outermost first.
    pub partitions: Vec<(String, String)>,
}

impl TableFile {
    /// The partition value of `column`, if the path has one.
    pub fn partition(&self, column: &str) -> Option<&str> {
        self.partitions
            .iter()
            .rev()
            .find(|(k, _)| k == column)
            .map(|(_, v)| v.as_str())
    }
}

/// A log directory holding an exposure table and an event table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReader {
    dir: PathBuf,
    format: LogFormat,
    exposures: PathBuf,
    events: PathBuf,
    exposure_files: Vec<TableFile>,
    event_files: Vec<TableFile>,
}

/// Files of the table `stem` in `dir`: `stem.parquet`, `stem.csv`, or a directory `stem/`.
fn table_files(dir: &Path, stem: &str) -> Result<Option<(PathBuf, Vec<TableFile>)>> {
    for format in [LogFormat::Parquet, LogFormat::Csv] {
        let p = dir.join(format!("{stem}.{}", format.extension()));
        if p.is_file() {
            let f = TableFile {
                path: p.clone(),
                format,
                partitions: Vec::new(),
            };
            return Ok(Some((p, vec![f])));
        }
    }
    let root = dir.join(stem);
    if !root.is_dir() {
        return Ok(None);
    }
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| LogsError::io(&d, e))?;
        for entry in entries {
            let path = entry.map_err(|e| LogsError::io(&d, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name.starts_with('_') {
                continue; // hidden files, _SUCCESS markers, _delta_log
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("parquet") => LogFormat::Parquet,
                Some("csv") => LogFormat::Csv,
                _ => continue,
            };
            let partitions = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .parent()
                .map(|p| {
                    p.components()
                        .filter_map(|c| c.as_os_str().to_str())
                        .filter_map(|c| c.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            files.push(TableFile {
                path,
                format,
                partitions,
            });
        }
    }
    // A fixed order (numeric partition values compare as numbers) keeps results reproducible.
    files.sort_by_key(|a| natural_key(&a.path));
    if files.is_empty() {
        return Err(LogsError::Schema {
            path: root,
            message: "directory holds no .parquet or .csv files".into(),
        });
    }
    Ok(Some((root, files)))
}

/// Path components with digit runs as numbers (`day=10` after `day=9`).
fn natural_key(p: &Path) -> Vec<(String, u64, String)> {
    p.components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| {
            let digits_at = c.find(|ch: char| ch.is_ascii_digit()).unwrap_or(c.len());
            let (head, rest) = c.split_at(digits_at);
            let end = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            let num = rest[..end].parse::<u64>().unwrap_or(0);
            (head.to_string(), num, rest[end..].to_string())
        })
        .collect()
}

impl LogReader {
    /// Open `dir`: each table is `NAME.parquet`, `NAME.csv` or a directory `NAME/` of such
    /// files (hive-style partitions allowed), for NAME = `exposures` and `events`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let missing = || LogsError::Schema {
            path: dir.clone(),
            message: "expected exposures.parquet + events.parquet, exposures.csv + events.csv, \
                      or directories exposures/ and events/ of such files"
                .into(),
        };
        let (exposures, exposure_files) = table_files(&dir, EXPOSURES)?.ok_or_else(missing)?;
        let (events, event_files) = table_files(&dir, EVENTS)?.ok_or_else(missing)?;
        let format = event_files.first().map_or(LogFormat::Parquet, |f| f.format);
        Ok(LogReader {
            dir,
            format,
            exposures,
            events,
            exposure_files,
            event_files,
        })
    }

    /// The format of the (first) event file.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the exposure table (a file or a directory).
    pub fn exposures_path(&self) -> PathBuf {
        self.exposures.clone()
    }

    /// Path of the event table (a file or a directory).
    pub fn events_path(&self) -> PathBuf {
        self.events.clone()
    }

    /// The files of the exposure table, in reading order.
    pub fn exposure_files(&self) -> &[TableFile] {
        &self.exposure_files
    }

    /// The files of the event table, in reading order.
    pub fn event_files(&self) -> &[TableFile] {
        &self.event_files
    }

    /// Exposure batches (all columns), file after file.
    pub fn exposure_batches(&self) -> Result<BatchIter> {
        files_batches(
            self.exposure_files.clone(),
            &EXPOSURE_COLUMNS,
            Table::Exposures,
        )
    }

    /// Event batches restricted to `columns` where the format allows (Parquet); CSV yields all.
    pub fn event_batches(&self, columns: &[&str]) -> Result<BatchIter> {
        let columns: Vec<&'static str> = EVENT_COLUMNS
            .iter()
            .copied()
            .filter(|c| columns.contains(c))
            .collect();
        files_batches(self.event_files.clone(), &columns, Table::Events)
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

/// Batches of several files, one after the other, with partition columns filled in.
fn files_batches(
    files: Vec<TableFile>,
    columns: &[&'static str],
    table: Table,
) -> Result<BatchIter> {
    let columns = columns.to_vec();
    let mut iters = files
        .into_iter()
        .map(move |f| file_batches(&f, &columns, table));
    let mut current: Option<BatchIter> = None;
    Ok(Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(it) = current.as_mut() {
                if let Some(b) = it.next() {
                    return Some(b);
                }
                current = None;
            }
            match iters.next()? {
                Ok(it) => current = Some(it),
                Err(e) => return Some(Err(e)),
            }
        }
    })))
}

/// Batches of one file (Parquet: only `columns`; CSV: all), partition columns filled in.
pub(crate) fn file_batches(
    file: &TableFile,
    columns: &[&'static str],
    table: Table,
) -> Result<BatchIter> {
    match file.format {
        LogFormat::Parquet => parquet_batches(file, columns),
        LogFormat::Csv => csv_batches(file, table),
    }
}

/// Parquet metadata of a file, with the string columns hinted as dictionaries so that
/// dictionary-encoded pages are read without materialising a string per row.
pub(crate) fn parquet_metadata(path: &Path) -> Result<ArrowReaderMetadata> {
    let file = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let plain = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|e| LogsError::parquet(path, e))?;
    let fields: Vec<Field> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let stringy = matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Binary
                    | DataType::LargeBinary
            );
            if stringy && STRING_COLUMNS.contains(&f.name().as_str()) {
                Field::new(
                    f.name(),
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    f.is_nullable(),
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let hint = Arc::new(Schema::new(fields));
    ArrowReaderMetadata::try_new(
        plain.metadata().clone(),
        ArrowReaderOptions::new().with_schema(hint),
    )
    .map_err(|e| LogsError::parquet(path, e))
}

/// Root column index of `name` in a Parquet file, if present.
pub(crate) fn parquet_column(meta: &ArrowReaderMetadata, name: &str) -> Option<usize> {
    let root = meta.parquet_schema().root_schema().get_fields();
    root.iter().position(|f| f.name() == name)
}

/// A constant column of `rows` rows holding a partition value, typed as the canonical column.
pub(crate) fn partition_column(
    file: &TableFile,
    column: &str,
    value: &str,
    rows: usize,
) -> Result<ArrayRef> {
    let bad = |what: &str| LogsError::Schema {
        path: file.path.clone(),
        message: format!("partition directory `{column}={value}` is not {what}"),
    };
    Ok(match column {
        "unit_id" => Arc::new(UInt64Array::from(vec![
            value.parse::<u64>().map_err(
                |_| bad("an unsigned integer")
            )?;
            rows
        ])),
        "ts" => Arc::new(Int64Array::from(vec![
            value
                .parse::<i64>()
                .map_err(|_| bad("an integer"))?;
            rows
        ])),
        "day" => Arc::new(UInt32Array::from(vec![
            value.parse::<u32>().map_err(
                |_| bad("a day index (u32)")
            )?;
            rows
        ])),
        "value" => Arc::new(Float64Array::from(vec![
            value
                .parse::<f64>()
                .map_err(|_| bad("a number"))?;
            rows
        ])),
        _ => Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(vec![0; rows]),
                Arc::new(StringArray::from(vec![value.to_string()])),
            )
            .map_err(|e| LogsError::parquet(&file.path, e))?,
        ),
    })
}

fn parquet_batches(file: &TableFile, columns: &[&'static str]) -> Result<BatchIter> {
    let path = file.path.as_path();
    let meta = parquet_metadata(path)?;
    let mut roots = Vec::new();
    let mut from_path: Vec<(&'static str, String)> = Vec::new();
    for &c in columns {
        match parquet_column(&meta, c) {
            Some(idx) => roots.push(idx),
            None => match file.partition(c) {
                Some(v) => from_path.push((c, v.to_string())),
                None => {
                    return Err(LogsError::Schema {
                        path: path.to_path_buf(),
                        message: format!("missing column `{c}`"),
                    });
                }
            },
        }
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let handle = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, meta)
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| LogsError::parquet(path, e))?;
    let file = file.clone();
    Ok(Box::new(reader.map(move |b| {
        let b = b.map_err(|e| LogsError::parquet(&file.path, e))?;
        if from_path.is_empty() {
            return Ok(b);
        }
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        for (c, v) in &from_path {
            let col = partition_column(&file, c, v, b.num_rows())?;
            fields.push(Field::new(*c, col.data_type().clone(), false));
            cols.push(col);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| LogsError::parquet(&file.path, e))
    })))
}

/// The two tables of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Exposures,
    Events,
}

/// CSV → record batches of the canonical schema.
struct CsvBatches {
    path: PathBuf,
    reader: csv::Reader<std::io::BufReader<File>>,
    table: Table,
    /// Index in the file of each canonical column (`None`: from the partition value).
    order: [Option<usize>; 5],
    /// Partition values of columns missing from the header.
    fixed: [String; 5],
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
            let get = |i: usize| -> &str {
                match self.order[i] {
                    Some(j) => record.get(j).unwrap_or("").trim(),
                    None => self.fixed[i].as_str(),
                }
            };
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

/// A CSV reader past the header, the field index of each canonical column (`None`: from the
/// partition directory) and those partition values.
pub(crate) type CsvHeader = (
    csv::Reader<std::io::BufReader<File>>,
    [Option<usize>; 5],
    [String; 5],
);

/// Header of a CSV file: the position of each canonical column, or its partition value.
pub(crate) fn csv_header(file: &TableFile, columns: &[&str; 5]) -> Result<CsvHeader> {
    let path = file.path.as_path();
    let f = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::new(f));
    let headers = reader
        .headers()
        .map_err(|e| LogsError::Csv {
            path: path.to_path_buf(),
            line: 1,
            field: String::new(),
            message: e.to_string(),
        })?
        .clone();
    let mut order = [None; 5];
    let mut fixed: [String; 5] = Default::default();
    for (i, c) in columns.iter().enumerate() {
        order[i] = headers.iter().position(|h| h.trim() == *c);
        if order[i].is_none() {
            fixed[i] = file
                .partition(c)
                .ok_or_else(|| LogsError::Csv {
                    path: path.to_path_buf(),
                    line: 1,
                    field: (*c).to_string(),
                    message: format!(
                        "missing column in header {:?}",
                        headers.iter().collect::<Vec<_>>()
                    ),
                })?
                .to_string();
        }
    }
    Ok((reader, order, fixed))
}

fn csv_batches(file: &TableFile, table: Table) -> Result<BatchIter> {
    let columns: &[&str; 5] = match table {
        Table::Exposures => &EXPOSURE_COLUMNS,
        Table::Events => &EVENT_COLUMNS,
    };
    let (reader, order, fixed) = csv_header(file, columns)?;
    Ok(Box::new(CsvBatches {
        path: file.path.clone(),
        reader,
        table,
        order,
        fixed,
        dicts: [HashMap::new(), HashMap::new()],
        dict_values: [Vec::new(), Vec::new()],
        done: false,
    }))
}
