//! Seeded synthetic exposure/event logs for tests and benchmarks.

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::error::{LogsError, Result};
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

    /// Event batches in the canonical schema (time-ordered within the whole log is not required).
    pub fn event_batches(&self) -> Result<Vec<RecordBatch>> {
        self.check()?;
        let mut rng = Pcg64Mcg::seed_from_u64(self.seed);
        let span = i64::from(self.days) * DAY;
        let mut out = Vec::new();
        let mut produced = 0u64;
        while produced < self.events {
            let rows = (self.events - produced).min(self.batch_rows as u64) as usize;
            let mut unit = Vec::with_capacity(rows);
            let mut ts = Vec::with_capacity(rows);
            let mut day = Vec::with_capacity(rows);
            let mut metric = Vec::with_capacity(rows);
            let mut value = Vec::with_capacity(rows);
            for _ in 0..rows {
                let u = rng.random_range(0..self.units);
                let t = rng.random_range(0..span);
                let m = rng.random_range(0..self.metrics.len());
                let mut v = -(1.0 - rng.random::<f64>()).ln();
                if self.arm_of(u) != 0 && t >= self.exposure_ts(u) {
                    v *= 1.0 + self.treatment_lift;
                }
                unit.push(u);
                ts.push(t);
                day.push((t / DAY) as u32);
                metric.push(m as i32);
                value.push(v);
            }
            let batch = RecordBatch::try_new(
                event_schema(),
                vec![
                    Arc::new(UInt64Array::from(unit)),
                    Arc::new(Int64Array::from(ts)),
                    Arc::new(UInt32Array::from(day)),
                    Self::dict(&self.metrics, metric)?,
                    Arc::new(Float64Array::from(value)),
                ],
            )
            .map_err(|e| LogsError::invalid("synthetic", e.to_string()))?;
            out.push(batch);
            produced += rows as u64;
        }
        Ok(out)
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
        for b in self.event_batches()? {
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
        }
        Ok(())
    }
}
