//! What several CLI test binaries share.
#![allow(dead_code)]

/// The PostgreSQL server of the tests (`RECLOOP_TEST_POSTGRES_URL`), or `None` after a message
/// when it is unset; under `CI` an unset URL fails the test instead of skipping it.
pub fn pg_url() -> Option<String> {
    match std::env::var("RECLOOP_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI requires RECLOOP_TEST_POSTGRES_URL (source .ci/postgres.sh && start_postgres)"
            );
            eprintln!("SKIPPED: this test needs PostgreSQL; set RECLOOP_TEST_POSTGRES_URL");
            None
        }
    }
}

/// A schema name no other test run uses: `prefix`, the process id and the clock's nanoseconds.
pub fn fresh_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}
