//! Parallel scans of event rows into per-unit sums.
//!
//! An [`EventSource`] splits its rows into a fixed list of parts (Parquet row groups, byte
//! ranges of CSV files, chunks of a generator) that depend only on the data, never on the
//! number of threads. Each part is scanned on its own into a private per-unit accumulator
//! ([`EventSink`]); the accumulators are then added in part order. Floating-point sums are
//! therefore the same bit for bit whatever the thread count.
//!
//! Parquet parts read only the columns they need, skip row groups whose `metric` statistics
//! exclude the wanted events (or whose `day` statistics exclude `max_day`), do not decode the
//! `metric` column of a row group holding a single wanted event, and otherwise decode `metric`
//! first (as dictionary keys) and the other columns only for the selected rows when few rows
//! match. CSV parts (byte ranges cut at line ends) parse numbers by hand and look at the
//! `metric` field before the others; quoted fields are handled, but not line breaks inside
//! quotes.

use std::fs::File;
use std::path::Path;

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use rayon::prelude::*;

use crate::columns::{f64_column, i64_column, str_column, u32_column, u64_column};
use crate::error::{LogsError, Result};
use crate::reader::{TableFile, csv_header, parquet_column, parquet_metadata};
use crate::schema::{EVENT_COLUMNS, LogFormat};
use crate::unit_index::UnitLookup;

/// Marks a row whose event is not aggregated.
pub const NO_SLOT: u32 = u32::MAX;

/// Rows per Parquet part (consecutive row groups of one file are grouped up to this size).
pub const PART_ROWS: usize = 1 << 20;

/// Bytes per CSV part.
pub const PART_BYTES: u64 = 16 << 20;

/// Rows decoded at a time inside a part.
const SCAN_BATCH_ROWS: usize = 128 * 1024;

/// Which wanted event each row belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Slots<'a> {
    /// Every row is this event slot.
    All(u32),
    /// One slot per row ([`NO_SLOT`]: skip the row).
    PerRow(&'a [u32]),
}

/// Event rows as columns of equal length.
#[derive(Debug, Clone, Copy)]
pub struct EventRows<'a> {
    /// Unit of each row.
    pub unit: &'a [u64],
    /// Time of each row (same unit as the exposures).
    pub ts: &'a [i64],
    /// Value of each row.
    pub value: &'a [f64],
    /// Day of each row; needed only with `max_day` when the rows are not already restricted.
    pub day: Option<&'a [u32]>,
    /// Event slot of each row (see [`EventSink::slot`]).
    pub slots: Slots<'a>,
}

/// Everything the event scan needs from the exposures, frozen before the first event.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub(crate) lookup: UnitLookup,
    /// (first exposure time, next membership of the same unit) per membership.
    pub(crate) chain: Vec<(i64, u32)>,
    pub(crate) stride: usize,
    pub(crate) n_events: usize,
    pub(crate) cuped: bool,
    pub(crate) max_day: Option<u32>,
    pub(crate) event_names: Vec<String>,
}

impl Frozen {
    pub(crate) fn acc_len(&self) -> usize {
        self.chain.len() * self.stride
    }
}

/// A private accumulator of per-unit sums for one part of an [`EventSource`].
pub struct EventSink<'a> {
    f: &'a Frozen,
    pub(crate) acc: Vec<f64>,
    pub(crate) read: u64,
    pub(crate) used: u64,
}

impl<'a> EventSink<'a> {
    pub(crate) fn new(f: &'a Frozen, acc: Vec<f64>) -> Self {
        EventSink {
            f,
            acc,
            read: 0,
            used: 0,
        }
    }

    /// The slot of event `name`, if it is aggregated.
    pub fn slot(&self, name: &str) -> Option<u32> {
        self.f
            .event_names
            .iter()
            .position(|e| e == name)
            .map(|p| p as u32)
    }

    /// Names of the aggregated events, by slot.
    pub fn events(&self) -> &[String] {
        &self.f.event_names
    }

    /// Rows with a day above this are ignored.
    pub fn max_day(&self) -> Option<u32> {
        self.f.max_day
    }

    /// Count `rows` rows as read (including rows skipped without decoding).
    pub fn count_read(&mut self, rows: u64) {
        self.read += rows;
    }

