//! Writer → reader round trips (Parquet and CSV) and aggregation checked against a brute-force
//! per-unit computation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use recloop_logs::synthetic::SyntheticLogs;
use recloop_logs::{
    AggregateOptions, LogFormat, LogReader, LogWriter, LogsError, MetricDef, aggregate,
};

fn small() -> SyntheticLogs {
    let mut s = SyntheticLogs::new(500, 20_000, 7);
    s.treatment_lift = 0.2;
    s.batch_rows = 1000;
    s
}

#[test]
fn parquet_and_csv_round_trip_the_same_rows() {
    let s = small();
    for format in [LogFormat::Parquet, LogFormat::Csv] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = LogWriter::create(dir.path(), format).expect("writer");
        s.write(&mut w).expect("write");
        let written = w.finish().expect("finish");
        assert_eq!(written.exposures, 500);
        assert_eq!(written.events, 20_000);
        let r = LogReader::open(dir.path()).expect("open");
        assert_eq!(r.format(), format);
        let x = r.read_exposures().expect("exposures");
        let e = r.read_events().expect("events");
        assert_eq!(x.len(), 500);
        assert_eq!(e.len(), 20_000);
        assert_eq!(x[3].unit_id, 3);
        assert_eq!(x[3].arm, s.arms[s.arm_of(3)]);
        assert_eq!(x[3].ts, s.exposure_ts(3));
        // Values survive exactly (CSV writes the shortest round-trip representation).
        let generated = s.event_batches().expect("gen");
        let v = recloop_logs::columns::f64_column(&generated[0], "value", "gen").expect("col");
        assert_eq!(e[0].value, v[0]);
    }
}

/// n, Σy, Σy², Σx, Σx², Σxy, successes.
type Sums = (f64, f64, f64, f64, f64, f64, f64);

/// Brute force: per unit, sum post-exposure and pre-exposure values of each metric.
fn brute(s: &SyntheticLogs, metric: &str) -> HashMap<String, Sums> {
    let mut post: HashMap<u64, f64> = HashMap::new();
    let mut pre: HashMap<u64, f64> = HashMap::new();
    for b in s.event_batches().expect("events") {
        let unit = recloop_logs::columns::u64_column(&b, "unit_id", "g").expect("u");
        let ts = recloop_logs::columns::i64_column(&b, "ts", "g").expect("t");
        let m = recloop_logs::columns::str_column(&b, "metric", "g").expect("m");
        let v = recloop_logs::columns::f64_column(&b, "value", "g").expect("v");
        for i in 0..b.num_rows() {
            if m.dictionary[m.keys[i] as usize] != metric {
                continue;
            }
            if ts[i] >= s.exposure_ts(unit[i]) {
                *post.entry(unit[i]).or_default() += v[i];
            } else {
                *pre.entry(unit[i]).or_default() += v[i];
            }
        }
    }
    let mut out: HashMap<String, Sums> = HashMap::new();
    for u in 0..s.units {
        let y = post.get(&u).copied().unwrap_or(0.0);
        let x = pre.get(&u).copied().unwrap_or(0.0);
        let e = out.entry(s.arms[s.arm_of(u)].clone()).or_default();
        e.0 += 1.0;
        e.1 += y;
        e.2 += y * y;
        e.3 += x;
        e.4 += x * x;
        e.5 += x * y;
        e.6 += f64::from(u8::from(y > 0.0));
    }
    out
}

