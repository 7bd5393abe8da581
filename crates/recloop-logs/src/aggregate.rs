//! Streaming aggregation of exposure and event logs into per-arm sufficient statistics,
//! keyed by (experiment, arm, metric), ready for `recloop_stats::compare`.
//!
//! Semantics:
//! - A unit belongs to (experiment, arm) from its first exposure on. A unit exposed to two
//!   different arms of the same experiment is excluded and counted in
//!   [`Aggregation::multiple_exposure_units`].
//! - A unit's metric value y is the sum of its event values from its first exposure on
//!   (`ts ≥ first exposure ts`); units without events count with y = 0.
//! - With `cuped`, the covariate x is the sum of the unit's values of the same event before
//!   its first exposure (the pre-period).
//! - `max_day` restricts both tables to `day ≤ max_day` (a cumulative look).
//! - Proportion metrics count units with y > 0 as successes.
//! - Ratio metrics sum numerator and denominator per unit, then Σm, Σd, Σm², Σd², Σmd.

use std::collections::{BTreeMap, HashMap};

use arrow_array::RecordBatch;
use recloop_stats::{ArmSummary, CompareRequest, MetricKind};
use serde::{Deserialize, Serialize};

use crate::columns::{i64_column, str_column, u32_column, u64_column};
use crate::error::{LogsError, Result};
use crate::reader::{LogReader, file_batches};
use crate::scan::{EventSink, EventSource, FileEvents, Frozen, PART_ROWS, scan_source};
use crate::schema::EXPOSURE_COLUMNS;
use crate::unit_index::{UnitIndex, UnitLookup};

/// A metric to aggregate from events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricDef {
    /// Per-unit sum of an event's values; the metric is the mean over units.
    Mean {
        /// Output metric name.
        name: String,
        /// Event (metric column) name.
        event: String,
    },
    /// Share of units with a positive sum of an event's values.
    Proportion {
        /// Output metric name.
        name: String,
        /// Event name.
        event: String,
    },
    /// Σ numerator / Σ denominator over units.
    Ratio {
        /// Output metric name.
        name: String,
        /// Numerator event.
        numerator: String,
        /// Denominator event.
        denominator: String,
    },
}

impl MetricDef {
    /// A mean metric named after its event.
    pub fn mean(event: &str) -> Self {
        MetricDef::Mean {
            name: event.to_string(),
            event: event.to_string(),
        }
    }

    /// A proportion metric named after its event.
    pub fn proportion(event: &str) -> Self {
        MetricDef::Proportion {
            name: event.to_string(),
            event: event.to_string(),
        }
    }

    /// A ratio metric.
    pub fn ratio(name: &str, numerator: &str, denominator: &str) -> Self {
        MetricDef::Ratio {
            name: name.to_string(),
            numerator: numerator.to_string(),
            denominator: denominator.to_string(),
        }
    }

    /// Output name.
    pub fn name(&self) -> &str {
        match self {
            MetricDef::Mean { name, .. }
            | MetricDef::Proportion { name, .. }
            | MetricDef::Ratio { name, .. } => name,
        }
    }

    /// The statistics kind.
    pub fn kind(&self) -> MetricKind {
        match self {
            MetricDef::Mean { .. } => MetricKind::Mean,
            MetricDef::Proportion { .. } => MetricKind::Proportion,
            MetricDef::Ratio { .. } => MetricKind::Ratio,
        }
    }

    fn events(&self) -> Vec<&str> {
        match self {
            MetricDef::Mean { event, .. } | MetricDef::Proportion { event, .. } => vec![event],
            MetricDef::Ratio {
                numerator,
                denominator,
                ..
            } => vec![numerator, denominator],
        }
    }
}

/// What to aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AggregateOptions {
    /// Metrics to compute.
    pub metrics: Vec<MetricDef>,
    /// Only this experiment (all when `None`).
    #[serde(default)]
    pub experiment: Option<String>,
    /// Only rows with `day ≤ max_day`.
    #[serde(default)]
    pub max_day: Option<u32>,
    /// Collect the pre-exposure covariate for CUPED.
    #[serde(default)]
    pub cuped: bool,
}