    /// Add rows (not counted as read; see [`count_read`](Self::count_read)).
    pub fn add_rows(&mut self, rows: &EventRows<'_>) -> Result<()> {
        let n = rows.unit.len();
        let slots_len = match rows.slots {
            Slots::All(_) => n,
            Slots::PerRow(s) => s.len(),
        };
        if rows.ts.len() != n
            || rows.value.len() != n
            || slots_len != n
            || rows.day.is_some_and(|d| d.len() != n)
        {
            return Err(LogsError::invalid("events", "columns of different lengths"));
        }
        if let Slots::All(s) = rows.slots
            && s as usize >= self.f.n_events
        {
            return Ok(());
        }
        let day = match (self.f.max_day, rows.day) {
            (Some(m), Some(d)) => Some((m, d)),
            _ => None,
        };
        let f = self.f;
        let acc = &mut self.acc[..];
        let mut used = 0u64;
        match (&f.lookup, rows.slots, day) {
            // The common case: one event, dense ids, no day window.
            (UnitLookup::Direct { base, heads }, Slots::All(slot), None) => {
                let slot = slot as usize;
                for i in 0..n {
                    let u = rows.unit[i].wrapping_sub(*base);
                    if let Some(&head) = heads.get(u as usize) {
                        used += credit_direct(f, acc, head, slot, rows.ts[i], rows.value[i]);
                    }
                }
            }
            (lookup, slots, day) => {
                for i in 0..n {
                    let slot = match slots {
                        Slots::All(s) => s,
                        Slots::PerRow(s) => s[i],
                    };
                    if slot as usize >= f.n_events {
                        continue;
                    }
                    if let Some((max, d)) = day
                        && d[i] > max
                    {
                        continue;
                    }
                    let Some((first_ts, m, more)) = lookup.get(rows.unit[i]) else {
                        continue;
                    };
                    if !more {
                        let base = m as usize * f.stride + slot as usize;
                        if rows.ts[i] >= first_ts {
                            acc[base] += rows.value[i];
                            used += 1;
                        } else if f.cuped {
                            acc[base + f.n_events] += rows.value[i];
                            used += 1;
                        }
                    } else {
                        used += credit_chain(f, acc, m, slot as usize, rows.ts[i], rows.value[i]);
                    }
                }
            }
        }
        self.used += used;
        Ok(())
    }

    /// Add a record batch of events (`unit_id`, `ts`, `metric`, `value`, and `day` with
    /// `max_day`), counting its rows as read.
    pub fn add_batch(&mut self, batch: &RecordBatch, source: &str) -> Result<()> {
        let unit = u64_column(batch, "unit_id", source)?;
        let ts = i64_column(batch, "ts", source)?;
        let metric = str_column(batch, "metric", source)?;
        let value = f64_column(batch, "value", source)?;
        let day = match self.f.max_day {
            Some(_) => Some(u32_column(batch, "day", source)?),
            None => None,
        };
        let slot_of: Vec<u32> = metric
            .dictionary
            .iter()
            .map(|name| self.slot(name).unwrap_or(NO_SLOT))
            .collect();
        let slots: Vec<u32> = metric.keys.iter().map(|&k| slot_of[k as usize]).collect();
        self.count_read(batch.num_rows() as u64);
        self.add_rows(&EventRows {
            unit: &unit,
            ts: &ts,
            value: &value,
            day: day.as_deref(),
            slots: Slots::PerRow(&slots),
        })
    }
}

/// Credit one row to the unit with direct head `head` (branch-free on the exposure time).
#[inline(always)]
fn credit_direct(
    f: &Frozen,
    acc: &mut [f64],
    head: (i64, u32, u32),
    slot: usize,
    ts: i64,
    v: f64,
) -> u64 {
    let (first_ts, m, more) = head;
    if m == NO_SLOT {
        return 0;
    }
    if more != 0 {
        return credit_chain(f, acc, m, slot, ts, v);
    }
    let post = ts >= first_ts;
    let add = post || f.cuped;
    // Adding +0.0 leaves a sum unchanged (sums start at +0.0 and never become -0.0).
    let idx = m as usize * f.stride + slot + usize::from(!post && f.cuped) * f.n_events;
    acc[idx] += if add { v } else { 0.0 };
    u64::from(add)
}

/// Credit a value to every membership of a unit exposed in several experiments.
fn credit_chain(f: &Frozen, acc: &mut [f64], head: u32, slot: usize, ts: i64, v: f64) -> u64 {
    let mut used = 0;
    let mut m = head;
    while m != NO_SLOT {
        let (first_ts, next) = f.chain[m as usize];
        let base = m as usize * f.stride + slot;
        if ts >= first_ts {
            acc[base] += v;
            used += 1;
        } else if f.cuped {
            acc[base + f.n_events] += v;
            used += 1;
        }
        m = next;
    }
    used
}

