//! Writing exposure and event logs as Parquet or CSV, buffered in columnar batches.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{LogsError, Result};
use crate::schema::{
    EVENTS, EXPOSURES, EventRow, ExposureRow, LogFormat, event_schema, exposure_schema,
};

/// Rows buffered before a Parquet record batch is written.
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Default)]
struct Interner {
    map: HashMap<String, i32>,
    values: Vec<String>,
}

impl Interner {
    fn key(&mut self, s: &str) -> i32 {
        if let Some(&k) = self.map.get(s) {
            return k;
        }
        let k = self.values.len() as i32;
        self.values.push(s.to_string());
        self.map.insert(s.to_string(), k);
        k
    }

    fn dictionary(&self, keys: Vec<i32>, field: &str) -> Result<ArrayRef> {
        let values = Arc::new(StringArray::from(self.values.clone()));
        let arr = DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), values)
            .map_err(|e| LogsError::invalid(field, e.to_string()))?;
        Ok(Arc::new(arr))
    }
}

#[derive(Default)]
struct ExposureBuffer {
    unit: Vec<u64>,
    experiment: Vec<i32>,
    arm: Vec<i32>,
    ts: Vec<i64>,
    day: Vec<u32>,
}

#[derive(Default)]
struct EventBuffer {
    unit: Vec<u64>,
    ts: Vec<i64>,
    day: Vec<u32>,
    metric: Vec<i32>,
    value: Vec<f64>,
}

enum Sink {
    Parquet {
        exposures: Box<ArrowWriter<File>>,
        events: Box<ArrowWriter<File>>,
        exposure_buf: Box<ExposureBuffer>,
        event_buf: Box<EventBuffer>,
    },
    Csv {
        exposures: Box<csv::Writer<BufWriter<File>>>,
        events: Box<csv::Writer<BufWriter<File>>>,
    },
}

/// What a finished writer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLogs {
    /// The log directory.
    pub dir: PathBuf,
    /// File format.
    pub format: LogFormat,
    /// Exposure rows written.
    pub exposures: u64,
    /// Event rows written.
    pub events: u64,
}

/// Writes `exposures.{parquet,csv}` and `events.{parquet,csv}` into a directory.
///
/// Call [`LogWriter::finish`] at the end: Parquet files are only valid after their footer is
/// written.
pub struct LogWriter {
    dir: PathBuf,
    format: LogFormat,
    sink: Sink,
    experiments: Interner,
    arms: Interner,
    metrics: Interner,
    exposures: u64,
    events: u64,
}

fn path_of(dir: &Path, stem: &str, format: LogFormat) -> PathBuf {
    dir.join(format!("{stem}.{}", format.extension()))
}

impl LogWriter {
    /// A Parquet writer (Snappy, dictionary-encoded strings) into `dir` (created if missing).
    pub fn parquet(dir: impl AsRef<Path>) -> Result<Self> {
        Self::create(dir, LogFormat::Parquet)
    }

    /// A CSV writer into `dir` (created if missing).
    pub fn csv(dir: impl AsRef<Path>) -> Result<Self> {
        Self::create(dir, LogFormat::Csv)
    }

