//! The Open Bandit Dataset (ZOZOTOWN, fashion e-commerce): logged bandit feedback with
//! propensities, for off-policy evaluation.
//!
//! `{behavior}/{campaign}/{campaign}.csv` (behavior `random` or `bts`, campaign `all`, `men` or
//! `women`) has columns: unnamed index, `timestamp`, `item_id`, `position` (1..3), `click`,
//! `propensity_score`, `user_feature_0..3` (hashed categoricals), `user-item_affinity_0..K-1`.
//! `item_context.csv` has: unnamed index, `item_id`, `item_feature_0` (float),
//! `item_feature_1..3` (hashed categoricals). Categorical features are mapped to dense codes in
//! order of first appearance (`*_levels` hold the raw strings).

use super::parse::{IdMap, lines, parse_f64, parse_i64};
use super::{DatasetName, ensure};
use crate::error::{RecError, Result};
use std::path::Path;

/// Number of hashed user features in the log.
pub const N_USER_FEATURES: usize = 4;
/// Number of categorical item features in the item context.
pub const N_ITEM_CAT_FEATURES: usize = 3;

/// One logged policy's impressions, in columns (row `r` is one impression).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObdLog {
    /// `random` or `bts`.
    pub behavior: String,
    /// `all`, `men` or `women`.
    pub campaign: String,
    /// Impression time, microseconds since the unix epoch (UTC).
    pub timestamp_us: Vec<i64>,
    /// Shown item.
    pub item_id: Vec<u32>,
    /// Slot, 0-based (the file's position − 1).
    pub position: Vec<u8>,
    /// 1 if clicked.
    pub click: Vec<u8>,
    /// Probability that the logging policy showed this item in this position.
    pub propensity: Vec<f64>,
    /// Row-major `len × N_USER_FEATURES` codes of the user features.
    pub user_features: Vec<u32>,
    /// Raw values per user feature (`user_feature_levels[f][code]`).
    pub user_feature_levels: Vec<Vec<String>>,
    /// Row-major `len × n_affinity` user-item affinities.
    pub affinity: Vec<f32>,
    /// Number of affinity columns.
    pub n_affinity: usize,
    /// Number of items (`max item_id + 1` over log and item context).
    pub n_items: usize,
    /// Item features.
    pub items: ObdItemContext,
}

/// Per-item features from `item_context.csv`, indexed by `item_id`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObdItemContext {
    /// `item_feature_0` (standardised float) per item.
    pub feature_0: Vec<f64>,
    /// Row-major `n_items × N_ITEM_CAT_FEATURES` codes of `item_feature_1..3`.
    pub cat_features: Vec<u32>,
    /// Raw values per categorical feature.
    pub cat_levels: Vec<Vec<String>>,
}

impl ObdLog {
    /// Number of impressions.
    pub fn len(&self) -> usize {
        self.item_id.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.item_id.is_empty()
    }

    /// Click-through rate of the log.
    pub fn ctr(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.click.iter().map(|&c| f64::from(c)).sum::<f64>() / self.len() as f64
    }

    /// Number of slots (`max position + 1`).
    pub fn n_positions(&self) -> usize {
        self.position
            .iter()
            .map(|&p| p as usize + 1)
            .max()
            .unwrap_or(0)
    }
}

/// Load `behavior`/`campaign` from the default cache, fetching the dataset first if needed.
pub fn load(behavior: &str, campaign: &str) -> Result<ObdLog> {
    let dir = ensure(DatasetName::Obd)?;
    load_dir(&dir, behavior, campaign)
}

