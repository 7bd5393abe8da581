//! The database schema: numbered migrations for both dialects, the `meta` table checks that
//! recognise foreign, corrupt and future databases, and the list of view tables.

use crate::error::{JournalError, Result};
use crate::sql::{ColType, Dialect, SqlConn, Val};

/// Newest schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 2;

/// Value of `meta.app` in every recloop journal.
pub(crate) const APP_NAME: &str = "recloop-journal";

/// One numbered migration, written for both dialects.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// All migrations, in order. Migration N brings a database from version N-1 to N.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_harness_evidence.sql"),
        postgres: include_str!("../migrations/postgres/0002_harness_evidence.sql"),
    },
];

/// A view table: name, key columns and every column with its type (in dump order).
pub(crate) struct TableDef {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub columns: &'static [(&'static str, ColType)],
}

use ColType::{Int, Real, Text};

/// Every table the projection writes. Rebuild empties exactly these and replays the log.
pub(crate) const VIEW_TABLES: &[TableDef] = &[
    TableDef {
        name: "v_runs",
        key: &["run_id"],
        columns: &[
            ("run_id", Text),
            ("started_seq", Int),
            ("seed", Text),
            ("production_commit", Text),
            ("config", Text),
            ("resumes", Int),
            ("outcome", Text),
            ("summary", Text),
            ("finished_seq", Int),
        ],
    },
    TableDef {
        name: "v_experiments",
        key: &["proposal_id"],
        columns: &[
            ("proposal_id", Text),
            ("run_id", Text),
            ("iteration", Int),
            ("title", Text),
            ("hypothesis", Text),
            ("mechanism", Text),
            ("target_metric", Text),
            ("direction", Text),
            ("kind", Text),
            ("maturity", Text),
            ("stage", Text),
            ("lever", Text),
            ("score", Real),
            ("status", Text),
            ("reason", Text),
            ("candidate_id", Text),
            ("worktree", Text),
            ("branch", Text),
            ("base_commit", Text),
            ("candidate_commit", Text),
            ("diff_hash", Text),
            ("q_code", Real),
            ("gates_passed", Int),
            ("gates_failed", Int),
            ("offline_metrics", Text),
            ("holdout_passed", Int),
            ("experiment_id", Text),
            ("platform", Text),
            ("max_traffic", Real),
            ("health_holds", Int),
            ("attention", Int),
            ("vetoed", Int),
            ("decision", Text),
            ("verdict", Text),
            ("verdict_reason", Text),
            ("merged_commit", Text),
            ("proposal", Text),
            ("proposal_seq", Int),
            ("candidate_seq", Int),
            ("verdict_seq", Int),
            ("updated_seq", Int),
        ],
    },
    TableDef {
        name: "v_leaderboard",
        key: &["seq"],
        columns: &[
            ("commit_id", Text),
            ("seq", Int),
            ("run_id", Text),
            ("iteration", Int),
            ("proposal_id", Text),
            ("candidate_id", Text),
            ("metrics", Text),
        ],
    },
    TableDef {
        name: "v_assets",
        key: &["asset_id"],
        columns: &[
            ("asset_id", Text),
            ("kind", Text),
            ("experiment_id", Text),
            ("title", Text),
            ("body", Text),
            ("stage", Text),
            ("objective", Text),
            ("segment", Text),
            ("lever", Text),
            ("run_id", Text),
            ("seq", Int),
        ],
    },
    TableDef {
        name: "v_lessons",
        key: &["lesson_id"],
        columns: &[
            ("lesson_id", Text),
            ("kind", Text),
            ("status", Text),
            ("text", Text),
            ("stage", Text),
            ("objective", Text),
            ("segment", Text),
            ("lever", Text),
            ("supporting_runs", Text),
            ("supporting_experiments", Text),
            ("falsification_failed", Int),
            ("reason", Text),
            ("created_seq", Int),
            ("updated_seq", Int),
        ],
    },
    TableDef {
        name: "v_trajectories",
        key: &["seq"],
        columns: &[
            ("seq", Int),
            ("run_id", Text),
            ("iteration", Int),
            ("proposal_id", Text),
            ("agent", Text),
            ("input", Text),
            ("output", Text),
            ("tool_calls", Text),
            ("tokens_in", Int),
            ("tokens_out", Int),
            ("cost_usd", Real),
            ("duration_ms", Int),
        ],
    },
    TableDef {
        name: "v_harness_versions",
        key: &["agent", "version"],
        columns: &[
            ("agent", Text),
            ("version", Int),
            ("parent_version", Int),
            ("admitted", Int),
            ("diagnosis", Text),
            ("spec", Text),
            ("run_id", Text),
            ("seq", Int),
            ("diff", Text),
            ("evidence", Text),
        ],
    },
    TableDef {
        name: "v_budget",
        key: &["run_id", "agent"],
        columns: &[
            ("run_id", Text),
            ("agent", Text),
            ("calls", Int),
            ("tokens_in", Int),
            ("tokens_out", Int),
            ("usd", Real),
            ("price_table_version", Text),
        ],
    },
    TableDef {
        name: "search_docs",
        key: &["doc_id"],
        columns: &[
            ("doc_id", Text),
            ("kind", Text),
            ("title", Text),
            ("body", Text),
            ("stage", Text),
            ("objective", Text),
            ("segment", Text),
            ("lever", Text),
            ("status", Text),
            ("run_id", Text),
            ("seq", Int),
        ],
    },
];