    /// A writer of the given format into `dir` (created if missing; existing files are replaced).
    pub fn create(dir: impl AsRef<Path>, format: LogFormat) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| LogsError::io(&dir, e))?;
        let open = |stem: &str| -> Result<(File, PathBuf)> {
            let p = path_of(&dir, stem, format);
            let f = File::create(&p).map_err(|e| LogsError::io(&p, e))?;
            Ok((f, p))
        };
        let (xf, xp) = open(EXPOSURES)?;
        let (ef, ep) = open(EVENTS)?;
        let sink = match format {
            LogFormat::Parquet => {
                let props = || {
                    WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .set_max_row_group_row_count(Some(1 << 20))
                        .build()
                };
                let exposures = ArrowWriter::try_new(xf, exposure_schema(), Some(props()))
                    .map_err(|e| LogsError::parquet(&xp, e))?;
                let events = ArrowWriter::try_new(ef, event_schema(), Some(props()))
                    .map_err(|e| LogsError::parquet(&ep, e))?;
                Sink::Parquet {
                    exposures: Box::new(exposures),
                    events: Box::new(events),
                    exposure_buf: Box::default(),
                    event_buf: Box::default(),
                }
            }
            LogFormat::Csv => {
                let mut exposures = csv::Writer::from_writer(BufWriter::new(xf));
                exposures
                    .write_record(crate::schema::EXPOSURE_COLUMNS)
                    .map_err(|e| LogsError::invalid(xp.display().to_string(), e.to_string()))?;
                let mut events = csv::Writer::from_writer(BufWriter::new(ef));
                events
                    .write_record(crate::schema::EVENT_COLUMNS)
                    .map_err(|e| LogsError::invalid(ep.display().to_string(), e.to_string()))?;
                Sink::Csv {
                    exposures: Box::new(exposures),
                    events: Box::new(events),
                }
            }
        };
        Ok(LogWriter {
            dir,
            format,
            sink,
            experiments: Interner::default(),
            arms: Interner::default(),
            metrics: Interner::default(),
            exposures: 0,
            events: 0,
        })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one exposure.
    pub fn exposure(
        &mut self,
        unit_id: u64,
        experiment: &str,
        arm: &str,
        ts: i64,
        day: u32,
    ) -> Result<()> {
        if experiment.is_empty() {
            return Err(LogsError::invalid("experiment", "must not be empty"));
        }
        if arm.is_empty() {
            return Err(LogsError::invalid("arm", "must not be empty"));
        }
        self.exposures += 1;
        match &mut self.sink {
            Sink::Parquet { exposure_buf, .. } => {
                exposure_buf.unit.push(unit_id);
                exposure_buf
                    .experiment
                    .push(self.experiments.key(experiment));
                exposure_buf.arm.push(self.arms.key(arm));
                exposure_buf.ts.push(ts);
                exposure_buf.day.push(day);
                if exposure_buf.unit.len() >= BATCH_ROWS {
                    self.flush_exposures()?;
                }
                Ok(())
            }
            Sink::Csv { exposures, .. } => exposures
                .write_record([
                    unit_id.to_string().as_str(),
                    experiment,
                    arm,
                    ts.to_string().as_str(),
                    day.to_string().as_str(),
                ])
                .map_err(|e| LogsError::invalid("exposures", e.to_string())),
        }
    }

    /// Append one event.
    pub fn event(
        &mut self,
        unit_id: u64,
        ts: i64,
        day: u32,
        metric: &str,
        value: f64,
    ) -> Result<()> {
        if metric.is_empty() {
            return Err(LogsError::invalid("metric", "must not be empty"));
        }
        if !value.is_finite() {
            return Err(LogsError::invalid(
                "value",
                format!("must be finite, got {value} for metric {metric}"),
            ));
        }
        self.events += 1;
        match &mut self.sink {
            Sink::Parquet { event_buf, .. } => {
                event_buf.unit.push(unit_id);
                event_buf.ts.push(ts);
                event_buf.day.push(day);
                event_buf.metric.push(self.metrics.key(metric));
                event_buf.value.push(value);
                if event_buf.unit.len() >= BATCH_ROWS {
                    self.flush_events()?;
                }
                Ok(())
            }
            Sink::Csv { events, .. } => events
                .write_record([
                    unit_id.to_string().as_str(),
                    ts.to_string().as_str(),
                    day.to_string().as_str(),
                    metric,
                    value.to_string().as_str(),
                ])
                .map_err(|e| LogsError::invalid("events", e.to_string())),
        }
    }

    /// Append an exposure row.
    pub fn write_exposure(&mut self, row: &ExposureRow) -> Result<()> {
        self.exposure(row.unit_id, &row.experiment, &row.arm, row.ts, row.day)
    }

    /// Append an event row.
    pub fn write_event(&mut self, row: &EventRow) -> Result<()> {
        self.event(row.unit_id, row.ts, row.day, &row.metric, row.value)
    }

    fn flush_exposures(&mut self) -> Result<()> {
        let path = path_of(&self.dir, EXPOSURES, self.format);
        if let Sink::Parquet {
            exposures,
            exposure_buf,
            ..
        } = &mut self.sink
        {
            if exposure_buf.unit.is_empty() {
                return Ok(());
            }
            let b = std::mem::take(exposure_buf.as_mut());
            let batch = RecordBatch::try_new(
                exposure_schema(),
                vec![
                    Arc::new(UInt64Array::from(b.unit)),
                    self.experiments.dictionary(b.experiment, "experiment")?,
                    self.arms.dictionary(b.arm, "arm")?,
                    Arc::new(Int64Array::from(b.ts)),
                    Arc::new(UInt32Array::from(b.day)),
                ],
            )
            .map_err(|e| LogsError::parquet(&path, e))?;
            exposures
                .write(&batch)
                .map_err(|e| LogsError::parquet(&path, e))?;
        }
        Ok(())
    }

    fn flush_events(&mut self) -> Result<()> {
        let path = path_of(&self.dir, EVENTS, self.format);
        if let Sink::Parquet {
            events, event_buf, ..
        } = &mut self.sink
        {
            if event_buf.unit.is_empty() {
                return Ok(());
            }
            let b = std::mem::take(event_buf.as_mut());
            let batch = RecordBatch::try_new(
                event_schema(),
                vec![
                    Arc::new(UInt64Array::from(b.unit)),
                    Arc::new(Int64Array::from(b.ts)),
                    Arc::new(UInt32Array::from(b.day)),
                    self.metrics.dictionary(b.metric, "metric")?,
                    Arc::new(Float64Array::from(b.value)),
                ],
            )
            .map_err(|e| LogsError::parquet(&path, e))?;
            events
                .write(&batch)
                .map_err(|e| LogsError::parquet(&path, e))?;
        }
        Ok(())
    }

    /// Flush buffers and close both files.
    pub fn finish(mut self) -> Result<WrittenLogs> {
        self.flush_exposures()?;
        self.flush_events()?;
        let xp = path_of(&self.dir, EXPOSURES, self.format);
        let ep = path_of(&self.dir, EVENTS, self.format);
        match self.sink {
            Sink::Parquet {
                exposures, events, ..
            } => {
                exposures.close().map_err(|e| LogsError::parquet(&xp, e))?;
                events.close().map_err(|e| LogsError::parquet(&ep, e))?;
            }
            Sink::Csv {
                mut exposures,
                mut events,
            } => {
                exposures.flush().map_err(|e| LogsError::io(&xp, e))?;
                events.flush().map_err(|e| LogsError::io(&ep, e))?;
            }
        }
        Ok(WrittenLogs {
            dir: self.dir,
            format: self.format,
            exposures: self.exposures,
            events: self.events,
        })
    }
}
