//! Every file shape other tools write is read to the same statistics as a brute-force
//! computation, and results are bit-identical for 1, 2 and 4 threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use recloop_logs::shapes::{Shape, write_shape};
use recloop_logs::synthetic::SyntheticLogs;
use recloop_logs::{AggregateOptions, Aggregation, LogReader, MetricDef, aggregate, with_threads};

fn spec(metrics: &[&str]) -> SyntheticLogs {
    let mut s = SyntheticLogs::new(400, 30_000, 11);
    s.treatment_lift = 0.3;
    s.batch_rows = 1_000;
    s.part_rows = 2_000;
    s.metrics = metrics.iter().map(|m| m.to_string()).collect();
    s
}

/// Per arm: n, Σy, Σy², Σx, Σx², Σxy for one event, with an optional day window.
fn brute(s: &SyntheticLogs, metric: &str, max_day: Option<u32>) -> HashMap<String, [f64; 6]> {
    let mut post: HashMap<u64, f64> = HashMap::new();
    let mut pre: HashMap<u64, f64> = HashMap::new();
    let max = max_day.unwrap_or(u32::MAX);
    for b in s.event_batches().unwrap() {
        let unit = recloop_logs::columns::u64_column(&b, "unit_id", "g").unwrap();
        let ts = recloop_logs::columns::i64_column(&b, "ts", "g").unwrap();
        let day = recloop_logs::columns::u32_column(&b, "day", "g").unwrap();
        let m = recloop_logs::columns::str_column(&b, "metric", "g").unwrap();
        let v = recloop_logs::columns::f64_column(&b, "value", "g").unwrap();
        for i in 0..b.num_rows() {
            if m.dictionary[m.keys[i] as usize] != metric || day[i] > max {
                continue;
            }
            let u = unit[i];
            if (s.exposure_ts(u) / 86_400) as u32 > max {
                continue;
            }
            let side = if ts[i] >= s.exposure_ts(u) {
                &mut post
            } else {
                &mut pre
            };
            *side.entry(u).or_default() += v[i];
        }
    }
    let mut out: HashMap<String, [f64; 6]> = HashMap::new();
    for u in 0..s.units {
        if (s.exposure_ts(u) / 86_400) as u32 > max {
            continue;
        }
        let y = post.get(&u).copied().unwrap_or(0.0);
        let x = pre.get(&u).copied().unwrap_or(0.0);
        let e = out.entry(s.arms[s.arm_of(u)].clone()).or_default();
        for (k, d) in [1.0, y, y * y, x, x * x, x * y].iter().enumerate() {
            e[k] += d;
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn options(metric: &str, max_day: Option<u32>) -> AggregateOptions {
    AggregateOptions {
        metrics: vec![MetricDef::mean(metric)],
        cuped: true,
        max_day,
        ..Default::default()
    }
}

fn check(agg: &Aggregation, want: &HashMap<String, [f64; 6]>, metric: &str, what: &str) {
    for (arm, w) in want {
        let m = &agg.summary("exp", arm, metric).expect(what).summary;
        let got = [
            m.n,
            m.sum.unwrap(),
            m.sum_squares.unwrap(),
            m.pre_sum.unwrap(),
            m.pre_sum_squares.unwrap(),
            m.post_pre_sum_of_products.unwrap(),
        ];
        for k in 0..6 {
            assert!(
                close(got[k], w[k]),
                "{what} {arm} [{k}]: {} vs {}",
                got[k],
                w[k]
            );
        }
    }
}

#[test]
fn every_shape_reads_to_the_brute_force_statistics() {
    let s = spec(&["click", "revenue"]);
    for max_day in [None, Some(6)] {
        let want = brute(&s, "revenue", max_day);
        for shape in Shape::ALL {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(write_shape(&s, dir.path(), shape).unwrap(), 30_000);
            let r = LogReader::open(dir.path()).unwrap();
            let agg = aggregate(&r, options("revenue", max_day)).unwrap();
            check(
                &agg,
                &want,
                "revenue",
                &format!("{shape:?} max_day {max_day:?}"),
            );
            if max_day.is_none() {
                assert_eq!(agg.events_read, 30_000, "{shape:?}");
            }
            // The row-by-row readers agree on the row count too.
            assert_eq!(r.read_events().unwrap().len(), 30_000, "{shape:?}");
        }
    }
}

#[test]
fn daily_partitions_take_the_day_from_the_path() {
    let s = spec(&["click"]);
    let dir = tempfile::tempdir().unwrap();
    write_shape(&s, dir.path(), Shape::DailyPartitions).unwrap();
    let r = LogReader::open(dir.path()).unwrap();
    assert_eq!(r.event_files().len(), 14);
    assert_eq!(r.event_files()[10].partition("day"), Some("10"));
    let rows = r.read_events().unwrap();
    let generated: Vec<u32> = s
        .event_batches()
        .unwrap()
        .iter()
        .flat_map(|b| {
            recloop_logs::columns::u32_column(b, "day", "g")
                .unwrap()
                .to_vec()
        })
        .collect();
    let mut got: Vec<u32> = rows.iter().map(|e| e.day).collect();
    let mut want = generated;
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
}

fn at_threads(threads: usize, f: impl Fn() -> Aggregation + Send + Sync) -> Aggregation {
    with_threads(Some(threads), f).unwrap()
}

#[test]
fn results_are_bit_identical_across_thread_counts() {
    let s = spec(&["click", "revenue"]);
    let daily = tempfile::tempdir().unwrap();
    write_shape(&s, daily.path(), Shape::DailyPartitions).unwrap();
    let many = tempfile::tempdir().unwrap();
    let mut big = spec(&["click", "revenue"]);
    big.events = 200_000;
    write_shape(&big, many.path(), Shape::SmallRowGroups).unwrap();
    let opts = || AggregateOptions {
        metrics: vec![
            MetricDef::mean("revenue"),
            MetricDef::ratio("rpc", "revenue", "click"),
        ],
        cuped: true,
        ..Default::default()
    };
    let runs: [(&str, &(dyn Fn() -> Aggregation + Sync)); 3] = [
        ("synthetic", &|| s.aggregate(opts()).unwrap()),
        ("daily", &|| {
            aggregate(&LogReader::open(daily.path()).unwrap(), opts()).unwrap()
        }),
        ("small row groups", &|| {
            aggregate(&LogReader::open(many.path()).unwrap(), opts()).unwrap()
        }),
    ];
    for (what, run) in runs {
        let one = at_threads(1, run);
        assert!(one.events_used > 0, "{what}");
        for t in [2, 4] {
            let other = at_threads(t, run);
            for (a, b) in one.metrics.iter().zip(&other.metrics) {
                assert_eq!(
                    serde_json::to_string(&a.summary).unwrap(),
                    serde_json::to_string(&b.summary).unwrap(),
                    "{what}: {t} threads"
                );
            }
            assert_eq!(one, other, "{what}: {t} threads");
        }
    }
    // The streamed generator gives the statistics of the materialised log.
    check(
        &s.aggregate(options("revenue", None)).unwrap(),
        &brute(&s, "revenue", None),
        "revenue",
        "synthetic",
    );
}

#[test]
fn a_rare_metric_is_filtered_before_the_other_columns_are_decoded() {
    // One metric in ten: row groups are decoded metric-first with a row selection.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "revenue"];
    let s = spec(&names);
    for shape in [Shape::Recloop, Shape::PlainStrings, Shape::Csv] {
        let dir = tempfile::tempdir().unwrap();
        write_shape(&s, dir.path(), shape).unwrap();
        let agg = aggregate(
            &LogReader::open(dir.path()).unwrap(),
            options("revenue", None),
        )
        .unwrap();
        check(&agg, &brute(&s, "revenue", None), "revenue", shape.name());
        assert!(agg.events_used < 6_000, "{shape:?}: {}", agg.events_used);
    }
    // A metric absent from the log: every row group is skipped by its statistics.
    let dir = tempfile::tempdir().unwrap();
    write_shape(&s, dir.path(), Shape::Recloop).unwrap();
    let agg = aggregate(&LogReader::open(dir.path()).unwrap(), options("zzz", None)).unwrap();
    assert_eq!(agg.events_used, 0);
    assert!(agg.metrics.iter().all(|m| m.summary.sum == Some(0.0)));
}

#[test]
fn unsupported_column_types_name_the_file_and_column() {
    let s = spec(&["click"]);
    let dir = tempfile::tempdir().unwrap();
    write_shape(&s, dir.path(), Shape::Recloop).unwrap();
    // Replace the events with a file whose unit_id is a float.
    let schema = Arc::new(Schema::new(vec![
        Field::new("unit_id", DataType::Float64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("day", DataType::UInt32, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Int64Array::from(vec![5])),
            Arc::new(UInt32Array::from(vec![0])),
            Arc::new(StringArray::from(vec!["click"])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    let path = dir.path().join("events.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = aggregate(
        &LogReader::open(dir.path()).unwrap(),
        options("click", None),
    )
    .expect_err("float ids");
    let msg = err.to_string();
    assert!(msg.contains("events.parquet"), "{msg}");
    assert!(msg.contains("`unit_id`"), "{msg}");
    assert!(msg.contains("Float64"), "{msg}");
}

#[test]
fn a_log_directory_of_csv_parts_is_read_like_one_file() {
    let s = spec(&["click", "revenue"]);
    let one = tempfile::tempdir().unwrap();
    write_shape(&s, one.path(), Shape::Csv).unwrap();
    // Split events.csv into three files under events/, each with the header.
    let text = std::fs::read_to_string(one.path().join("events.csv")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let many = tempfile::tempdir().unwrap();
    std::fs::copy(
        one.path().join("exposures.csv"),
        many.path().join("exposures.csv"),
    )
    .unwrap();
    std::fs::create_dir_all(many.path().join("events")).unwrap();
    for (k, chunk) in lines.chunks(lines.len() / 3 + 1).enumerate() {
        let mut t = format!("{header}\r\n");
        for l in chunk {
            t.push_str(l);
            t.push_str("\r\n");
        }
        std::fs::write(many.path().join(format!("events/part-{k}.csv")), t).unwrap();
    }
    let a = aggregate(
        &LogReader::open(one.path()).unwrap(),
        options("revenue", None),
    )
    .unwrap();
    let b = aggregate(
        &LogReader::open(many.path()).unwrap(),
        options("revenue", None),
    )
    .unwrap();
    check(&b, &brute(&s, "revenue", None), "revenue", "csv parts");
    assert_eq!(a.events_read, b.events_read);
}