/// Event rows split into independent parts that are scanned in parallel.
///
/// Parts must depend only on the data (not on the number of threads), and `scan_part` must
/// feed a part's rows in a fixed order: the aggregation adds the parts' sums in part order,
/// which makes results reproducible bit for bit.
pub trait EventSource: Sync {
    /// Number of parts.
    fn parts(&self) -> usize;
    /// Feed the rows of part `part` to `sink`.
    fn scan_part(&self, part: usize, sink: &mut EventSink<'_>) -> Result<()>;
}

/// Scan every part of `source` in parallel into `acc` (per-unit sums), adding the parts in
/// order; returns (rows read, rows used).
pub(crate) fn scan_source(
    f: &Frozen,
    acc: &mut [f64],
    source: &dyn EventSource,
) -> Result<(u64, u64)> {
    let parts = source.parts();
    let threads = rayon::current_num_threads().max(1);
    // Parts in flight are bounded so that memory stays proportional to units × threads.
    let part_bytes = (f.acc_len() * 8).max(1);
    let window = (2 * threads).min((256 << 20) / part_bytes).max(threads);
    let (mut read, mut used) = (0u64, 0u64);
    let mut spare: Vec<Vec<f64>> = Vec::new();
    let mut start = 0;
    while start < parts {
        let end = (start + window).min(parts);
        let mut buffers: Vec<Vec<f64>> = (start..end)
            .map(|_| spare.pop().unwrap_or_default())
            .collect();
        let results: Vec<Result<(Vec<f64>, u64, u64)>> = buffers
            .par_drain(..)
            .zip(start..end)
            .map(|(mut buf, k)| {
                buf.clear();
                buf.resize(f.acc_len(), 0.0);
                let mut sink = EventSink::new(f, buf);
                source.scan_part(k, &mut sink)?;
                Ok((sink.acc, sink.read, sink.used))
            })
            .collect();
        for r in results {
            let (part, r, u) = r?;
            for (a, p) in acc.iter_mut().zip(&part) {
                *a += *p;
            }
            read += r;
            used += u;
            spare.push(part);
        }
        start = end;
    }
    Ok((read, used))
}

/// Run `f` on a pool of `threads` threads (`None`: rayon's global pool, all cores).
pub fn with_threads<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match threads {
        None => Ok(f()),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build()
                .map_err(|e| LogsError::invalid("threads", e.to_string()))?;
            Ok(pool.install(f))
        }
    }
}

/// Column indices of an event file (root index for projection, leaf index for statistics).
#[derive(Debug, Clone, Copy)]
struct Col {
    root: usize,
    leaf: Option<usize>,
}

#[derive(Debug)]
enum SourceFile {
    Parquet {
        file: TableFile,
        meta: ArrowReaderMetadata,
        cols: [Option<Col>; 5],
    },
    Csv {
        file: TableFile,
        /// Field index of each canonical column (`None`: partition value in `fixed`).
        order: [Option<usize>; 5],
        fixed: [String; 5],
        /// Fields per record.
        width: usize,
    },
}

#[derive(Debug, Clone)]
enum Part {
    RowGroups { file: usize, groups: Vec<usize> },
    Bytes { file: usize, start: u64, end: u64 },
}

/// The event table of a log directory as an [`EventSource`]: Parquet row groups and CSV byte
/// ranges of all its files, in file order.
#[derive(Debug)]
pub struct FileEvents {
    files: Vec<SourceFile>,
    parts: Vec<Part>,
}

const UNIT: usize = 0;
const TS: usize = 1;
const DAY: usize = 2;
const METRIC: usize = 3;
const VALUE: usize = 4;

impl FileEvents {
    /// Plan a scan of `files`; files in a `day=N` partition with N > `max_day` are left out.
    /// Consecutive row groups of a file form a part of at least [`PART_ROWS`] rows.
    pub fn open(files: &[TableFile], max_day: Option<u32>) -> Result<Self> {
        Self::open_with_part_rows(files, max_day, PART_ROWS)
    }

