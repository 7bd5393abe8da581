//! Seeded synthetic exposure/event logs for tests and benchmarks.

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::aggregate::{AggregateOptions, Aggregation, Aggregator};
use crate::error::{LogsError, Result};
use crate::scan::{EventRows, EventSink, EventSource, NO_SLOT, Slots};
use crate::schema::{event_schema, exposure_schema};
use crate::writer::LogWriter;

/// Seconds per simulated day.
pub const DAY: i64 = 86_400;

/// A synthetic two-table log: every unit is exposed once to a hash-assigned arm at a uniform
/// time; events pick a uniform unit, time and metric; values are exponential with mean 1,
/// multiplied by `1 + treatment_lift` for units in any arm other than the first, after exposure.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticLogs {
    /// Units.
    pub units: u64,
    /// Event rows.
    pub events: u64,
    /// Experiment key.
    pub experiment: String,
    /// Arm names; the first is the control.
    pub arms: Vec<String>,
    /// Event metric names.
    pub metrics: Vec<String>,
    /// Multiplicative lift of post-exposure values in non-control arms.
    pub treatment_lift: f64,
    /// Days covered.
    pub days: u32,
    /// RNG seed.
    pub seed: u64,
    /// Rows per generated batch.
    pub batch_rows: usize,
    /// Event rows per part: each part has its own random stream, so parts can be generated
    /// in parallel and the log is the same whatever the thread count.
    pub part_rows: u64,
}

impl SyntheticLogs {
    /// `units` units, `events` events, arms control/treatment, metrics click/revenue, 14 days.
    pub fn new(units: u64, events: u64, seed: u64) -> Self {
        SyntheticLogs {
            units,
            events,
            experiment: "exp".into(),
            arms: vec!["control".into(), "treatment".into()],
            metrics: vec!["click".into(), "revenue".into()],
            treatment_lift: 0.0,
            days: 14,
            seed,
            batch_rows: 64 * 1024,
            part_rows: 1 << 20,
        }
    }

