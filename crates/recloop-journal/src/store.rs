//! Backend-independent logic that runs inside a transaction: append, import, rebuild, verify and
//! dump. Each backend opens the transaction (with its write lock) and calls these.

use crate::error::{JournalError, Result};
use crate::event::{
    EVENT_SCHEMA_VERSION, Event, EventId, EventRecord, NewEvent, TIMESTAMP_FORMAT,
    normalise_timestamp,
};
#[cfg(test)]
use crate::projection::project;
use crate::schema::VIEW_TABLES;
use crate::sql::{ColType, SqlConn, Val};
use crate::viewbatch::apply_projections;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Columns of `events` in the order [`record_from_row`] expects.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, parent, ts, run_id, iteration, idem_key, schema_version, artifacts, body, checksum";

/// Types of [`EVENT_COLUMNS`].
pub(crate) const EVENT_TYPES: &[ColType] = &[
    ColType::Int,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Int,
    ColType::Text,
    ColType::Int,
    ColType::Text,
    ColType::Text,
    ColType::Text,
];

const INSERT_EVENTS: &str = "INSERT INTO events (seq, id, parent, ts, run_id, iteration, type, \
     proposal_id, idem_key, schema_version, artifacts, body, checksum) VALUES";
const EVENT_ROW_MARKS: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn db(location: &str, op: &str) -> impl Fn(sqlx::Error) -> JournalError {
    let location = location.to_string();
    let op = op.to_string();
    move |e| JournalError::db(&location, &op, e)
}

/// Number of events and highest sequence number.
pub(crate) async fn log_extent<C: SqlConn>(c: &mut C, location: &str) -> Result<(u64, u64)> {
    let rows = c
        .query(
            "SELECT COUNT(*), MAX(seq) FROM events",
            &[],
            &[ColType::Int, ColType::Int],
        )
        .await
        .map_err(db(location, "reading the log extent"))?;
    let count = rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0).max(0) as u64;
    let max = rows.first().and_then(|r| r[1].as_i64()).unwrap_or(0).max(0) as u64;
    Ok((count, max))
}

/// Highest sequence number (0 for an empty log). Uses the primary key: O(log n), unlike COUNT.
pub(crate) async fn last_seq<C: SqlConn>(c: &mut C, location: &str) -> Result<u64> {
    let rows = c
        .query("SELECT MAX(seq) FROM events", &[], &[ColType::Int])
        .await
        .map_err(db(location, "reading the last sequence number"))?;
    Ok(rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0).max(0) as u64)
}

