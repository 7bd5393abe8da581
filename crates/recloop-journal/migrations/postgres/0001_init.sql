-- recloop journal, schema version 1 (PostgreSQL). Keep in step with ../sqlite/0001_init.sql:
-- same tables, same columns, same meaning.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The append-only log. `seq` is gap-free (assigned under the write lock).
CREATE TABLE events (
    seq            BIGINT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    parent         TEXT,
    ts             TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    iteration      BIGINT NOT NULL,
    type           TEXT NOT NULL,
    proposal_id    TEXT,
    idem_key       TEXT UNIQUE,
    schema_version BIGINT NOT NULL,
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
    started_seq       BIGINT,
    seed              TEXT,
    production_commit TEXT,
    config            TEXT,
    resumes           BIGINT,
    outcome           TEXT,
    summary           TEXT,
    finished_seq      BIGINT
);

CREATE TABLE v_experiments (
    proposal_id    TEXT PRIMARY KEY,
    run_id         TEXT,
    iteration      BIGINT,
    title          TEXT,
    hypothesis     TEXT,
    mechanism      TEXT,
    target_metric  TEXT,
    direction      TEXT,
    kind           TEXT,
    maturity       TEXT,
    stage          TEXT,
    lever          TEXT,
    score          DOUBLE PRECISION,
    status         TEXT,
    reason         TEXT,
    candidate_id   TEXT,
    worktree       TEXT,
    branch         TEXT,
    base_commit    TEXT,
    candidate_commit TEXT,
    diff_hash      TEXT,
    q_code         DOUBLE PRECISION,
    gates_passed   BIGINT,
    gates_failed   BIGINT,
    offline_metrics TEXT,
    holdout_passed BIGINT,
    experiment_id  TEXT,
    platform       TEXT,
    max_traffic    DOUBLE PRECISION,
    health_holds   BIGINT,
    attention      BIGINT,
    vetoed         BIGINT,
    decision       TEXT,
    verdict        TEXT,
    verdict_reason TEXT,
    merged_commit  TEXT,
    proposal       TEXT,
    proposal_seq   BIGINT,
    candidate_seq  BIGINT,
    verdict_seq    BIGINT,
    updated_seq    BIGINT
);
CREATE INDEX v_experiments_lever ON v_experiments (lever);

CREATE TABLE v_leaderboard (
    commit_id    TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    run_id       TEXT,
    iteration    BIGINT,
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
    seq           BIGINT
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
    falsification_failed   BIGINT,
    reason                 TEXT,
    created_seq            BIGINT,
    updated_seq            BIGINT
);

CREATE TABLE v_trajectories (
    seq          BIGINT PRIMARY KEY,
    run_id       TEXT,
    iteration    BIGINT,
    proposal_id  TEXT,
    agent        TEXT,
    input        TEXT,
    output       TEXT,
    tool_calls   TEXT,
    tokens_in    BIGINT,
    tokens_out   BIGINT,
    cost_usd     DOUBLE PRECISION,
    duration_ms  BIGINT
);

CREATE TABLE v_harness_versions (
    agent          TEXT NOT NULL,
    version        BIGINT NOT NULL,
    parent_version BIGINT,
    admitted       BIGINT,
    diagnosis      TEXT,
    spec           TEXT,
    run_id         TEXT,
    seq            BIGINT,
    PRIMARY KEY (agent, version)
);

CREATE TABLE v_budget (
    run_id              TEXT NOT NULL,
    agent               TEXT NOT NULL,
    calls               BIGINT,
    tokens_in           BIGINT,
    tokens_out          BIGINT,
    usd                 DOUBLE PRECISION,
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
    seq       BIGINT
);
CREATE INDEX search_docs_kind ON search_docs (kind, stage);

ALTER TABLE search_docs ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(title, '')), 'A')
    || setweight(to_tsvector('english', coalesce(body, '')), 'B')
) STORED;
CREATE INDEX search_docs_tsv ON search_docs USING GIN (tsv);

-- Artifacts live in the database for PostgreSQL (SQLite keeps them as files beside the journal).
CREATE TABLE artifacts (
    hash    TEXT PRIMARY KEY,
    size    BIGINT NOT NULL,
    content BYTEA NOT NULL
);
