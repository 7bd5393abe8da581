//! Batched view maintenance: the projection ops of many events applied to an in-memory copy of
//! the rows they touch, then each touched row written once.
//!
//! An experiment's row receives about a dozen ops over its life (proposal, admission, worktree,
//! five gates, candidate, verdict, merge ...) and the budget row of a run one per model call.
//! Running every op as its own `INSERT ... ON CONFLICT` statement cost ~1.5 statements per event.
//! Here a batch of events is handled in four steps:
//!
//! 1. project every event (pure, see [`crate::projection`]) and collect the keys each table's
//!    ops touch;
//! 2. read those rows (one `SELECT ... WHERE key IN (...)` per chunk of keys);
//! 3. apply the ops in log order in memory, with exactly the semantics of the SQL in
//!    `ViewOp::to_sql` (`Set`, `Add` = `COALESCE(cur, 0) + v`, `Keep`, `SetUnless`;
//!    `Update` is a no-op on an absent row, `InsertIgnore` on a present one);
//! 4. write every changed row once, with multi-row `INSERT ... ON CONFLICT (key) DO UPDATE`
//!    statements: rows that existed first, then new rows in the order they came into existence
//!    (so SQLite assigns the same rowids as one-op-at-a-time application would).
//!
//! Appending, importing and rebuilding all go through [`apply_projections`], for both backends,
//! so a view rebuilt from the log is identical to the incrementally maintained one; a unit test
//! also checks the result equals running the ops one statement at a time.

use crate::error::{JournalError, Result};
use crate::event::EventRecord;
use crate::projection::{Assign, Mode, ViewOp, project};
use crate::schema::{TableDef, VIEW_TABLES};
use crate::sql::{ColType, SqlConn, Val};
use std::collections::HashMap;

/// Most parameters per statement (far below SQLite's 32,766 and PostgreSQL's 65,535).
const PARAMS_PER_STATEMENT: usize = 2000;

/// Hashable form of a key value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyPart {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
}

impl From<&Val> for KeyPart {
    fn from(v: &Val) -> KeyPart {
        match v {
            Val::Int(Some(i)) => KeyPart::Int(*i),
            Val::Real(Some(f)) => KeyPart::Real(f.to_bits()),
            Val::Text(Some(s)) => KeyPart::Text(s.clone()),
            _ => KeyPart::Null,
        }
    }
}

/// One touched row.
struct Row {
    /// Key values, in the order of the table's op key columns.
    key: Vec<Val>,
    /// Every column in [`TableDef`] order; `None` while the row does not exist.
    values: Option<Vec<Val>>,
    /// The row exists in the database (read in step 2).
    stored: bool,
    /// An op changed it in this batch.
    dirty: bool,
    /// For rows created in this batch: when (across the table), for the insert order.
    created: Option<usize>,
}

/// The touched rows of one table.
struct TableRows {
    def: &'static TableDef,
    /// Key columns the ops of this table use (`ON CONFLICT` target).
    key_cols: Vec<&'static str>,
    /// Their positions in `def.columns`.
    key_idx: Vec<usize>,
    rows: HashMap<Vec<KeyPart>, Row>,
    /// Keys in first-touch order.
    order: Vec<Vec<KeyPart>>,
    created: usize,
}

fn internal(msg: String) -> JournalError {
    JournalError::Internal(msg)
}

fn column_index(def: &TableDef, col: &str) -> Result<usize> {
    def.columns
        .iter()
        .position(|(n, _)| *n == col)
        .ok_or_else(|| internal(format!("view {} has no column `{col}`", def.name)))
}

fn null_of(ty: ColType) -> Val {
    match ty {
        ColType::Int => Val::Int(None),
        ColType::Real => Val::Real(None),
        ColType::Text => Val::Text(None),
    }
}

fn is_null(v: &Val) -> bool {
    matches!(v, Val::Int(None) | Val::Real(None) | Val::Text(None))
}

/// `v` as a value of column type `ty` (NULLs take the column's type; other mismatches are a bug
/// in the projection, which PostgreSQL would reject too).
fn coerce(v: &Val, ty: ColType, table: &str, col: &str) -> Result<Val> {
    match (v, ty) {
        (Val::Int(_), ColType::Int)
        | (Val::Real(_), ColType::Real)
        | (Val::Text(_), ColType::Text) => Ok(v.clone()),
        _ if is_null(v) => Ok(null_of(ty)),
        _ => Err(internal(format!(
            "the projection writes {v:?} into {table}.{col}, a {ty:?} column"
        ))),
    }
}