/// Validate, number, insert and project a batch of new events (inside the caller's transaction).
pub(crate) async fn append_in_tx<C: SqlConn>(
    c: &mut C,
    location: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<EventId>> {
    let max = last_seq(c, location).await?;
    let mut next = max + 1;
    let mut out = Vec::with_capacity(events.len());
    let mut batch_ids: HashSet<Uuid> = HashSet::new();
    let mut batch_keys: HashMap<String, (EventId, String)> = HashMap::new();
    let mut pending: Vec<(EventRecord, Vec<Val>)> = Vec::with_capacity(events.len());
    for ne in events {
        let type_name = ne.event.type_name();
        let invalid = |reason: String| JournalError::InvalidEvent {
            event_type: type_name.to_string(),
            reason,
        };
        if ne.run_id.trim().is_empty() {
            return Err(invalid("run_id is empty".into()));
        }
        if let Some(key) = &ne.idempotency_key {
            if key.is_empty() {
                return Err(invalid("idempotency key is empty".into()));
            }
            // Keys of earlier events of this batch (not inserted yet), then the log.
            let known = match batch_keys.get(key) {
                Some(found) => Some(found.clone()),
                None => find_key(c, location, key).await?,
            };
            if let Some((id, existing_type)) = known {
                if existing_type != type_name {
                    return Err(JournalError::KeyConflict {
                        key: key.clone(),
                        seq: id.seq,
                        existing_type,
                        new_type: type_name.to_string(),
                    });
                }
                out.push(id);
                continue;
            }
        }
        let body = serde_json::to_string(&ne.event)
            .map_err(|e| invalid(format!("cannot serialise: {e}")))?;
        // Project exactly what a rebuild will read back from the stored text.
        let event = serde_json::from_str::<Event>(&body).map_err(|e| {
            invalid(format!(
                "does not survive a JSON round trip ({e}); NaN or infinite numbers are not allowed"
            ))
        })?;
        if let Some(p) = ne.parent
            && !batch_ids.contains(&p)
        {
            let rows = c
                .query(
                    "SELECT seq FROM events WHERE id = ?",
                    &[Val::text(p.to_string())],
                    &[ColType::Int],
                )
                .await
                .map_err(db(location, "checking the parent"))?;
            if rows.is_empty() {
                return Err(invalid(format!("causal parent {p} is not in the journal")));
            }
        }
        let id = ne.id.unwrap_or_else(Uuid::now_v7);
        let record = EventRecord {
            schema_version: EVENT_SCHEMA_VERSION,
            seq: next,
            id,
            parent: ne.parent,
            timestamp: normalise_timestamp(ne.timestamp.unwrap_or_else(Utc::now)),
            run_id: ne.run_id,
            iteration: ne.iteration,
            artifacts: ne.artifacts,
            idempotency_key: ne.idempotency_key,
            event,
            checksum: String::new(),
        };
        let eid = EventId { seq: next, id };
        if let Some(key) = &record.idempotency_key {
            batch_keys.insert(key.clone(), (eid, type_name.to_string()));
        }
        pending.push(prepare_row(location, record, Some(body))?);
        batch_ids.insert(id);
        out.push(eid);
        next += 1;
    }
    insert_rows(c, location, pending).await?;
    Ok(out)
}

/// Events per multi-row INSERT (13 parameters each; well below both databases' limits).
const ROWS_PER_INSERT: usize = 100;

/// Insert prepared rows (several per statement, in order) and run their projections.
pub(crate) async fn insert_rows<C: SqlConn>(
    c: &mut C,
    location: &str,
    rows: Vec<(EventRecord, Vec<Val>)>,
) -> Result<()> {
    let (records, params): (Vec<EventRecord>, Vec<Vec<Val>>) = rows.into_iter().unzip();
    let mut params = params.into_iter().peekable();
    while params.peek().is_some() {
        let chunk: Vec<Vec<Val>> = params.by_ref().take(ROWS_PER_INSERT).collect();
        let marks = vec![EVENT_ROW_MARKS; chunk.len()].join(", ");
        let sql = format!("{INSERT_EVENTS} {marks}");
        let flat: Vec<Val> = chunk.into_iter().flatten().collect();
        c.exec(&sql, &flat)
            .await
            .map_err(db(location, "inserting events"))?;
    }
    apply_projections(c, location, &records).await
}

async fn find_key<C: SqlConn>(
    c: &mut C,
    location: &str,
    key: &str,
) -> Result<Option<(EventId, String)>> {
    let rows = c
        .query(
            "SELECT seq, id, type FROM events WHERE idem_key = ?",
            &[Val::text(key)],
            &[ColType::Int, ColType::Text, ColType::Text],
        )
        .await
        .map_err(db(location, "looking up an idempotency key"))?;
    match rows.first() {
        None => Ok(None),
        Some(r) => {
            let seq = r[0].as_i64().unwrap_or(0).max(0) as u64;
            let id = parse_uuid(&r[1].string(), location, seq)?;
            Ok(Some((EventId { seq, id }, r[2].string())))
        }
    }
}

/// Complete a record's checksum (computed when empty, verified otherwise) and build its
/// `events` row. `body` is the event JSON when the caller already has it.
pub(crate) fn prepare_row(
    location: &str,
    mut record: EventRecord,
    body: Option<String>,
) -> Result<(EventRecord, Vec<Val>)> {
    let body = match body {
        Some(b) => b,
        None => serde_json::to_string(&record.event).map_err(|e| JournalError::InvalidEvent {
            event_type: record.event.type_name().into(),
            reason: format!("cannot serialise: {e}"),
        })?,
    };
    let artifacts = serde_json::to_string(&record.artifacts)
        .map_err(|e| JournalError::Internal(format!("cannot serialise artifact list: {e}")))?;
    let ts = record.timestamp_text();
    let checksum = EventRecord::compute_checksum(
        record.seq,
        &record.id,
        record.parent.as_ref(),
        &ts,
        &record.run_id,
        record.iteration,
        record.idempotency_key.as_deref(),
        record.schema_version,
        &artifacts,
        &body,
    );
    if record.checksum.is_empty() {
        record.checksum = checksum;
    } else if record.checksum != checksum {
        return Err(JournalError::Corrupt {
            location: location.to_string(),
            detail: format!(
                "event #{} has checksum {} but its content hashes to {checksum}",
                record.seq, record.checksum
            ),
        });
    }
    let params = vec![
        Val::int(record.seq as i64),
        Val::text(record.id.to_string()),
        Val::Text(record.parent.map(|p| p.to_string())),
        Val::text(ts),
        Val::text(&record.run_id),
        Val::int(i64::from(record.iteration)),
        Val::text(record.event.type_name()),
        Val::Text(record.event.proposal_id().map(str::to_string)),
        Val::Text(record.idempotency_key.clone()),
        Val::int(i64::from(record.schema_version)),
        Val::text(artifacts),
        Val::text(body),
        Val::text(&record.checksum),
    ];
    Ok((record, params))
}

/// Run the projection of one record, one statement per op: the reference the batched path
/// ([`apply_projections`]) is tested against.
#[cfg(test)]
pub(crate) async fn apply_projection<C: SqlConn>(
    c: &mut C,
    location: &str,
    record: &EventRecord,
) -> Result<()> {
    for op in project(record) {
        let (sql, params) = op.to_sql();
        c.exec(&sql, &params)
            .await
            .map_err(db(location, &format!("updating view {}", op.table)))?;
    }
    Ok(())
}

fn parse_uuid(s: &str, location: &str, seq: u64) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| JournalError::Corrupt {
        location: location.to_string(),
        detail: format!("event #{seq}: id `{s}` is not a uuid ({e})"),
    })
}

