//! The journal test suite, run once per backend (SQLite always; PostgreSQL when
//! `RECLOOP_TEST_POSTGRES_URL` is set, and required when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod corrupt;
mod crash;
mod suite;

use common::{Kind, TestDb};

macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let db = TestDb::new(Kind::Sqlite).unwrap();
                    suite::$name(&db);
                }
            )*
            #[test]
            fn export_import_reproduces_views() {
                let (a, b) = (TestDb::new(Kind::Sqlite).unwrap(), TestDb::new(Kind::Sqlite).unwrap());
                suite::export_import_reproduces_views(&a, &b);
            }
            #[test]
            fn crash_kill_and_recover() {
                crash::kill_and_recover(&TestDb::new(Kind::Sqlite).unwrap());
            }
            #[test]
            fn text_file_is_not_a_journal() {
                corrupt::text_file_is_not_a_journal();
            }
            #[test]
            fn garbage_after_header_is_corrupt() {
                corrupt::garbage_after_header_is_corrupt();
            }
            #[test]
            fn truncated_journal_is_corrupt() {
                corrupt::truncated_journal_is_corrupt();
            }
            #[test]
            fn damaged_pages_are_found_by_verify() {
                corrupt::damaged_pages_are_found_by_verify();
            }
            #[test]
            fn directory_instead_of_file() {
                corrupt::directory_instead_of_file();
            }
        }
        mod postgres {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some(db) = TestDb::new(Kind::Postgres) else { return };
                    suite::$name(&db);
                }
            )*
            #[test]
            fn export_import_reproduces_views() {
                let Some(a) = TestDb::new(Kind::Postgres) else { return };
                let b = TestDb::new(Kind::Postgres).unwrap();
                suite::export_import_reproduces_views(&a, &b);
            }
            #[test]
            fn crash_kill_and_recover() {
                let Some(db) = TestDb::new(Kind::Postgres) else { return };
                crash::kill_and_recover(&db);
            }
            #[test]
            fn logs_in_postgres() {
                let Some(db) = TestDb::new(Kind::Postgres) else { return };
                suite::logs_in_postgres(&db);
            }
            /// Same logical schema: a SQLite journal exported and imported into PostgreSQL (and
            /// back) gives identical views.
            #[test]
            fn sqlite_and_postgres_views_are_identical() {
                let Some(pg) = TestDb::new(Kind::Postgres) else { return };
                let lite = TestDb::new(Kind::Sqlite).unwrap();
                suite::export_import_reproduces_views(&lite, &pg);
            }
        }
    };
}

for_each_backend!(
    append_and_read_back,
    idempotency_keys_do_not_duplicate,
    batches_are_atomic,
    views_follow_the_events,
    rebuild_reproduces_views,
    search_filters_by_index_fields,
    similar_and_best_first,
    import_rejects_tampering,
    future_and_foreign_databases_are_refused,
    future_events_and_exports_are_refused,
    tampered_rows_fail_verification,
    concurrent_writers_stay_gap_free,
    works_inside_a_tokio_runtime,
    artifacts_are_content_addressed,
    read_only_queries,
);

/// The writer process of the crash test (runs only when re-invoked by it).
#[test]
#[ignore = "helper process of crash_kill_and_recover; not a test by itself"]
fn crash_writer_child() {
    if std::env::var_os(crash::CHILD_ENV).is_some() {
        crash::child_main();
    }
}