    /// As [`open`](Self::open) with parts of at least `part_rows` Parquet rows (more rows per
    /// part means fewer per-unit accumulators to allocate and add when units are many).
    pub fn open_with_part_rows(
        files: &[TableFile],
        max_day: Option<u32>,
        part_rows: usize,
    ) -> Result<Self> {
        let kept: Vec<&TableFile> = files
            .iter()
            .filter(|f| match (max_day, f.partition("day")) {
                (Some(max), Some(d)) => d.parse::<u32>().map_or(true, |d| d <= max),
                _ => true,
            })
            .collect();
        let opened: Vec<(SourceFile, Vec<Part>)> = kept
            .par_iter()
            .map(|f| open_file(f, part_rows))
            .collect::<Result<_>>()?;
        let mut out = FileEvents {
            files: Vec::new(),
            parts: Vec::new(),
        };
        for (i, (file, parts)) in opened.into_iter().enumerate() {
            out.files.push(file);
            out.parts.extend(parts.into_iter().map(|p| match p {
                Part::RowGroups { groups, .. } => Part::RowGroups { file: i, groups },
                Part::Bytes { start, end, .. } => Part::Bytes {
                    file: i,
                    start,
                    end,
                },
            }));
        }
        Ok(out)
    }
}

fn open_file(f: &TableFile, part_rows: usize) -> Result<(SourceFile, Vec<Part>)> {
    match f.format {
        LogFormat::Parquet => {
            let meta = parquet_metadata(&f.path)?;
            let descr = meta.parquet_schema();
            let mut cols = [None; 5];
            for (i, name) in EVENT_COLUMNS.iter().enumerate() {
                cols[i] = parquet_column(&meta, name).map(|root| Col {
                    root,
                    leaf: descr
                        .columns()
                        .iter()
                        .position(|c| c.path().string() == *name),
                });
                if cols[i].is_none() && f.partition(name).is_none() && i != DAY {
                    return Err(LogsError::Schema {
                        path: f.path.clone(),
                        message: format!("missing column `{name}`"),
                    });
                }
            }
            let mut parts = Vec::new();
            let mut groups = Vec::new();
            let mut rows = 0usize;
            for (i, rg) in meta.metadata().row_groups().iter().enumerate() {
                groups.push(i);
                rows += usize::try_from(rg.num_rows()).unwrap_or(0);
                if rows >= part_rows {
                    parts.push(Part::RowGroups {
                        file: 0,
                        groups: std::mem::take(&mut groups),
                    });
                    rows = 0;
                }
            }
            if !groups.is_empty() {
                parts.push(Part::RowGroups { file: 0, groups });
            }
            Ok((
                SourceFile::Parquet {
                    file: f.clone(),
                    meta,
                    cols,
                },
                parts,
            ))
        }
        LogFormat::Csv => {
            let (_, order, fixed) = csv_header(f, &EVENT_COLUMNS)?;
            let handle = File::open(&f.path).map_err(|e| LogsError::io(&f.path, e))?;
            let len = handle
                .metadata()
                .map_err(|e| LogsError::io(&f.path, e))?
                .len();
            let header_end = next_line(&handle, &f.path, 0, len)?;
            let header = read_range(&handle, &f.path, 0, header_end)?;
            let width = split_fields(trim_line(&header), &mut [(0, 0); MAX_FIELDS]);
            let mut parts = Vec::new();
            let mut start = header_end;
            while start < len {
                let end = if len - start <= PART_BYTES {
                    len
                } else {
                    next_line(&handle, &f.path, start + PART_BYTES, len)?
                };
                parts.push(Part::Bytes {
                    file: 0,
                    start,
                    end,
                });
                start = end;
            }
            Ok((
                SourceFile::Csv {
                    file: f.clone(),
                    order,
                    fixed,
                    width,
                },
                parts,
            ))
        }
    }
}

impl EventSource for FileEvents {
    fn parts(&self) -> usize {
        self.parts.len()
    }

    fn scan_part(&self, part: usize, sink: &mut EventSink<'_>) -> Result<()> {
        match self.parts.get(part) {
            Some(Part::RowGroups { file, groups }) => match &self.files[*file] {
                SourceFile::Parquet { file, meta, cols } => {
                    for &g in groups {
                        scan_row_group(file, meta, cols, g, sink)?;
                    }
                    Ok(())
                }
                SourceFile::Csv { .. } => Err(LogsError::invalid("part", "internal: not CSV")),
            },
            Some(Part::Bytes { file, start, end }) => match &self.files[*file] {
                SourceFile::Csv {
                    file,
                    order,
                    fixed,
                    width,
                } => scan_csv(file, order, fixed, *width, *start, *end, sink),
                SourceFile::Parquet { .. } => {
                    Err(LogsError::invalid("part", "internal: not Parquet"))
                }
            },
            None => Err(LogsError::invalid("part", "out of range")),
        }
    }
}