fn parse_ts(s: &str, location: &str, seq: u64) -> Result<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, TIMESTAMP_FORMAT)
        .map(|n| n.and_utc())
        .map_err(|e| JournalError::Corrupt {
            location: location.to_string(),
            detail: format!("event #{seq}: timestamp `{s}` is malformed ({e})"),
        })
}

/// Decode a row of [`EVENT_COLUMNS`]; with `verify`, recompute the checksum.
pub(crate) fn record_from_row(row: &[Val], location: &str, verify: bool) -> Result<EventRecord> {
    let seq = row[0].as_i64().unwrap_or(0).max(0) as u64;
    let corrupt = |detail: String| JournalError::Corrupt {
        location: location.to_string(),
        detail: format!("event #{seq}: {detail}"),
    };
    let id = parse_uuid(&row[1].string(), location, seq)?;
    let parent = match row[2].as_str() {
        Some(p) => Some(parse_uuid(p, location, seq)?),
        None => None,
    };
    let ts_text = row[3].string();
    let timestamp = parse_ts(&ts_text, location, seq)?;
    let iteration = u32::try_from(row[5].as_i64().unwrap_or(-1))
        .map_err(|_| corrupt("iteration out of range".into()))?;
    let schema_version = u32::try_from(row[7].as_i64().unwrap_or(-1))
        .map_err(|_| corrupt("schema_version out of range".into()))?;
    if schema_version > EVENT_SCHEMA_VERSION {
        return Err(JournalError::FutureSchema {
            location: location.to_string(),
            found: i64::from(schema_version),
            supported: i64::from(EVENT_SCHEMA_VERSION),
        });
    }
    let artifacts_text = row[8].string();
    let body = row[9].string();
    let checksum = row[10].string();
    let artifacts = serde_json::from_str(&artifacts_text)
        .map_err(|e| corrupt(format!("artifact list is malformed ({e})")))?;
    let event: Event = serde_json::from_str(&body)
        .map_err(|e| corrupt(format!("event body is malformed ({e})")))?;
    let record = EventRecord {
        schema_version,
        seq,
        id,
        parent,
        timestamp,
        run_id: row[4].string(),
        iteration,
        artifacts,
        idempotency_key: row[6].as_str().map(str::to_string),
        event,
        checksum,
    };
    if verify {
        let expected = EventRecord::compute_checksum(
            seq,
            &record.id,
            record.parent.as_ref(),
            &ts_text,
            &record.run_id,
            record.iteration,
            record.idempotency_key.as_deref(),
            schema_version,
            &artifacts_text,
            &body,
        );
        if expected != record.checksum {
            return Err(corrupt(format!(
                "checksum mismatch (stored {}, content hashes to {expected})",
                record.checksum
            )));
        }
    }
    Ok(record)
}

/// Page through the log in sequence order, calling `f` on each record.
pub(crate) async fn for_each_record<C, F>(
    c: &mut C,
    location: &str,
    verify: bool,
    mut f: F,
) -> Result<()>
where
    C: SqlConn,
    F: FnMut(&EventRecord) -> Result<()> + Send,
{
    let mut after = 0i64;
    loop {
        let rows = c
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT 2000"
                ),
                &[Val::int(after)],
                EVENT_TYPES,
            )
            .await
            .map_err(db(location, "reading events"))?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            let rec = record_from_row(row, location, verify)?;
            after = rec.seq as i64;
            f(&rec)?;
        }
    }
}

