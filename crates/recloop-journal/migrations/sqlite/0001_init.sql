-- recloop journal, schema version 1 (SQLite). Keep in step with ../postgres/0001_init.sql:
-- same tables, same columns, same meaning.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The append-only log. `seq` is gap-free (assigned under the write lock).
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    parent         TEXT,
    ts             TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    iteration      INTEGER NOT NULL,
    type           TEXT NOT NULL,
    proposal_id    TEXT,
    idem_key       TEXT UNIQUE,
    schema_version INTEGER NOT NULL,
    artifacts      TEXT NOT NULL,
    body           TEXT NOT NULL,
    checksum       TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id, seq);
CREATE INDEX events_proposal ON events (proposal_id, seq);
CREATE INDEX events_type ON events (type, seq);

-- Views: derived from events by the projection (src/projection.rs); dropped and rebuilt at will.
CREATE TABLE v_runs (
    run_id            TEXT PRIMARY KEY,
    started_seq       INTEGER,
    seed              TEXT,
    production_commit TEXT,
    config            TEXT,
    resumes           INTEGER,
    outcome           TEXT,
    summary           TEXT,
    finished_seq      INTEGER
);

CREATE TABLE v_experiments (
    proposal_id    TEXT PRIMARY KEY,
    run_id         TEXT,
    iteration      INTEGER,
    title          TEXT,
    hypothesis     TEXT,
    mechanism      TEXT,
    target_metric  TEXT,
    direction      TEXT,
    kind           TEXT,
    maturity       TEXT,
    stage          TEXT,
    lever          TEXT,
    score          REAL,
    status         TEXT,
    reason         TEXT,
    candidate_id   TEXT,
    worktree       TEXT,
    branch         TEXT,
    base_commit    TEXT,
    candidate_commit TEXT,
    diff_hash      TEXT,
    q_code         REAL,
    gates_passed   INTEGER,
    gates_failed   INTEGER,
    offline_metrics TEXT,
    holdout_passed INTEGER,
    experiment_id  TEXT,
    platform       TEXT,
    max_traffic    REAL,
    health_holds   INTEGER,
    attention      INTEGER,
    vetoed         INTEGER,
    decision       TEXT,
    verdict        TEXT,
    verdict_reason TEXT,
    merged_commit  TEXT,
    proposal       TEXT,
    proposal_seq   INTEGER,
    candidate_seq  INTEGER,
    verdict_seq    INTEGER,
    updated_seq    INTEGER
);
CREATE INDEX v_experiments_lever ON v_experiments (lever);

CREATE TABLE v_leaderboard (
    commit_id    TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,
    run_id       TEXT,
    iteration    INTEGER,
    proposal_id  TEXT,
    candidate_id TEXT,
    metrics      TEXT
);

CREATE TABLE v_assets (
    asset_id      TEXT PRIMARY KEY,
    kind          TEXT,
    experiment_id TEXT,
    title         TEXT,
    body          TEXT,
    stage         TEXT,
    objective     TEXT,
    segment       TEXT,
    lever         TEXT,
    run_id        TEXT,
    seq           INTEGER
);

CREATE TABLE v_lessons (
    lesson_id              TEXT PRIMARY KEY,
    kind                   TEXT,
    status                 TEXT,
    text                   TEXT,
    stage                  TEXT,
    objective              TEXT,
    segment                TEXT,
    lever                  TEXT,
    supporting_runs        TEXT,
    supporting_experiments TEXT,
    falsification_failed   INTEGER,
    reason                 TEXT,
    created_seq            INTEGER,
    updated_seq            INTEGER
);

CREATE TABLE v_trajectories (
    seq          INTEGER PRIMARY KEY,
    run_id       TEXT,
    iteration    INTEGER,
    proposal_id  TEXT,
    agent        TEXT,
    input        TEXT,
    output       TEXT,
    tool_calls   TEXT,
    tokens_in    INTEGER,
    tokens_out   INTEGER,
    cost_usd     REAL,
    duration_ms  INTEGER
);

CREATE TABLE v_harness_versions (
    agent          TEXT NOT NULL,
    version        INTEGER NOT NULL,
    parent_version INTEGER,
    admitted       INTEGER,
    diagnosis      TEXT,
    spec           TEXT,
    run_id         TEXT,
    seq            INTEGER,
    PRIMARY KEY (agent, version)
);

CREATE TABLE v_budget (
    run_id              TEXT NOT NULL,
    agent               TEXT NOT NULL,
    calls               INTEGER,
    tokens_in           INTEGER,
    tokens_out          INTEGER,
    usd                 REAL,
    price_table_version TEXT,
    PRIMARY KEY (run_id, agent)
);

-- Full-text search documents: hypotheses, diagnoses (failure assets, harness diagnoses) and
-- lessons, with their index fields.
CREATE TABLE search_docs (
    doc_id    TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    title     TEXT,
    body      TEXT,
    stage     TEXT,
    objective TEXT,
    segment   TEXT,
    lever     TEXT,
    status    TEXT,
    run_id    TEXT,
    seq       INTEGER
);
CREATE INDEX search_docs_kind ON search_docs (kind, stage);

CREATE VIRTUAL TABLE search_fts USING fts5(
    title, body, content='search_docs', content_rowid='rowid', tokenize='porter unicode61'
);
CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER search_docs_au AFTER UPDATE ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO search_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