/// What the statistics of a row group say about the wanted events.
enum MetricPlan {
    Skip,
    All(u32),
    Decode,
}

fn metric_plan(
    file: &TableFile,
    col: Option<Col>,
    rg: &RowGroupMetaData,
    sink: &EventSink<'_>,
) -> MetricPlan {
    let Some(col) = col else {
        // From the partition directory (checked when the file was opened).
        return match file.partition("metric").and_then(|m| sink.slot(m)) {
            Some(s) => MetricPlan::All(s),
            None => MetricPlan::Skip,
        };
    };
    let Some(stats) = col.leaf.and_then(|l| rg.column(l).statistics()) else {
        return MetricPlan::Decode;
    };
    let (Some(min), Some(max)) = (stats.min_bytes_opt(), stats.max_bytes_opt()) else {
        return MetricPlan::Decode;
    };
    // Bounds, exact or truncated, enclose every value; only the deprecated fields (signed
    // byte order) may not.
    if stats.is_min_max_deprecated() {
        return MetricPlan::Decode;
    }
    if min == max && stats.null_count_opt() == Some(0) {
        return match std::str::from_utf8(min).ok().and_then(|m| sink.slot(m)) {
            Some(s) => MetricPlan::All(s),
            None => MetricPlan::Skip,
        };
    }
    let in_range = sink
        .events()
        .iter()
        .any(|e| e.as_bytes() >= min && e.as_bytes() <= max);
    if in_range {
        MetricPlan::Decode
    } else {
        MetricPlan::Skip
    }
}

/// Day range of a row group from its statistics, if known.
fn day_range(col: Option<Col>, rg: &RowGroupMetaData) -> Option<(i64, i64)> {
    let stats = col?.leaf.and_then(|l| rg.column(l).statistics())?;
    match stats {
        Statistics::Int32(v) => Some((i64::from(*v.min_opt()?), i64::from(*v.max_opt()?))),
        Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
        _ => None,
    }
}

fn scan_row_group(
    file: &TableFile,
    meta: &ArrowReaderMetadata,
    cols: &[Option<Col>; 5],
    group: usize,
    sink: &mut EventSink<'_>,
) -> Result<()> {
    let path = file.path.as_path();
    let source = path.display().to_string();
    let rg = meta.metadata().row_group(group);
    let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
    sink.count_read(rows as u64);
    // Day window: from the partition (file already kept), the statistics, or decoded.
    let mut decode_day = false;
    if let Some(max) = sink.max_day()
        && file.partition("day").is_none()
    {
        match day_range(cols[DAY], rg) {
            Some((lo, _)) if lo > i64::from(max) => return Ok(()),
            Some((lo, hi)) if lo >= 0 && hi <= i64::from(max) => {}
            _ => {
                if cols[DAY].is_none() {
                    return Err(LogsError::Schema {
                        path: path.to_path_buf(),
                        message: "missing column `day` (needed for max_day)".into(),
                    });
                }
                decode_day = true;
            }
        }
    }
    let open = || File::open(path).map_err(|e| LogsError::io(path, e));
    let plan = metric_plan(file, cols[METRIC], rg, sink);
    // Decode the metric keys first; the other columns follow for the matching rows only.
    let mut slots: Vec<u32> = Vec::new();
    let mut selection = None;
    match plan {
        MetricPlan::Skip => return Ok(()),
        MetricPlan::All(_) => {}
        MetricPlan::Decode => {
            let col = cols[METRIC].ok_or_else(|| LogsError::Schema {
                path: path.to_path_buf(),
                message: "missing column `metric`".into(),
            })?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, meta.clone())
                .with_row_groups(vec![group])
                .with_projection(ProjectionMask::roots(meta.parquet_schema(), [col.root]))
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(|e| LogsError::parquet(path, e))?;
            slots.reserve(rows);
            for b in reader {
                let b = b.map_err(|e| LogsError::parquet(path, e))?;
                let m = str_column(&b, "metric", &source)?;
                let slot_of: Vec<u32> = m
                    .dictionary
                    .iter()
                    .map(|name| sink.slot(name).unwrap_or(NO_SLOT))
                    .collect();
                slots.extend(m.keys.iter().map(|&k| slot_of[k as usize]));
            }
            let selected = slots.iter().filter(|&&s| s != NO_SLOT).count();
            if selected == 0 {
                return Ok(());
            }
            if selected * 2 < slots.len() {
                let mask: BooleanArray = slots.iter().map(|&s| Some(s != NO_SLOT)).collect();
                selection = Some(RowSelection::from_filters(&[mask]));
                slots.retain(|&s| s != NO_SLOT);
            }
        }
    }
    let mut roots = Vec::with_capacity(4);
    for (i, name) in [(UNIT, "unit_id"), (TS, "ts"), (VALUE, "value")] {
        match cols[i] {
            Some(c) => roots.push(c.root),
            None => {
                return Err(LogsError::Schema {
                    path: path.to_path_buf(),
                    message: format!("column `{name}` must be stored in the file"),
                });
            }
        }
    }
    if decode_day && let Some(c) = cols[DAY] {
        roots.push(c.root);
    }
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, meta.clone())
        .with_row_groups(vec![group])
        .with_projection(ProjectionMask::roots(meta.parquet_schema(), roots))
        .with_batch_size(SCAN_BATCH_ROWS);
    if let Some(sel) = selection {
        builder = builder.with_row_selection(sel);
    }
    let reader = builder.build().map_err(|e| LogsError::parquet(path, e))?;
    let mut offset = 0;
    for b in reader {
        let b = b.map_err(|e| LogsError::parquet(path, e))?;
        let n = b.num_rows();
        let unit = u64_column(&b, "unit_id", &source)?;
        let ts = i64_column(&b, "ts", &source)?;
        let value = f64_column(&b, "value", &source)?;
        let day = if decode_day {
            Some(u32_column(&b, "day", &source)?)
        } else {
            None
        };
        let slots = match plan {
            MetricPlan::All(s) => Slots::All(s),
            _ => Slots::PerRow(slots.get(offset..offset + n).ok_or_else(|| {
                LogsError::parquet(path, "metric and value columns differ in length")
            })?),
        };
        sink.add_rows(&EventRows {
            unit: &unit,
            ts: &ts,
            value: &value,
            day: day.as_deref(),
            slots,
        })?;
        offset += n;
    }
    Ok(())
}