/// Empty every view and replay the whole log through the projection.
pub(crate) async fn rebuild_in_tx<C: SqlConn>(c: &mut C, location: &str) -> Result<u64> {
    for t in VIEW_TABLES {
        c.exec(&format!("DELETE FROM {}", t.name), &[])
            .await
            .map_err(db(location, &format!("emptying view {}", t.name)))?;
    }
    let mut after = 0i64;
    let mut n = 0u64;
    loop {
        let rows = c
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT 2000"
                ),
                &[Val::int(after)],
                EVENT_TYPES,
            )
            .await
            .map_err(db(location, "reading events"))?;
        if rows.is_empty() {
            return Ok(n);
        }
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let rec = record_from_row(row, location, false)?;
            after = rec.seq as i64;
            records.push(rec);
        }
        apply_projections(c, location, &records).await?;
        n += records.len() as u64;
    }
}

/// Import complete records (from an export) into an empty journal, verifying each.
pub(crate) async fn import_in_tx<C: SqlConn>(
    c: &mut C,
    location: &str,
    records: Vec<EventRecord>,
) -> Result<u64> {
    let (count, _) = log_extent(c, location).await?;
    if count > 0 {
        return Err(JournalError::NotEmpty {
            location: location.to_string(),
            events: count,
        });
    }
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut rows = Vec::new();
    let n = records.len() as u64;
    for (expected, rec) in (1u64..).zip(records) {
        if rec.seq != expected {
            return Err(JournalError::Corrupt {
                location: location.to_string(),
                detail: format!(
                    "imported log has a gap: expected event #{expected}, found #{}",
                    rec.seq
                ),
            });
        }
        if let Some(p) = rec.parent
            && !seen.contains(&p)
        {
            return Err(JournalError::Corrupt {
                location: location.to_string(),
                detail: format!(
                    "event #{}: causal parent {p} is not an earlier event",
                    rec.seq
                ),
            });
        }
        if rec.schema_version > EVENT_SCHEMA_VERSION {
            return Err(JournalError::FutureSchema {
                location: location.to_string(),
                found: i64::from(rec.schema_version),
                supported: i64::from(EVENT_SCHEMA_VERSION),
            });
        }
        seen.insert(rec.id);
        rows.push(prepare_row(location, rec, None)?);
        if rows.len() >= 2000 {
            insert_rows(c, location, std::mem::take(&mut rows)).await?;
        }
    }
    insert_rows(c, location, rows).await?;
    Ok(n)
}

/// What [`verify_log`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogReport {
    /// Events in the log.
    pub events: u64,
    /// Highest sequence number (equals `events` in a healthy log).
    pub last_seq: u64,
    /// Distinct runs.
    pub runs: u64,
}

/// Check the log: sequence numbers 1..n without gaps, every checksum, every body parses, every
/// parent is an earlier event.
pub(crate) async fn verify_log<C: SqlConn>(c: &mut C, location: &str) -> Result<LogReport> {
    let mut expected = 1u64;
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut runs: HashSet<String> = HashSet::new();
    let loc = location.to_string();
    for_each_record(c, location, true, |rec| {
        if rec.seq != expected {
            return Err(JournalError::Corrupt {
                location: loc.clone(),
                detail: format!(
                    "gap in the log: expected event #{expected}, found #{}",
                    rec.seq
                ),
            });
        }
        if let Some(p) = rec.parent
            && !seen.contains(&p)
        {
            return Err(JournalError::Corrupt {
                location: loc.clone(),
                detail: format!(
                    "event #{}: causal parent {p} is not an earlier event",
                    rec.seq
                ),
            });
        }
        seen.insert(rec.id);
        if !runs.contains(&rec.run_id) {
            runs.insert(rec.run_id.clone());
        }
        expected += 1;
        Ok(())
    })
    .await?;
    Ok(LogReport {
        events: expected - 1,
        last_seq: expected - 1,
        runs: runs.len() as u64,
    })
}

/// A canonical text dump of every view table (ordered by key), for comparing rebuilds.
pub(crate) async fn dump_views<C: SqlConn>(c: &mut C, location: &str) -> Result<String> {
    let mut out = String::new();
    for t in VIEW_TABLES {
        let cols: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
        let types: Vec<ColType> = t.columns.iter().map(|(_, ty)| *ty).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT {} FROM {} ORDER BY {}",
                    cols.join(", "),
                    t.name,
                    t.key.join(", ")
                ),
                &[],
                &types,
            )
            .await
            .map_err(db(location, &format!("dumping view {}", t.name)))?;
        out.push_str(&format!("## {} ({} rows)\n", t.name, rows.len()));
        for r in rows {
            let cells: Vec<String> = r
                .iter()
                .map(|v| match v {
                    Val::Int(Some(i)) => i.to_string(),
                    Val::Real(Some(f)) => format!("{f:?}"),
                    Val::Text(Some(s)) => format!("{s:?}"),
                    _ => "NULL".to_string(),
                })
                .collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
    }
    Ok(out)
}