/// Load `behavior`/`campaign` from an OBD directory (the cache's `obd/`).
pub fn load_dir(dir: &Path, behavior: &str, campaign: &str) -> Result<ObdLog> {
    if !matches!(behavior, "random" | "bts") {
        return Err(obd_err(format!(
            "unknown behavior policy {behavior:?}; expected random or bts"
        )));
    }
    if !matches!(campaign, "all" | "men" | "women") {
        return Err(obd_err(format!(
            "unknown campaign {campaign:?}; expected all, men or women"
        )));
    }
    let base = dir.join(behavior).join(campaign);
    let log_path = base.join(format!("{campaign}.csv"));
    let ctx_path = base.join("item_context.csv");
    let log_bytes = read(&log_path)?;
    let ctx_bytes = read(&ctx_path)?;
    let mut log = parse_log(&log_path.display().to_string(), &log_bytes)?;
    log.behavior = behavior.to_string();
    log.campaign = campaign.to_string();
    let items = parse_item_context(&ctx_path.display().to_string(), &ctx_bytes)?;
    log.n_items = log.n_items.max(items.feature_0.len());
    log.items = items;
    let n = log.n_items;
    log.items.feature_0.resize(n, 0.0);
    log.items
        .cat_features
        .resize(n * N_ITEM_CAT_FEATURES, u32::MAX);
    Ok(log)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn obd_err(reason: String) -> RecError {
    RecError::Data {
        name: "obd".into(),
        reason,
    }
}

fn at(file: &str, line: usize, reason: impl std::fmt::Display) -> RecError {
    obd_err(format!("{file}:{line}: {reason}"))
}

fn col(cols: &[&str], name: &str, file: &str) -> Result<usize> {
    cols.iter()
        .position(|c| *c == name)
        .ok_or_else(|| at(file, 1, format!("missing column {name}")))
}

/// Parse a `{campaign}.csv` log.
pub fn parse_log(file: &str, bytes: &[u8]) -> Result<ObdLog> {
    let mut it = lines(bytes);
    let header = it
        .next()
        .map(|(_, h)| String::from_utf8_lossy(h).into_owned())
        .unwrap_or_default();
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let c_ts = col(&cols, "timestamp", file)?;
    let c_item = col(&cols, "item_id", file)?;
    let c_pos = col(&cols, "position", file)?;
    let c_click = col(&cols, "click", file)?;
    let c_prop = col(&cols, "propensity_score", file)?;
    let c_user: Vec<usize> = (0..N_USER_FEATURES)
        .map(|f| col(&cols, &format!("user_feature_{f}"), file))
        .collect::<Result<_>>()?;
    let c_aff: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("user-item_affinity_"))
        .map(|(i, _)| i)
        .collect();
    let mut log = ObdLog {
        n_affinity: c_aff.len(),
        ..ObdLog::default()
    };
    let mut levels: Vec<IdMap> = (0..N_USER_FEATURES).map(|_| IdMap::default()).collect();
    let mut max_item = None::<u32>;
    for (no, line) in it {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if f.len() != cols.len() {
            return Err(at(
                file,
                no,
                format!("expected {} fields, found {}", cols.len(), f.len()),
            ));
        }
        let field = |c: usize| String::from_utf8_lossy(f[c]).into_owned();
        let ts = parse_timestamp_us(f[c_ts]).ok_or_else(|| {
            at(
                file,
                no,
                format!("field timestamp: bad time {:?}", field(c_ts)),
            )
        })?;
        let item = parse_i64(f[c_item])
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                at(
                    file,
                    no,
                    format!("field item_id: bad id {:?}", field(c_item)),
                )
            })?;
        let pos = parse_i64(f[c_pos])
            .filter(|p| (1..=255).contains(p))
            .ok_or_else(|| {
                at(
                    file,
                    no,
                    format!("field position: expected 1.., got {:?}", field(c_pos)),
                )
            })?;
        let click = parse_i64(f[c_click])
            .filter(|c| *c == 0 || *c == 1)
            .ok_or_else(|| {
                at(
                    file,
                    no,
                    format!("field click: expected 0 or 1, got {:?}", field(c_click)),
                )
            })?;
        let prop = parse_f64(f[c_prop])
            .filter(|p| *p > 0.0 && *p <= 1.0)
            .ok_or_else(|| {
                at(
                    file,
                    no,
                    format!(
                        "field propensity_score: expected a probability in (0, 1], got {:?}",
                        field(c_prop)
                    ),
                )
            })?;
        log.timestamp_us.push(ts);
        log.item_id.push(item);
        log.position.push((pos - 1) as u8);
        log.click.push(click as u8);
        log.propensity.push(prop);
        for (k, &c) in c_user.iter().enumerate() {
            log.user_features.push(levels[k].index(f[c]));
        }
        for &c in &c_aff {
            let v = parse_f64(f[c]).ok_or_else(|| {
                at(
                    file,
                    no,
                    format!("field {}: not a number {:?}", cols[c], field(c)),
                )
            })?;
            log.affinity.push(v as f32);
        }
        max_item = Some(max_item.map_or(item, |m| m.max(item)));
    }
    log.user_feature_levels = levels.into_iter().map(|m| m.ids).collect();
    log.n_items = max_item.map_or(0, |m| m as usize + 1);
    Ok(log)
}