/// `COALESCE(cur, 0) + v`, as both databases compute it (IEEE doubles; integer overflow is an
/// error, as in PostgreSQL).
fn add(cur: &Val, v: &Val, table: &str, col: &str) -> Result<Val> {
    match (cur, v) {
        (_, Val::Int(None)) => Ok(Val::Int(None)),
        (_, Val::Real(None)) => Ok(Val::Real(None)),
        (Val::Int(c), Val::Int(Some(x))) => c
            .unwrap_or(0)
            .checked_add(*x)
            .map(Val::int)
            .ok_or_else(|| internal(format!("counter {table}.{col} overflows"))),
        (Val::Real(c), Val::Real(Some(x))) => Ok(Val::real(c.unwrap_or(0.0) + *x)),
        _ => Err(internal(format!(
            "cannot add {v:?} to {cur:?} in {table}.{col}"
        ))),
    }
}

impl TableRows {
    fn new(def: &'static TableDef, op: &ViewOp) -> Result<TableRows> {
        let key_cols: Vec<&'static str> = op.key.iter().map(|(k, _)| *k).collect();
        let key_idx = key_cols
            .iter()
            .map(|k| column_index(def, k))
            .collect::<Result<Vec<_>>>()?;
        Ok(TableRows {
            def,
            key_cols,
            key_idx,
            rows: HashMap::new(),
            order: Vec::new(),
            created: 0,
        })
    }

    fn key_of(&self, op: &ViewOp) -> Result<Vec<KeyPart>> {
        if op.key.len() != self.key_cols.len()
            || op.key.iter().zip(&self.key_cols).any(|((k, _), c)| k != c)
        {
            return Err(internal(format!(
                "ops on view {} use different keys ({:?} and {:?})",
                self.def.name,
                self.key_cols,
                op.key.iter().map(|(k, _)| *k).collect::<Vec<_>>()
            )));
        }
        Ok(op.key.iter().map(|(_, v)| KeyPart::from(v)).collect())
    }

    /// Step 1: remember the row an op touches.
    fn touch(&mut self, op: &ViewOp) -> Result<()> {
        let key = self.key_of(op)?;
        if !self.rows.contains_key(&key) {
            let mut vals = Vec::with_capacity(op.key.len());
            for ((k, v), &i) in op.key.iter().zip(&self.key_idx) {
                vals.push(coerce(v, self.def.columns[i].1, self.def.name, k)?);
            }
            self.rows.insert(
                key.clone(),
                Row {
                    key: vals,
                    values: None,
                    stored: false,
                    dirty: false,
                    created: None,
                },
            );
            self.order.push(key);
        }
        Ok(())
    }