// ---- CSV ----

const MAX_FIELDS: usize = 32;

fn read_range(file: &File, path: &Path, start: u64, end: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| LogsError::io(path, e))?;
    Ok(buf)
}

/// Offset just after the first newline at or after `from` (or `len`).
fn next_line(file: &File, path: &Path, from: u64, len: u64) -> Result<u64> {
    let mut pos = from;
    while pos < len {
        let end = (pos + 64 * 1024).min(len);
        let buf = read_range(file, path, pos, end)?;
        if let Some(i) = memchr::memchr(b'\n', &buf) {
            return Ok(pos + i as u64 + 1);
        }
        pos = end;
    }
    Ok(len)
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Split a line at commas into (start, end) ranges; returns the number of fields.
fn split_fields(line: &[u8], out: &mut [(usize, usize); MAX_FIELDS]) -> usize {
    let mut n = 0;
    let mut start = 0;
    for i in memchr::memchr_iter(b',', line) {
        if n < MAX_FIELDS {
            out[n] = (start, i);
        }
        n += 1;
        start = i + 1;
    }
    if n < MAX_FIELDS {
        out[n] = (start, line.len());
    }
    n + 1
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    match b.split_first() {
        Some((b'-', rest)) => {
            let v = parse_u64(rest)?;
            if v == 1 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(v).ok().map(|v| -v)
            }
        }
        _ => i64::try_from(parse_u64(b)?).ok(),
    }
}

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal number. Plain `[-]digits[.digits]` with at most 15 significant digits is
/// converted as (integer mantissa) / 10^k, exact operands and one correctly rounded division
/// (Clinger's fast path, the same result as a full parse); anything else goes to `str::parse`.
fn parse_f64(b: &[u8]) -> Option<f64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0usize;
    let mut frac: Option<usize> = None;
    let mut ok = !digits.is_empty() && digits.len() <= 17;
    if ok {
        for &c in digits {
            if c == b'.' && frac.is_none() {
                frac = Some(0);
                continue;
            }
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                ok = false;
                break;
            }
            mantissa = mantissa * 10 + u64::from(d);
            n_digits += 1;
            if let Some(k) = frac.as_mut() {
                *k += 1;
            }
        }
    }
    if ok && n_digits > 0 && n_digits <= 15 {
        let v = mantissa as f64 / POW10[frac.unwrap_or(0)];
        return Some(if neg { -v } else { v });
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

struct CsvPart<'a> {
    path: &'a Path,
    start: u64,
    unit: Vec<u64>,
    ts: Vec<i64>,
    value: Vec<f64>,
    day: Vec<u32>,
    slots: Vec<u32>,
}