fn rel_close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn aggregation_matches_brute_force_in_both_formats() {
    let s = small();
    let want = brute(&s, "revenue");
    for format in [LogFormat::Parquet, LogFormat::Csv] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = LogWriter::create(dir.path(), format).expect("writer");
        s.write(&mut w).expect("write");
        w.finish().expect("finish");
        let agg = aggregate(
            &LogReader::open(dir.path()).expect("open"),
            AggregateOptions {
                metrics: vec![
                    MetricDef::mean("revenue"),
                    MetricDef::Proportion {
                        name: "any_revenue".into(),
                        event: "revenue".into(),
                    },
                    MetricDef::ratio("revenue_per_click", "revenue", "click"),
                ],
                cuped: true,
                ..Default::default()
            },
        )
        .expect("aggregate");
        assert_eq!(agg.events_read, 20_000);
        for arm in ["control", "treatment"] {
            let w = want[arm];
            let m = &agg.summary("exp", arm, "revenue").expect("mean").summary;
            assert_eq!(m.n, w.0);
            assert!(
                rel_close(m.sum.unwrap_or(f64::NAN), w.1),
                "{format:?} {arm} sum"
            );
            assert!(rel_close(m.sum_squares.unwrap_or(f64::NAN), w.2));
            assert!(rel_close(m.pre_sum.unwrap_or(f64::NAN), w.3));
            assert!(rel_close(m.pre_sum_squares.unwrap_or(f64::NAN), w.4));
            assert!(rel_close(
                m.post_pre_sum_of_products.unwrap_or(f64::NAN),
                w.5
            ));
            let p = &agg
                .summary("exp", arm, "any_revenue")
                .expect("prop")
                .summary;
            assert_eq!(p.successes, Some(w.6));
            let r = &agg
                .summary("exp", arm, "revenue_per_click")
                .expect("ratio")
                .summary;
            assert!(rel_close(r.m_sum.unwrap_or(f64::NAN), w.1));
        }
        // The 20% lift is visible through the stats crate.
        let req = agg
            .compare_request("exp", "revenue", "control", "treatment")
            .expect("req");
        let res = recloop_stats::compare(&req).expect("compare");
        assert!(res.estimate > 0.0, "{res:?}");
    }
}

#[test]
fn multiple_exposures_and_day_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = LogWriter::parquet(dir.path()).expect("writer");
    w.exposure(1, "e", "control", 10, 0).expect("x");
    w.exposure(1, "e", "control", 5, 0).expect("x");
    w.exposure(2, "e", "treatment", 10, 0).expect("x");
    w.exposure(3, "e", "control", 10, 0).expect("x");
    w.exposure(3, "e", "treatment", 11, 0).expect("x");
    w.exposure(4, "e", "treatment", 10, 2).expect("x");
    w.exposure(2, "other", "a", 0, 0).expect("x");
    w.event(1, 7, 0, "click", 1.0).expect("e");
    w.event(1, 4, 0, "click", 100.0).expect("e"); // before the first exposure
    w.event(2, 20, 0, "click", 2.0).expect("e");
    w.event(2, 20, 3, "click", 5.0).expect("e"); // after max_day
    w.event(3, 20, 0, "click", 9.0).expect("e");
    w.finish().expect("finish");
    let r = LogReader::open(dir.path()).expect("open");
    let agg = aggregate(
        &r,
        AggregateOptions {
            metrics: vec![MetricDef::mean("click")],
            experiment: Some("e".into()),
            max_day: Some(1),
            cuped: false,
        },
    )
    .expect("aggregate");
    assert_eq!(agg.multiple_exposure_units.get("e"), Some(&1));
    assert_eq!(
        agg.unit_counts("e"),
        vec![("control".to_string(), 1), ("treatment".to_string(), 1)]
    );
    let c = &agg.summary("e", "control", "click").expect("c").summary;
    assert_eq!((c.n, c.sum), (1.0, Some(1.0)));
    let t = &agg.summary("e", "treatment", "click").expect("t").summary;
    assert_eq!((t.n, t.sum), (1.0, Some(2.0)));
    assert!(agg.summary("other", "a", "click").is_none());
}

#[test]
fn csv_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("exposures.csv"),
        "unit_id,experiment,arm,ts,day\n1,e,control,5,0\n",
    )
    .expect("w");
    std::fs::write(
        dir.path().join("events.csv"),
        "unit_id,ts,day,metric,value\n1,6,0,click,1\n1,7,0,click,abc\n",
    )
    .expect("w");
    let r = LogReader::open(dir.path()).expect("open");
    let err = aggregate(
        &r,
        AggregateOptions {
            metrics: vec![MetricDef::mean("click")],
            ..Default::default()
        },
    )
    .expect_err("bad value");
    match &err {
        LogsError::Csv { line, field, .. } => {
            assert_eq!(*line, 3);
            assert_eq!(field, "value");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        err.to_string().contains("events.csv:3: field `value`"),
        "{err}"
    );

    std::fs::write(dir.path().join("events.csv"), "unit_id,ts,metric,value\n").expect("w");
    let err = r.read_events().expect_err("missing column");
    assert!(err.to_string().contains("day"), "{err}");
}

#[test]
fn open_rejects_a_directory_without_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = LogReader::open(dir.path()).expect_err("empty");
    assert!(err.to_string().contains("exposures.parquet"), "{err}");
}