    /// Step 2: read the touched rows that exist.
    async fn load<C: SqlConn>(&mut self, c: &mut C, location: &str) -> Result<()> {
        let cols: Vec<&str> = self.def.columns.iter().map(|(n, _)| *n).collect();
        let types: Vec<ColType> = self.def.columns.iter().map(|(_, t)| *t).collect();
        let per_key = self.key_cols.len();
        let cap = (PARAMS_PER_STATEMENT / per_key).max(1);
        let mut start = 0;
        while start < self.order.len() {
            let n = chunk_len(self.order.len() - start, cap);
            let keys = &self.order[start..start + n];
            start += n;
            let mut params = Vec::with_capacity(n * per_key);
            for k in keys {
                if let Some(row) = self.rows.get(k) {
                    params.extend(row.key.iter().cloned());
                }
            }
            let cond = if per_key == 1 {
                format!("{} IN ({})", self.key_cols[0], vec!["?"; n].join(", "))
            } else {
                let one = self
                    .key_cols
                    .iter()
                    .map(|k| format!("{k} = ?"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                vec![format!("({one})"); n].join(" OR ")
            };
            let sql = format!(
                "SELECT {} FROM {} WHERE {cond}",
                cols.join(", "),
                self.def.name
            );
            let found = c.query(&sql, &params, &types).await.map_err(|e| {
                JournalError::db(location, &format!("reading view {}", self.def.name), e)
            })?;
            for vals in found {
                let key: Vec<KeyPart> = self.key_idx.iter().map(|&i| (&vals[i]).into()).collect();
                if let Some(row) = self.rows.get_mut(&key) {
                    row.values = Some(vals);
                    row.stored = true;
                }
            }
        }
        Ok(())
    }

    /// Step 3: apply one op in memory.
    fn apply(&mut self, op: &ViewOp) -> Result<()> {
        let key = self.key_of(op)?;
        let def = self.def;
        let Some(row) = self.rows.get_mut(&key) else {
            return Err(internal(format!(
                "view {}: op on a row that was not prepared",
                def.name
            )));
        };
        // An upsert without columns is `ON CONFLICT DO NOTHING`.
        let mode = if op.mode == Mode::Upsert && op.cols.is_empty() {
            Mode::InsertIgnore
        } else {
            op.mode
        };
        match (&mut row.values, mode) {
            (None, Mode::Update) | (Some(_), Mode::InsertIgnore) => {}
            (None, _) => {
                // INSERT: the key, the given values (an `Add` or `Keep` inserts its value), NULL
                // elsewhere.
                let mut vals: Vec<Val> = def.columns.iter().map(|(_, t)| null_of(*t)).collect();
                for (k, &i) in row.key.iter().zip(&self.key_idx) {
                    vals[i] = k.clone();
                }
                for (col, a) in &op.cols {
                    let i = column_index(def, col)?;
                    let v = match a {
                        Assign::Set(v) | Assign::Add(v) | Assign::Keep(v) => v,
                        Assign::SetUnless(v, _) => v,
                    };
                    vals[i] = coerce(v, def.columns[i].1, def.name, col)?;
                }
                row.values = Some(vals);
                row.dirty = true;
                row.created = Some(self.created);
                self.created += 1;
            }
            (Some(vals), _) => {
                // UPDATE: each assignment reads only its own column's old value, so applying
                // them one after the other equals SQL's simultaneous assignment.
                for (col, a) in &op.cols {
                    let i = column_index(def, col)?;
                    let ty = def.columns[i].1;
                    let new = match a {
                        Assign::Set(v) => coerce(v, ty, def.name, col)?,
                        Assign::Add(v) => {
                            add(&vals[i], &coerce(v, ty, def.name, col)?, def.name, col)?
                        }
                        Assign::Keep(v) => {
                            if is_null(&vals[i]) {
                                coerce(v, ty, def.name, col)?
                            } else {
                                vals[i].clone()
                            }
                        }
                        Assign::SetUnless(v, sticky) => {
                            if vals[i].as_str() == Some(*sticky) {
                                vals[i].clone()
                            } else {
                                coerce(v, ty, def.name, col)?
                            }
                        }
                    };
                    vals[i] = new;
                }
                row.dirty = true;
            }
        }
        Ok(())
    }

    /// Step 4: write every changed row once.
    async fn flush<C: SqlConn>(&mut self, c: &mut C, location: &str) -> Result<()> {
        let mut existing: Vec<&Vec<Val>> = Vec::new();
        let mut created: Vec<(usize, &Vec<Val>)> = Vec::new();
        for k in &self.order {
            let Some(row) = self.rows.get(k) else {
                continue;
            };
            match (&row.values, row.dirty) {
                (Some(v), true) if row.stored => existing.push(v),
                (Some(v), true) => created.push((row.created.unwrap_or(usize::MAX), v)),
                _ => {}
            }
        }
        created.sort_by_key(|(n, _)| *n);
        let rows: Vec<&Vec<Val>> = existing
            .into_iter()
            .chain(created.into_iter().map(|(_, v)| v))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let def = self.def;
        let names: Vec<&str> = def.columns.iter().map(|(n, _)| *n).collect();
        let sets: Vec<String> = names
            .iter()
            .filter(|n| !self.key_cols.contains(n))
            .map(|n| format!("{n} = excluded.{n}"))
            .collect();
        let conflict = if sets.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", sets.join(", "))
        };
        let marks = format!("({})", vec!["?"; names.len()].join(", "));
        let cap = (PARAMS_PER_STATEMENT / names.len()).max(1);
        let mut start = 0;
        while start < rows.len() {
            let n = chunk_len(rows.len() - start, cap);
            let chunk = &rows[start..start + n];
            start += n;
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {conflict}",
                def.name,
                names.join(", "),
                vec![marks.as_str(); n].join(", "),
                self.key_cols.join(", ")
            );
            let params: Vec<Val> = chunk.iter().flat_map(|r| r.iter().cloned()).collect();
            c.exec(&sql, &params).await.map_err(|e| {
                JournalError::db(location, &format!("updating view {}", def.name), e)
            })?;
        }
        Ok(())
    }
}

/// Rows for the next statement: the largest power of two ≤ `remaining` and ≤ `cap`, so that only a
/// handful of distinct statement texts exist per table (and stay in the prepared-statement cache).
fn chunk_len(remaining: usize, cap: usize) -> usize {
    let limit = remaining.min(cap).max(1);
    1usize << (usize::BITS - 1 - limit.leading_zeros())
}