impl CsvPart<'_> {
    /// An error at local line `local` (0-based within the part): finds the file line number.
    fn err(&self, local: u64, field: &str, message: String) -> LogsError {
        let before = std::fs::read(self.path)
            .map(|b| {
                let end = usize::try_from(self.start).unwrap_or(0).min(b.len());
                memchr::memchr_iter(b'\n', &b[..end]).count() as u64
            })
            .unwrap_or(0);
        LogsError::Csv {
            path: self.path.to_path_buf(),
            line: before + local + 1,
            field: field.to_string(),
            message,
        }
    }

    fn flush(&mut self, sink: &mut EventSink<'_>, with_day: bool) -> Result<()> {
        sink.add_rows(&EventRows {
            unit: &self.unit,
            ts: &self.ts,
            value: &self.value,
            day: with_day.then_some(&self.day[..]),
            // One event in the whole chunk (the common case) takes the kernel's fast path.
            slots: match self.slots.first() {
                Some(&s) if self.slots.iter().all(|&x| x == s) => Slots::All(s),
                _ => Slots::PerRow(&self.slots),
            },
        })?;
        self.unit.clear();
        self.ts.clear();
        self.value.clear();
        self.day.clear();
        self.slots.clear();
        Ok(())
    }
}

/// Per-part state of a CSV scan: where the canonical columns are and the rows so far.
struct CsvLines<'a> {
    part: CsvPart<'a>,
    order: &'a [Option<usize>; 5],
    fixed: &'a [String; 5],
    width: usize,
    fixed_slot: Option<u32>,
    with_day: bool,
    max_day: u32,
    read: u64,
}