/// Units per (experiment, arm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmUnits {
    /// Experiment.
    pub experiment: String,
    /// Arm.
    pub arm: String,
    /// Units counted (excluding multiple-exposure units).
    pub units: u64,
}

/// Sufficient statistics of one metric in one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmMetric {
    /// Experiment.
    pub experiment: String,
    /// Arm.
    pub arm: String,
    /// Metric name.
    pub metric: String,
    /// Metric kind.
    pub kind: MetricKind,
    /// The sums, in the form `recloop_stats::compare` takes.
    pub summary: ArmSummary,
}

/// Result of an aggregation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Aggregation {
    /// Units per arm, sorted by experiment then arm.
    pub arms: Vec<ArmUnits>,
    /// Statistics per (experiment, arm, metric).
    pub metrics: Vec<ArmMetric>,
    /// Units exposed to more than one arm of an experiment (excluded), per experiment.
    pub multiple_exposure_units: BTreeMap<String, u64>,
    /// Event rows read.
    pub events_read: u64,
    /// Event rows that contributed to some unit's metric.
    pub events_used: u64,
}

impl Aggregation {
    /// The summary of `metric` in `arm` of `experiment`.
    pub fn summary(&self, experiment: &str, arm: &str, metric: &str) -> Option<&ArmMetric> {
        self.metrics
            .iter()
            .find(|m| m.experiment == experiment && m.arm == arm && m.metric == metric)
    }

    /// A ready-to-run comparison of `treatment` against `control` on `metric`.
    pub fn compare_request(
        &self,
        experiment: &str,
        metric: &str,
        control: &str,
        treatment: &str,
    ) -> Option<CompareRequest> {
        let a = self.summary(experiment, control, metric)?;
        let b = self.summary(experiment, treatment, metric)?;
        Some(CompareRequest::new(
            a.kind,
            a.summary.clone(),
            b.summary.clone(),
        ))
    }

