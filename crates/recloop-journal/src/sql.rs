//! The thin SQL layer both backends share: typed values, dialects and a connection trait.
//!
//! All statements in this crate are written once with `?` placeholders; the PostgreSQL connection
//! rewrites them to `$1, $2, …`. Values are typed even when NULL, because PostgreSQL needs the type
//! of every parameter.

use sqlx::{AssertSqlSafe, Row};
use std::future::Future;

/// A typed SQL value (NULL carries its type).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// 64-bit integer (`BIGINT` / `INTEGER`).
    Int(Option<i64>),
    /// Double (`DOUBLE PRECISION` / `REAL`).
    Real(Option<f64>),
    /// Text.
    Text(Option<String>),
}

impl Val {
    /// A non-null text value.
    pub fn text(s: impl Into<String>) -> Val {
        Val::Text(Some(s.into()))
    }

    /// A text value that is NULL when empty.
    pub fn text_or_null(s: &str) -> Val {
        if s.is_empty() {
            Val::Text(None)
        } else {
            Val::Text(Some(s.to_string()))
        }
    }

    /// A non-null integer.
    pub fn int(i: i64) -> Val {
        Val::Int(Some(i))
    }

    /// A non-null double.
    pub fn real(f: f64) -> Val {
        Val::Real(Some(f))
    }

    /// The integer, if this is a non-null integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(v) => *v,
            _ => None,
        }
    }

    /// The double, if this is a non-null double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Real(v) => *v,
            _ => None,
        }
    }

    /// The text, if this is non-null text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(v) => v.as_deref(),
            _ => None,
        }
    }

    /// Text or empty string.
    pub fn string(&self) -> String {
        self.as_str().unwrap_or_default().to_string()
    }
}

/// The type of a result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// 64-bit integer.
    Int,
    /// Double.
    Real,
    /// Text.
    Text,
}

/// Which SQL dialect a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (bundled, FTS5).
    Sqlite,
    /// PostgreSQL (tsvector + GIN).
    Postgres,
}

/// A database connection (or transaction) the shared logic can drive.
pub(crate) trait SqlConn: Send {
    /// Run one statement; returns affected rows.
    fn exec(
        &mut self,
        sql: &str,
        params: &[Val],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Run a query and decode every row by `types`.
    fn query(
        &mut self,
        sql: &str,
        params: &[Val],
        types: &[ColType],
    ) -> impl Future<Output = Result<Vec<Vec<Val>>, sqlx::Error>> + Send;

    /// Run several statements without parameters (migrations).
    fn script(&mut self, sql: &str) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// Rewrite `?` placeholders to `$1, $2, …` (our statements never contain `?` in literals).
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Val::Int(v) => q.bind(*v),
                Val::Real(v) => q.bind(*v),
                Val::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

macro_rules! decode_row {
    ($row:expr, $types:expr) => {{
        let row = $row;
        let mut out = Vec::with_capacity($types.len());
        for (i, t) in $types.iter().enumerate() {
            out.push(match t {
                ColType::Int => Val::Int(row.try_get::<Option<i64>, _>(i)?),
                ColType::Real => Val::Real(row.try_get::<Option<f64>, _>(i)?),
                ColType::Text => Val::Text(row.try_get::<Option<String>, _>(i)?),
            });
        }
        out
    }};
}

impl SqlConn for sqlx::SqliteConnection {
    async fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, sqlx::Error> {
        let q = bind_all!(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(q.execute(&mut *self).await?.rows_affected())
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[Val],
        types: &[ColType],
    ) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        let q = bind_all!(sqlx::query(AssertSqlSafe(sql)), params);
        let rows = q.fetch_all(&mut *self).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(decode_row!(row, types));
        }
        Ok(out)
    }

    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

impl SqlConn for sqlx::PgConnection {
    async fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, sqlx::Error> {
        let sql = numbered_placeholders(sql);
        let q = bind_all!(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(q.execute(&mut *self).await?.rows_affected())
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[Val],
        types: &[ColType],
    ) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        let sql = numbered_placeholders(sql);
        let q = bind_all!(sqlx::query(AssertSqlSafe(sql)), params);
        let rows = q.fetch_all(&mut *self).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(decode_row!(row, types));
        }
        Ok(out)
    }

    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
    }
}