/// Tables present in the connected database (or schema), sorted.
pub(crate) async fn list_tables<C: SqlConn>(
    c: &mut C,
    dialect: Dialect,
    location: &str,
) -> Result<Vec<String>> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Dialect::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
    };
    let rows = c
        .query(sql, &[], &[ColType::Text])
        .await
        .map_err(|e| JournalError::db(location, "listing tables", e))?;
    Ok(rows.into_iter().map(|r| r[0].string()).collect())
}

/// Check the database is a recloop journal of a known version; create or migrate it when needed.
/// Must run inside the write transaction so two processes never initialise at once.
pub(crate) async fn prepare<C: SqlConn>(c: &mut C, dialect: Dialect, location: &str) -> Result<()> {
    let tables = list_tables(c, dialect, location).await?;
    let current = if tables.is_empty() {
        0
    } else if !tables.iter().any(|t| t == "meta") {
        let shown: Vec<&str> = tables.iter().take(8).map(String::as_str).collect();
        return Err(JournalError::Foreign {
            location: location.to_string(),
            detail: format!(
                "it has no `meta` table (found tables: {}{})",
                shown.join(", "),
                if tables.len() > 8 { ", ..." } else { "" }
            ),
        });
    } else {
        read_version(c, location).await?
    };
    if current > SCHEMA_VERSION {
        return Err(JournalError::FutureSchema {
            location: location.to_string(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        c.script(sql).await.map_err(|e| {
            JournalError::db(location, &format!("applying migration {:04}", m.version), e)
        })?;
        if m.version == 1 {
            for (k, v) in [
                ("app", APP_NAME.to_string()),
                ("created_at", chrono::Utc::now().to_rfc3339()),
                (
                    "created_by",
                    format!("recloop-journal {}", env!("CARGO_PKG_VERSION")),
                ),
            ] {
                c.exec(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    &[Val::text(k), Val::text(v)],
                )
                .await
                .map_err(|e| JournalError::db(location, "writing meta", e))?;
            }
        }
        c.exec(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[Val::text(m.version.to_string())],
        )
        .await
        .map_err(|e| JournalError::db(location, "writing meta", e))?;
    }
    Ok(())
}

async fn read_version<C: SqlConn>(c: &mut C, location: &str) -> Result<i64> {
    let rows = c
        .query(
            "SELECT key, value FROM meta WHERE key IN ('app', 'schema_version')",
            &[],
            &[ColType::Text, ColType::Text],
        )
        .await
        .map_err(|e| JournalError::Foreign {
            location: location.to_string(),
            detail: format!("its `meta` table is not recloop's ({e})"),
        })?;
    let get = |k: &str| {
        rows.iter()
            .find(|r| r[0].as_str() == Some(k))
            .map(|r| r[1].string())
    };
    match get("app") {
        Some(app) if app == APP_NAME => {}
        other => {
            return Err(JournalError::Foreign {
                location: location.to_string(),
                detail: format!(
                    "meta.app is {}, expected `{APP_NAME}`",
                    other
                        .map(|a| format!("`{a}`"))
                        .unwrap_or_else(|| "missing".into())
                ),
            });
        }
    }
    let v = get("schema_version").ok_or_else(|| JournalError::Corrupt {
        location: location.to_string(),
        detail: "meta has no schema_version".into(),
    })?;
    v.trim().parse::<i64>().map_err(|_| JournalError::Corrupt {
        location: location.to_string(),
        detail: format!("meta.schema_version `{v}` is not a number"),
    })
}