    /// Arm index of a unit (deterministic hash).
    pub fn arm_of(&self, unit: u64) -> usize {
        let h = unit
            .wrapping_add(self.seed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 33) % self.arms.len().max(1) as u64) as usize
    }

    /// Exposure time of a unit (deterministic hash).
    pub fn exposure_ts(&self, unit: u64) -> i64 {
        let h = (unit ^ self.seed.rotate_left(17)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        ((h >> 11) % (i64::from(self.days) * DAY) as u64) as i64
    }

    fn check(&self) -> Result<()> {
        if self.units == 0
            || self.arms.is_empty()
            || self.metrics.is_empty()
            || self.days == 0
            || self.batch_rows == 0
            || self.part_rows == 0
        {
            return Err(LogsError::invalid(
                "synthetic",
                "units, arms, metrics, days and batch_rows must be non-empty",
            ));
        }
        Ok(())
    }

    fn dict(values: &[String], keys: Vec<i32>) -> Result<ArrayRef> {
        DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from(values.to_vec())),
        )
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| LogsError::invalid("synthetic", e.to_string()))
    }

    /// Exposure batches in the canonical schema.
    pub fn exposure_batches(&self) -> Result<Vec<RecordBatch>> {
        self.check()?;
        let mut out = Vec::new();
        let mut start = 0u64;
        while start < self.units {
            let end = (start + self.batch_rows as u64).min(self.units);
            let unit: Vec<u64> = (start..end).collect();
            let ts: Vec<i64> = unit.iter().map(|&u| self.exposure_ts(u)).collect();
            let day: Vec<u32> = ts.iter().map(|&t| (t / DAY) as u32).collect();
            let arm: Vec<i32> = unit.iter().map(|&u| self.arm_of(u) as i32).collect();
            let batch = RecordBatch::try_new(
                exposure_schema(),
                vec![
                    Arc::new(UInt64Array::from(unit)),
                    Self::dict(
                        std::slice::from_ref(&self.experiment),
                        vec![0; (end - start) as usize],
                    )?,
                    Self::dict(&self.arms, arm)?,
                    Arc::new(Int64Array::from(ts)),
                    Arc::new(UInt32Array::from(day)),
                ],
            )
            .map_err(|e| LogsError::invalid("synthetic", e.to_string()))?;
            out.push(batch);
            start = end;
        }
        Ok(out)
    }

    /// Number of event parts.
    pub fn event_parts(&self) -> u64 {
        self.events.div_ceil(self.part_rows.max(1))
    }

    /// Generate part `part` in batches of `batch_rows`: `emit(unit, ts, day, metric index, value)`.
    fn generate_part(
        &self,
        part: u64,
        mut emit: impl FnMut(&[u64], &[i64], &[u32], &[u32], &[f64]) -> Result<()>,
    ) -> Result<()> {
        self.check()?;
        let mut rng =
            Pcg64Mcg::seed_from_u64(self.seed ^ (part + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let span = i64::from(self.days) * DAY;
        let first = part * self.part_rows;
        let last = (first + self.part_rows).min(self.events);
        let n_metrics = self.metrics.len();
        let cap = self.batch_rows.min((last - first) as usize);
        let mut unit = Vec::with_capacity(cap);
        let mut ts = Vec::with_capacity(cap);
        let mut day = Vec::with_capacity(cap);
        let mut metric = Vec::with_capacity(cap);
        let mut value = Vec::with_capacity(cap);
        let mut produced = first;
        while produced < last {
            let rows = (last - produced).min(self.batch_rows as u64) as usize;
            unit.clear();
            ts.clear();
            day.clear();
            metric.clear();
            value.clear();
            for _ in 0..rows {
                let u = rng.random_range(0..self.units);
                let t = rng.random_range(0..span);
                let m = if n_metrics == 1 {
                    0
                } else {
                    rng.random_range(0..n_metrics)
                };
                let mut v = -(1.0 - rng.random::<f64>()).ln();
                if self.treatment_lift != 0.0 && self.arm_of(u) != 0 && t >= self.exposure_ts(u) {
                    v *= 1.0 + self.treatment_lift;
                }
                unit.push(u);
                ts.push(t);
                day.push((t / DAY) as u32);
                metric.push(m as u32);
                value.push(v);
            }
            emit(&unit, &ts, &day, &metric, &value)?;
            produced += rows as u64;
        }
        Ok(())
    }

    /// Call `f` with every event batch in the canonical schema, part after part (streamed).
    pub fn for_each_event_batch(&self, mut f: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        self.check()?;
        for part in 0..self.event_parts() {
            self.generate_part(part, |unit, ts, day, metric, value| {
                let batch = RecordBatch::try_new(
                    event_schema(),
                    vec![
                        Arc::new(UInt64Array::from(unit.to_vec())),
                        Arc::new(Int64Array::from(ts.to_vec())),
                        Arc::new(UInt32Array::from(day.to_vec())),
                        Self::dict(&self.metrics, metric.iter().map(|&m| m as i32).collect())?,
                        Arc::new(Float64Array::from(value.to_vec())),
                    ],
                )
                .map_err(|e| LogsError::invalid("synthetic", e.to_string()))?;
                f(batch)
            })?;
        }
        Ok(())
    }

    /// Event batches in the canonical schema, all held in memory (for small logs; large ones
    /// stream through [`for_each_event_batch`](Self::for_each_event_batch) or
    /// [`aggregate`](Self::aggregate)).
    pub fn event_batches(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.for_each_event_batch(|b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// Aggregate the log without writing or holding it: exposures (one row per unit) first,
    /// then the events generated part by part in parallel and streamed into the aggregator.
    /// Memory is proportional to units (and threads), not events.
    pub fn aggregate(&self, options: AggregateOptions) -> Result<Aggregation> {
        let mut agg = Aggregator::new(options)?;
        for b in self.exposure_batches()? {
            agg.add_exposures(&b, "synthetic")?;
        }
        agg.add_event_source(self)?;
        Ok(agg.finish())
    }

    /// Write the log through a [`LogWriter`] (row by row, as a simulator would).
    pub fn write(&self, writer: &mut LogWriter) -> Result<()> {
        let src = "synthetic";
        for b in self.exposure_batches()? {
            let unit = crate::columns::u64_column(&b, "unit_id", src)?;
            let arm = crate::columns::str_column(&b, "arm", src)?;
            let ts = crate::columns::i64_column(&b, "ts", src)?;
            let day = crate::columns::u32_column(&b, "day", src)?;
            for i in 0..b.num_rows() {
                writer.exposure(
                    unit[i],
                    &self.experiment,
                    &arm.dictionary[arm.keys[i] as usize],
                    ts[i],
                    day[i],
                )?;
            }
        }
        self.for_each_event_batch(|b| {
            let unit = crate::columns::u64_column(&b, "unit_id", src)?;
            let ts = crate::columns::i64_column(&b, "ts", src)?;
            let day = crate::columns::u32_column(&b, "day", src)?;
            let metric = crate::columns::str_column(&b, "metric", src)?;
            let value = crate::columns::f64_column(&b, "value", src)?;
            for i in 0..b.num_rows() {
                writer.event(
                    unit[i],
                    ts[i],
                    day[i],
                    &metric.dictionary[metric.keys[i] as usize],
                    value[i],
                )?;
            }
            Ok(())
        })
    }
}

impl EventSource for SyntheticLogs {
    fn parts(&self) -> usize {
        usize::try_from(self.event_parts()).unwrap_or(usize::MAX)
    }

    fn scan_part(&self, part: usize, sink: &mut EventSink<'_>) -> Result<()> {
        let slot_of: Vec<u32> = self
            .metrics
            .iter()
            .map(|m| sink.slot(m).unwrap_or(NO_SLOT))
            .collect();
        let mut slots = Vec::new();
        self.generate_part(part as u64, |unit, ts, day, metric, value| {
            let slots = if slot_of.len() == 1 {
                Slots::All(slot_of[0])
            } else {
                slots.clear();
                slots.extend(metric.iter().map(|&m| slot_of[m as usize]));
                Slots::PerRow(&slots)
            };
            sink.count_read(unit.len() as u64);
            sink.add_rows(&EventRows {
                unit,
                ts,
                value,
                day: Some(day),
                slots,
            })
        })
    }
}