/// Project `records` (in log order) and write the resulting view changes, each touched row once.
pub(crate) async fn apply_projections<C: SqlConn>(
    c: &mut C,
    location: &str,
    records: &[EventRecord],
) -> Result<()> {
    let ops: Vec<ViewOp> = records.iter().flat_map(project).collect();
    if ops.is_empty() {
        return Ok(());
    }
    let mut tables: Vec<Option<TableRows>> = VIEW_TABLES.iter().map(|_| None).collect();
    let mut slots = Vec::with_capacity(ops.len());
    for op in &ops {
        let slot = VIEW_TABLES
            .iter()
            .position(|t| t.name == op.table)
            .ok_or_else(|| internal(format!("the projection writes unknown view {}", op.table)))?;
        let t = match &mut tables[slot] {
            Some(t) => t,
            empty => empty.insert(TableRows::new(&VIEW_TABLES[slot], op)?),
        };
        t.touch(op)?;
        slots.push(slot);
    }
    for t in tables.iter_mut().flatten() {
        t.load(c, location).await?;
    }
    for (op, slot) in ops.iter().zip(slots) {
        if let Some(t) = &mut tables[slot] {
            t.apply(op)?;
        }
    }
    for t in tables.iter_mut().flatten() {
        t.flush(c, location).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        assert_eq!(chunk_len(1, 48), 1);
        assert_eq!(chunk_len(7, 48), 4);
        assert_eq!(chunk_len(48, 48), 32);
        assert_eq!(chunk_len(1000, 48), 32);
        assert_eq!(chunk_len(5, 1), 1);
    }

    #[test]
    fn add_matches_sql() {
        assert_eq!(
            add(&Val::Int(None), &Val::int(2), "t", "c").unwrap(),
            Val::int(2)
        );
        assert_eq!(
            add(&Val::real(0.1), &Val::real(0.2), "t", "c").unwrap(),
            Val::real(0.1 + 0.2)
        );
        assert!(add(&Val::int(i64::MAX), &Val::int(1), "t", "c").is_err());
        assert!(add(&Val::int(1), &Val::real(1.0), "t", "c").is_err());
    }

    fn records() -> Vec<EventRecord> {
        use crate::event::{EVENT_SCHEMA_VERSION, NewEvent};
        use crate::fixtures::{loop_stream, one_of_each};
        let each = |run: &str| {
            one_of_each(run)
                .into_iter()
                .map(|e| NewEvent::new(run, 1, e))
                .collect::<Vec<_>>()
        };
        let mut evs = each("r1");
        evs.extend(loop_stream("r2", 3, 2500));
        // The same rows again: counters, `Keep`, permanent `falsified`, insert-or-ignore.
        evs.extend(each("r1"));
        evs.extend(loop_stream("r2", 4, 500));
        evs.into_iter()
            .enumerate()
            .map(|(i, ne)| EventRecord {
                schema_version: EVENT_SCHEMA_VERSION,
                seq: i as u64 + 1,
                id: uuid::Uuid::now_v7(),
                parent: None,
                timestamp: chrono::Utc::now(),
                run_id: ne.run_id,
                iteration: ne.iteration,
                artifacts: Vec::new(),
                idempotency_key: None,
                event: ne.event,
                checksum: String::new(),
            })
            .collect()
    }

    async fn fresh() -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        crate::schema::prepare(&mut c, crate::sql::Dialect::Sqlite, "mem")
            .await
            .unwrap();
        c
    }

    /// Everything a reader can see: the views, the search documents' rowids and the FTS index.
    async fn state(c: &mut sqlx::SqliteConnection) -> String {
        let mut s = crate::store::dump_views(c, "mem").await.unwrap();
        for sql in [
            "SELECT rowid, doc_id FROM search_docs ORDER BY rowid",
            "SELECT d.rowid, d.doc_id FROM search_fts CROSS JOIN search_docs d \
             ON d.rowid = search_fts.rowid WHERE search_fts MATCH 'coverage OR users OR lambda' \
             ORDER BY rank, d.rowid",
        ] {
            let rows = c
                .query(sql, &[], &[ColType::Int, ColType::Text])
                .await
                .unwrap();
            s.push_str(&format!("{rows:?}\n"));
        }
        c.exec(
            "INSERT INTO search_fts (search_fts) VALUES ('integrity-check')",
            &[],
        )
        .await
        .unwrap();
        s
    }

    #[tokio::test]
    async fn batched_equals_one_statement_per_op() {
        let recs = records();
        let mut one = fresh().await;
        for r in &recs {
            crate::store::apply_projection(&mut one, "mem", r)
                .await
                .unwrap();
        }
        let expected = state(&mut one).await;
        for sizes in [vec![1000_usize], vec![1, 2, 5, 17, 100, 333], vec![7]] {
            let mut batched = fresh().await;
            let (mut i, mut k) = (0, 0);
            while i < recs.len() {
                let n = sizes[k % sizes.len()].min(recs.len() - i);
                apply_projections(&mut batched, "mem", &recs[i..i + n])
                    .await
                    .unwrap();
                i += n;
                k += 1;
            }
            assert_eq!(state(&mut batched).await, expected, "batch sizes {sizes:?}");
        }
    }
}