    /// Units per arm of one experiment, in arm order.
    pub fn unit_counts(&self, experiment: &str) -> Vec<(String, u64)> {
        self.arms
            .iter()
            .filter(|a| a.experiment == experiment)
            .map(|a| (a.arm.clone(), a.units))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct Membership {
    arm_slot: u32,
    first_ts: i64,
    next: u32,
    conflicted: bool,
}

const NONE: u32 = u32::MAX;

/// Incremental aggregator: feed all exposure batches, then event batches, then [`finish`](Self::finish).
pub struct Aggregator {
    options: AggregateOptions,
    experiments: Vec<String>,
    arm_slots: Vec<(u32, String)>,
    arm_lookup: HashMap<(u32, String), u32>,
    units: UnitIndex,
    memberships: Vec<Membership>,
    membership_exp: Vec<u32>,
    event_names: Vec<String>,
    stride: usize,
    acc: Vec<f64>,
    events_read: u64,
    events_used: u64,
    events_started: bool,
    frozen: Option<Frozen>,
}

impl Aggregator {
    /// A new aggregator.
    pub fn new(options: AggregateOptions) -> Result<Self> {
        if options.metrics.is_empty() {
            return Err(LogsError::invalid(
                "metrics",
                "name at least one metric to aggregate",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut event_names: Vec<String> = Vec::new();
        for m in &options.metrics {
            if !names.insert(m.name().to_string()) {
                return Err(LogsError::invalid(
                    "metrics",
                    format!("metric {:?} is defined twice", m.name()),
                ));
            }
            for e in m.events() {
                if e.is_empty() {
                    return Err(LogsError::invalid(
                        "metrics",
                        format!("metric {:?} names an empty event", m.name()),
                    ));
                }
                if !event_names.iter().any(|x| x == e) {
                    event_names.push(e.to_string());
                }
            }
        }
        let stride = event_names.len() * if options.cuped { 2 } else { 1 };
        Ok(Aggregator {
            options,
            experiments: Vec::new(),
            arm_slots: Vec::new(),
            arm_lookup: HashMap::new(),
            units: UnitIndex::default(),
            memberships: Vec::new(),
            membership_exp: Vec::new(),
            event_names,
            stride,
            acc: Vec::new(),
            events_read: 0,
            events_used: 0,
            events_started: false,
            frozen: None,
        })
    }

    /// Add a batch of exposures (canonical exposure columns).
    pub fn add_exposures(&mut self, batch: &RecordBatch, source: &str) -> Result<()> {
        if self.events_started {
            return Err(LogsError::invalid(
                "exposures",
                "all exposures must be added before the first event batch",
            ));
        }
        let unit = u64_column(batch, "unit_id", source)?;
        let exp = str_column(batch, "experiment", source)?;
        let arm = str_column(batch, "arm", source)?;
        let ts = i64_column(batch, "ts", source)?;
        let day = match self.options.max_day {
            Some(_) => Some(u32_column(batch, "day", source)?),
            None => None,
        };
        // Map batch dictionaries to global experiment ids (NONE = filtered out).
        let exp_ids: Vec<u32> = exp
            .dictionary
            .iter()
            .map(|e| {
                if self.options.experiment.as_ref().is_some_and(|f| f != e) {
                    return NONE;
                }
                match self.experiments.iter().position(|x| x == e) {
                    Some(i) => i as u32,
                    None => {
                        self.experiments.push(e.clone());
                        (self.experiments.len() - 1) as u32
                    }
                }
            })
            .collect();
        let mut batch_slots: HashMap<(u32, u32), u32> = HashMap::new();
        for i in 0..batch.num_rows() {
            let e = exp_ids[exp.keys[i] as usize];
            if e == NONE {
                continue;
            }
            if let (Some(max), Some(d)) = (self.options.max_day, &day)
                && d[i] > max
            {
                continue;
            }
            let key = (e, arm.keys[i]);
            let slot = match batch_slots.get(&key) {
                Some(&s) => s,
                None => {
                    let arm_name = &arm.dictionary[arm.keys[i] as usize];
                    let s = match self.arm_lookup.get(&(e, arm_name.clone())) {
                        Some(&s) => s,
                        None => {
                            let s = self.arm_slots.len() as u32;
                            self.arm_slots.push((e, arm_name.clone()));
                            self.arm_lookup.insert((e, arm_name.clone()), s);
                            s
                        }
                    };
                    batch_slots.insert(key, s);
                    s
                }
            };
            let head = self.units.get(unit[i]).unwrap_or(NONE);
            let mut m = head;
            let mut found = false;
            while m != NONE {
                let idx = m as usize;
                if self.membership_exp[idx] == e {
                    let mem = &mut self.memberships[idx];
                    if mem.arm_slot != slot {
                        mem.conflicted = true;
                    }
                    mem.first_ts = mem.first_ts.min(ts[i]);
                    found = true;
                    break;
                }
                m = self.memberships[idx].next;
            }
            if !found {
                let id = self.memberships.len();
                if id >= NONE as usize {
                    return Err(LogsError::invalid(
                        "exposures",
                        "more than 4 billion unit memberships",
                    ));
                }
                self.memberships.push(Membership {
                    arm_slot: slot,
                    first_ts: ts[i],
                    next: head,
                    conflicted: false,
                });
                self.membership_exp.push(e);
                self.units.insert(unit[i], id as u32);
            }
        }
        Ok(())
    }

    /// Freeze the exposures (first call only): build the unit lookup and the accumulators.
    fn freeze(&mut self) {
        if self.events_started {
            return;
        }
        self.events_started = true;
        self.acc = vec![0.0; self.memberships.len() * self.stride];
        // The build-time index is not needed once the read-only lookup exists.
        let units = std::mem::take(&mut self.units);
        let mems = &self.memberships;
        let lookup = UnitLookup::build(&units, |m| {
            let mem = &mems[m as usize];
            (mem.first_ts, mem.next != NONE)
        });
        self.frozen = Some(Frozen {
            lookup,
            chain: mems.iter().map(|m| (m.first_ts, m.next)).collect(),
            stride: self.stride,
            n_events: self.event_names.len(),
            cuped: self.options.cuped,
            max_day: self.options.max_day,
            event_names: self.event_names.clone(),
        });
        drop(units);
    }

    /// Add a batch of events (needs `unit_id`, `ts`, `metric`, `value`, and `day` with `max_day`).
    pub fn add_events(&mut self, batch: &RecordBatch, source: &str) -> Result<()> {
        self.freeze();
        let Some(frozen) = self.frozen.as_ref() else {
            return Err(LogsError::invalid("events", "internal: unit table missing"));
        };
        let mut sink = EventSink::new(frozen, std::mem::take(&mut self.acc));
        let r = sink.add_batch(batch, source);
        self.events_read += sink.read;
        self.events_used += sink.used;
        self.acc = sink.acc;
        r
    }

    /// Add all events of `source`, its parts scanned in parallel on the current rayon pool
    /// and added in part order (the same result for any number of threads).
    pub fn add_event_source(&mut self, source: &dyn EventSource) -> Result<()> {
        self.freeze();
        let Some(frozen) = self.frozen.as_ref() else {
            return Err(LogsError::invalid("events", "internal: unit table missing"));
        };
        let (read, used) = scan_source(frozen, &mut self.acc, source)?;
        self.events_read += read;
        self.events_used += used;
        Ok(())
    }

    /// Reduce per-unit values to per-arm sufficient statistics.
    pub fn finish(self) -> Aggregation {
        let n_events = self.event_names.len();
        let ev = |name: &str| self.event_names.iter().position(|e| e == name).unwrap_or(0);
        let n_metrics = self.options.metrics.len();
        // Per (arm slot, metric): up to 15 sums plus n.
        let mut sums = vec![[0.0f64; 16]; self.arm_slots.len() * n_metrics];
        let mut units = vec![0u64; self.arm_slots.len()];
        let mut conflicted: BTreeMap<String, u64> = BTreeMap::new();
        let slots: Vec<Vec<usize>> = self
            .options
            .metrics
            .iter()
            .map(|m| m.events().iter().map(|e| ev(e)).collect())
            .collect();
        let has_acc = !self.acc.is_empty();
        for (idx, mem) in self.memberships.iter().enumerate() {
            if mem.conflicted {
                *conflicted
                    .entry(self.experiments[self.membership_exp[idx] as usize].clone())
                    .or_default() += 1;
                continue;
            }
            units[mem.arm_slot as usize] += 1;
            let base = idx * self.stride;
            let post = |s: usize| if has_acc { self.acc[base + s] } else { 0.0 };
            let pre = |s: usize| {
                if has_acc && self.options.cuped {
                    self.acc[base + n_events + s]
                } else {
                    0.0
                }
            };
            for (k, def) in self.options.metrics.iter().enumerate() {
                let t = &mut sums[mem.arm_slot as usize * n_metrics + k];
                t[0] += 1.0;
                match def {
                    MetricDef::Mean { .. } | MetricDef::Proportion { .. } => {
                        let (mut y, mut x) = (post(slots[k][0]), pre(slots[k][0]));
                        if matches!(def, MetricDef::Proportion { .. }) {
                            y = f64::from(u8::from(y > 0.0));
                            x = f64::from(u8::from(x > 0.0));
                        }
                        t[1] += y;
                        t[2] += y * y;
                        t[3] += x;
                        t[4] += x * x;
                        t[5] += x * y;
                    }
                    MetricDef::Ratio { .. } => {
                        let (m, d) = (post(slots[k][0]), post(slots[k][1]));
                        let (mp, dp) = (pre(slots[k][0]), pre(slots[k][1]));
                        let v = [
                            m,
                            m * m,
                            d,
                            d * d,
                            m * d,
                            mp,
                            mp * mp,
                            dp,
                            dp * dp,
                            mp * dp,
                            m * mp,
                            d * dp,
                            m * dp,
                            mp * d,
                        ];
                        for (j, x) in v.iter().enumerate() {
                            t[1 + j] += x;
                        }
                    }
                }
            }
        }
        // Sort arm slots by (experiment, arm).
        let mut order: Vec<usize> = (0..self.arm_slots.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, aa) = &self.arm_slots[a];
            let (eb, ab) = &self.arm_slots[b];
            (&self.experiments[*ea as usize], aa).cmp(&(&self.experiments[*eb as usize], ab))
        });
        let mut out = Aggregation {
            multiple_exposure_units: conflicted,
            events_read: self.events_read,
            events_used: self.events_used,
            ..Default::default()
        };
        for &s in &order {
            let (e, arm) = &self.arm_slots[s];
            let experiment = self.experiments[*e as usize].clone();
            out.arms.push(ArmUnits {
                experiment: experiment.clone(),
                arm: arm.clone(),
                units: units[s],
            });
            for (k, def) in self.options.metrics.iter().enumerate() {
                let t = &sums[s * n_metrics + k];
                let n = t[0];
                let summary = match def {
                    MetricDef::Mean { .. } => {
                        let a = ArmSummary::mean(n, t[1], t[2]);
                        if self.options.cuped {
                            a.with_pre_period(t[3], t[4], t[5])
                        } else {
                            a
                        }
                    }
                    MetricDef::Proportion { .. } => {
                        let a = ArmSummary::proportion(n, t[1]);
                        if self.options.cuped {
                            a.with_pre_period(t[3], t[4], t[5])
                        } else {
                            a
                        }
                    }
                    MetricDef::Ratio { .. } => {
                        let mut a = ArmSummary::ratio(n, t[1], t[2], t[3], t[4], t[5]);
                        if self.options.cuped {
                            a.m_pre_sum = Some(t[6]);
                            a.m_pre_sum_squares = Some(t[7]);
                            a.d_pre_sum = Some(t[8]);
                            a.d_pre_sum_squares = Some(t[9]);
                            a.m_pre_d_pre_sum_of_products = Some(t[10]);
                            a.m_post_m_pre_sum_of_products = Some(t[11]);
                            a.d_post_d_pre_sum_of_products = Some(t[12]);
                            a.m_post_d_pre_sum_of_products = Some(t[13]);
                            a.m_pre_d_post_sum_of_products = Some(t[14]);
                        }
                        a
                    }
                };
                out.metrics.push(ArmMetric {
                    experiment: experiment.clone(),
                    arm: arm.clone(),
                    metric: def.name().to_string(),
                    kind: def.kind(),
                    summary,
                });
            }
        }
        out
    }
}

/// Aggregate a log directory: exposures first, then the event table scanned in parallel on
/// the current rayon pool (see [`crate::scan`]; wrap in [`crate::with_threads`] to choose the
/// thread count). Results are the same bit for bit for any number of threads.
pub fn aggregate(reader: &LogReader, options: AggregateOptions) -> Result<Aggregation> {
    let max_day = options.max_day;
    let mut agg = Aggregator::new(options)?;
    let columns: Vec<&'static str> = EXPOSURE_COLUMNS
        .iter()
        .copied()
        .filter(|&c| c != "day" || max_day.is_some())
        .collect();
    for file in reader.exposure_files() {
        let src = file.path.display().to_string();
        for batch in file_batches(file, &columns, crate::reader::Table::Exposures)? {
            agg.add_exposures(&batch?, &src)?;
        }
    }
    // Parts of at least two rows per accumulator slot keep the per-part sums cheap to add.
    let part_rows = PART_ROWS.max(agg.memberships.len().saturating_mul(agg.stride * 2));
    let events = FileEvents::open_with_part_rows(reader.event_files(), max_day, part_rows)?;
    agg.add_event_source(&events)?;
    Ok(agg.finish())
}