impl CsvLines<'_> {
    /// One record (`fields` has the record's fields; `this` is the 0-based line in the part).
    fn record(&mut self, fields: &[&[u8]], this: u64, sink: &mut EventSink<'_>) -> Result<()> {
        self.read += 1;
        if fields.len() != self.width {
            let n = fields.len();
            let w = self.width;
            return Err(self
                .part
                .err(this, "", format!("{n} fields, the header has {w}")));
        }
        let field = |i: usize| -> &[u8] {
            match self.order[i] {
                Some(j) => fields[j].trim_ascii(),
                None => self.fixed[i].as_bytes(),
            }
        };
        let slot = match self.fixed_slot {
            Some(s) => s,
            None => {
                let m = field(METRIC);
                sink.f
                    .event_names
                    .iter()
                    .position(|e| e.as_bytes() == m)
                    .map_or(NO_SLOT, |p| p as u32)
            }
        };
        if slot == NO_SLOT {
            return Ok(());
        }
        let text = |i: usize| String::from_utf8_lossy(field(i)).into_owned();
        let day = if self.with_day {
            let d = std::str::from_utf8(field(DAY))
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    self.part
                        .err(this, "day", format!("{:?}: not a day index", text(DAY)))
                })?;
            if d > self.max_day {
                return Ok(());
            }
            d
        } else {
            0
        };
        let unit = parse_u64(field(UNIT)).ok_or_else(|| {
            self.part.err(
                this,
                "unit_id",
                format!("{:?}: not an unsigned integer", text(UNIT)),
            )
        })?;
        let ts = parse_i64(field(TS)).ok_or_else(|| {
            self.part
                .err(this, "ts", format!("{:?}: not an integer", text(TS)))
        })?;
        let value: f64 = parse_f64(field(VALUE)).ok_or_else(|| {
            self.part
                .err(this, "value", format!("{:?}: not a number", text(VALUE)))
        })?;
        if !value.is_finite() {
            return Err(self
                .part
                .err(this, "value", format!("must be finite, got {value}")));
        }
        let p = &mut self.part;
        p.unit.push(unit);
        p.ts.push(ts);
        p.value.push(value);
        p.day.push(day);
        p.slots.push(slot);
        if p.unit.len() == 8192 {
            p.flush(sink, self.with_day)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn scan_csv(
    file: &TableFile,
    order: &[Option<usize>; 5],
    fixed: &[String; 5],
    width: usize,
    start: u64,
    end: u64,
    sink: &mut EventSink<'_>,
) -> Result<()> {
    let path = file.path.as_path();
    let handle = File::open(path).map_err(|e| LogsError::io(path, e))?;
    let buf = read_range(&handle, path, start, end)?;
    let fixed_slot = if order[METRIC].is_none() {
        Some(sink.slot(&fixed[METRIC]).unwrap_or(NO_SLOT))
    } else {
        None
    };
    let mut lines = CsvLines {
        part: CsvPart {
            path,
            start,
            unit: Vec::with_capacity(8192),
            ts: Vec::with_capacity(8192),
            value: Vec::with_capacity(8192),
            day: Vec::with_capacity(8192),
            slots: Vec::with_capacity(8192),
        },
        order,
        fixed,
        width,
        fixed_slot,
        with_day: sink.max_day().is_some(),
        max_day: sink.max_day().unwrap_or(u32::MAX),
        read: 0,
    };
    let mut fields: Vec<&[u8]> = Vec::with_capacity(MAX_FIELDS);
    if memchr::memchr(b'"', &buf).is_none() {
        // No quotes in the part: one pass over the separators.
        let mut field_start = 0;
        let mut line = 0u64;
        for pos in memchr::memchr2_iter(b',', b'\n', &buf) {
            let end = if buf[pos] == b'\n' && pos > field_start && buf[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            fields.push(&buf[field_start..end]);
            field_start = pos + 1;
            if buf[pos] == b'\n' {
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    lines.record(&fields, line, sink)?;
                }
                fields.clear();
                line += 1;
            }
        }
        if field_start < buf.len() {
            fields.push(trim_line(&buf[field_start..]));
            lines.record(&fields, line, sink)?;
        } else if !(fields.is_empty() || fields.len() == 1 && fields[0].is_empty()) {
            lines.record(&fields, line, sink)?;
        }
    } else {
        // Quotes somewhere: line by line, quoted lines through the csv crate.
        let mut line_start = 0usize;
        let mut local = 0u64;
        let mut owned: Vec<Vec<u8>>;
        while line_start < buf.len() {
            let line_end =
                memchr::memchr(b'\n', &buf[line_start..]).map_or(buf.len(), |i| line_start + i);
            let line = trim_line(&buf[line_start..line_end]);
            let this = local;
            line_start = line_end + 1;
            local += 1;
            if line.is_empty() {
                continue;
            }
            if memchr::memchr(b'"', line).is_some() {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(line);
                let mut rec = csv::ByteRecord::new();
                let ok = r
                    .read_byte_record(&mut rec)
                    .map_err(|e| lines.part.err(this, "", e.to_string()))?;
                owned = if ok {
                    rec.iter().map(<[u8]>::to_vec).collect()
                } else {
                    Vec::new()
                };
                let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                lines.record(&refs, this, sink)?;
            } else {
                fields.clear();
                fields.extend(line.split(|&b| b == b','));
                lines.record(&fields, this, sink)?;
            }
        }
    }
    let with_day = lines.with_day;
    lines.part.flush(sink, with_day)?;
    sink.count_read(lines.read);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_parsers_accept_digits_only() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1x"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"-"), None);
    }

    #[test]
    fn the_decimal_fast_path_matches_the_standard_parser() {
        for t in [
            "1.0",
            "0.1",
            "-0.3",
            "3",
            "12345.678901234",
            "0.000001",
            "7.",
            ".5",
            "1e5",
            "-0",
            "123456789012345678",
            "0.30000000000000004",
            "nan",
            "",
            "-",
            "1.2.3",
            "9007199254740993",
        ] {
            let want = t.parse::<f64>().ok();
            let got = parse_f64(t.as_bytes());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "{t:?}: {got:?} vs {want:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn decimals_parse_like_the_standard_parser(int in 0u64..1_000_000_000, frac in 0u64..1_000_000, k in 0usize..7, neg: bool) {
            let t = format!("{}{int}.{frac:0k$}", if neg { "-" } else { "" }, k = k);
            let want = t.parse::<f64>().ok().map(f64::to_bits);
            proptest::prop_assert_eq!(parse_f64(t.as_bytes()).map(f64::to_bits), want, "{}", t);
        }
    }

    #[test]
    fn fields_split_at_commas() {
        let mut r = [(0, 0); MAX_FIELDS];
        assert_eq!(split_fields(b"a,,bc", &mut r), 3);
        assert_eq!(&r[..3], &[(0, 1), (2, 2), (3, 5)]);
    }
}
