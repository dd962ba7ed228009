-- Flags and segments per project, their version history, per-project revisions that replicas
-- follow, and the audit trail as a per-tenant hash chain. Definitions are JSON text and times
-- Unix milliseconds, so that the same repository code runs on PostgreSQL and SQLite.

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

-- A flag: variants, per-environment state/default/targeting, description, owner, tags and
-- lifecycle, as JSON. `version` grows with every change and is the flag's etag.
CREATE TABLE flags (
    tenant     TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    flag_key   TEXT   NOT NULL,
    definition TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, flag_key)
);

-- Every version a flag has had, for history, diffs and rollback.
CREATE TABLE flag_versions (
    tenant     TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    flag_key   TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT   NOT NULL,
    author     TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, flag_key, version)
);

-- Reusable targeting conditions, served to flags as flagd `$evaluators`.
CREATE TABLE segments (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    segment_key TEXT   NOT NULL,
    definition  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, segment_key)
);

-- Bumped in the same transaction as any change to a project's flags or segments; replicas
-- reload the projects whose revision moved.
CREATE TABLE flag_projects (
    tenant   TEXT   NOT NULL,
    project  TEXT   NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (tenant, project)
);
