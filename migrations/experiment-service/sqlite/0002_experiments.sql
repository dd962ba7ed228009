-- Metrics and experiments per project, each experiment's version history, and the audit
-- trail as a per-tenant hash chain. Definitions are JSON text and times Unix milliseconds, so
-- that the same repository code runs on PostgreSQL and SQLite.

-- The foundation's audit table had no chain; nothing was written to it yet.
DROP TABLE audit_log;

CREATE TABLE audit_log (
    tenant        TEXT   NOT NULL,
    sequence      BIGINT NOT NULL,
    actor         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    resource      TEXT   NOT NULL,
    before_digest TEXT,
    after_digest  TEXT,
    request_id    TEXT,
    created_ms    BIGINT NOT NULL,
    previous_hash TEXT   NOT NULL,
    hash          TEXT   NOT NULL,
    PRIMARY KEY (tenant, sequence)
);
CREATE INDEX audit_log_by_resource ON audit_log (tenant, resource);
CREATE INDEX audit_log_by_actor ON audit_log (tenant, actor, created_ms);

-- The latest link of each tenant's chain; updating it serialises appends.
CREATE TABLE audit_heads (
    tenant   TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL,
    hash     TEXT   NOT NULL
);

-- A metric: how a unit's events become one value (binomial, mean or ratio), its window,
-- capping, direction and CUPED lookback, as JSON. `version` is its etag.
CREATE TABLE metrics (
    tenant     TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    metric_key TEXT   NOT NULL,
    definition TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, metric_key)
);

-- An experiment: its spec and lifecycle (state, phases, decision) as JSON; `state` repeats
-- the lifecycle's state for listing by state. `version` is its etag.
CREATE TABLE experiments (
    tenant         TEXT   NOT NULL,
    project        TEXT   NOT NULL,
    experiment_key TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    definition     TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key)
);
CREATE INDEX experiments_by_state ON experiments (tenant, project, state, experiment_key);

-- Every version an experiment has had: what changed it (create, update, start, stop,
-- archive), who, why, and the definition after the change.
CREATE TABLE experiment_versions (
    tenant         TEXT   NOT NULL,
    project        TEXT   NOT NULL,
    experiment_key TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    action         TEXT   NOT NULL,
    author         TEXT   NOT NULL,
    message        TEXT   NOT NULL,
    definition     TEXT   NOT NULL,
    created_ms     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key, version)
);