/// Parse `item_context.csv`.
pub fn parse_item_context(file: &str, bytes: &[u8]) -> Result<ObdItemContext> {
    let mut it = lines(bytes);
    let header = it
        .next()
        .map(|(_, h)| String::from_utf8_lossy(h).into_owned())
        .unwrap_or_default();
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let c_item = col(&cols, "item_id", file)?;
    let c_f0 = col(&cols, "item_feature_0", file)?;
    let c_cat: Vec<usize> = (1..=N_ITEM_CAT_FEATURES)
        .map(|f| col(&cols, &format!("item_feature_{f}"), file))
        .collect::<Result<_>>()?;
    let mut rows: Vec<(usize, f64, Vec<u32>)> = Vec::new();
    let mut levels: Vec<IdMap> = (0..N_ITEM_CAT_FEATURES).map(|_| IdMap::default()).collect();
    for (no, line) in it {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if f.len() != cols.len() {
            return Err(at(
                file,
                no,
                format!("expected {} fields, found {}", cols.len(), f.len()),
            ));
        }
        let item = parse_i64(f[c_item])
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v < 1_000_000)
            .ok_or_else(|| at(file, no, "field item_id: bad id"))?;
        let f0 =
            parse_f64(f[c_f0]).ok_or_else(|| at(file, no, "field item_feature_0: not a number"))?;
        let cats = c_cat
            .iter()
            .enumerate()
            .map(|(k, &c)| levels[k].index(f[c]))
            .collect();
        rows.push((item, f0, cats));
    }
    let n = rows.iter().map(|r| r.0 + 1).max().unwrap_or(0);
    let mut ctx = ObdItemContext {
        feature_0: vec![0.0; n],
        cat_features: vec![u32::MAX; n * N_ITEM_CAT_FEATURES],
        cat_levels: Vec::new(),
    };
    for (item, f0, cats) in rows {
        ctx.feature_0[item] = f0;
        ctx.cat_features[item * N_ITEM_CAT_FEATURES..(item + 1) * N_ITEM_CAT_FEATURES]
            .copy_from_slice(&cats);
    }
    ctx.cat_levels = levels.into_iter().map(|m| m.ids).collect();
    Ok(ctx)
}

/// `2019-11-24 00:00:34.762830+00:00` → microseconds since the epoch (offset applied).
fn parse_timestamp_us(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (date, rest) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    // split the offset from the time
    let (time, offset_s) = match rest.rfind(['+', '-']) {
        Some(p) => {
            let (t, o) = rest.split_at(p);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
            let secs = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            (t, sign * secs)
        }
        None => (rest.trim_end_matches('Z'), 0),
    };
    let mut t = time.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let sec_str = t.next().unwrap_or("0");
    let (sec, frac) = sec_str.split_once('.').unwrap_or((sec_str, ""));
    let ss: i64 = sec.parse().ok()?;
    let mut micros: i64 = 0;
    for (k, ch) in frac.chars().take(6).enumerate() {
        micros += i64::from(ch.to_digit(10)?) * 10i64.pow(5 - k as u32);
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) - offset_s) * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_us(b"1970-01-01 00:00:00+00:00"), Some(0));
        assert_eq!(
            parse_timestamp_us(b"2019-11-24 00:00:34.762830+00:00"),
            Some(1_574_553_634_762_830)
        );
        assert_eq!(
            parse_timestamp_us(b"2019-11-24 01:00:34+01:00"),
            Some(1_574_553_634_000_000)
        );
        assert_eq!(parse_timestamp_us(b"yesterday"), None);
    }

    const LOG: &str = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2,user_feature_3,user-item_affinity_0,user-item_affinity_1\n\
        0,2019-11-24 00:00:34.762830+00:00,14,3,0,0.0125,a,b,c,d,0.0,1.0\n\
        1,2019-11-24 00:00:53.965051+00:00,2,1,1,0.5,a,e,c,d,0.5,0.0\n";
    const CTX: &str = ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n\
        0,0,-0.5,x,y,z\n1,2,0.25,x,q,z\n";

    #[test]
    fn parses_log_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("random").join("all");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("all.csv"), LOG).unwrap();
        std::fs::write(base.join("item_context.csv"), CTX).unwrap();
        let log = load_dir(dir.path(), "random", "all").unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log.item_id, vec![14, 2]);
        assert_eq!(log.position, vec![2, 0]);
        assert_eq!(log.click, vec![0, 1]);
        assert_eq!(log.propensity, vec![0.0125, 0.5]);
        assert_eq!(log.user_features, vec![0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(log.user_feature_levels[1], vec!["b", "e"]);
        assert_eq!(log.n_affinity, 2);
        assert_eq!(log.affinity, vec![0.0, 1.0, 0.5, 0.0]);
        assert_eq!(log.n_items, 15);
        assert_eq!(log.items.feature_0[2], 0.25);
        assert_eq!(&log.items.cat_features[6..9], &[0, 1, 0]);
        assert_eq!(log.n_positions(), 3);
        assert!((log.ctr() - 0.5).abs() < 1e-12);
        assert!(load_dir(dir.path(), "greedy", "all").is_err());
    }

    #[test]
    fn bad_row_names_line_and_field() {
        let bad = LOG.replace("0.0125", "1.5");
        let e = parse_log("all.csv", bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("all.csv:2") && e.contains("propensity_score"),
            "{e}"
        );
    }
}
