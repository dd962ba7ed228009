-- Projects, environments, configuration drafts, immutable releases, the per-environment
-- change log that Watch replays, client tracking, data keys for secrets, and the audit
-- trail as a per-tenant hash chain. Times are Unix milliseconds; JSON is stored as text so
-- that the same repository code runs on PostgreSQL and SQLite.

-- The audit table of the foundation had no chain; nothing was written to it yet.
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

CREATE TABLE projects (
    tenant       TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    display_name TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- `revision` counts every change inside the environment; Watch clients resume from it.
CREATE TABLE environments (
    tenant    TEXT   NOT NULL,
    project   TEXT   NOT NULL,
    id        TEXT   NOT NULL,
    position  BIGINT NOT NULL,
    variables TEXT   NOT NULL,
    revision  BIGINT NOT NULL,
    -- Changes at or below this revision may have been pruned from `changes`.
    compacted BIGINT NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, id)
);

-- The editable draft. `content` and `overlays` are sealed when the config holds secrets;
-- `search_text` is the lower-cased, redacted text that content search reads.
CREATE TABLE configs (
    tenant       TEXT   NOT NULL,
    project      TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    format       TEXT   NOT NULL,
    content      TEXT   NOT NULL,
    overlays     TEXT   NOT NULL,
    extends      TEXT   NOT NULL,
    schema_text  TEXT   NOT NULL,
    rules        TEXT   NOT NULL,
    labels       TEXT   NOT NULL,
    secret_paths TEXT   NOT NULL,
    search_text  TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    updated_by   TEXT   NOT NULL,
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, id)
);

-- Immutable releases: what was published, by whom, and the resolved document at the time.
CREATE TABLE releases (
    tenant       TEXT   NOT NULL,
    project      TEXT   NOT NULL,
    environment  TEXT   NOT NULL,
    config       TEXT   NOT NULL,
    number       BIGINT NOT NULL,
    author       TEXT   NOT NULL,
    message      TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    format       TEXT   NOT NULL,
    content      TEXT   NOT NULL,
    overlay      TEXT   NOT NULL,
    extends      TEXT   NOT NULL,
    resolved     TEXT   NOT NULL,
    content_hash TEXT   NOT NULL,
    secret_paths TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    revision     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, config, number)
);

-- The change log of each environment, one row per revision, carrying the resolved document
-- as of that revision. Old rows are pruned; a watcher behind the oldest row gets a snapshot.
CREATE TABLE changes (
    tenant       TEXT   NOT NULL,
    project      TEXT   NOT NULL,
    environment  TEXT   NOT NULL,
    revision     BIGINT NOT NULL,
    config       TEXT   NOT NULL,
    release      BIGINT NOT NULL,
    format       TEXT   NOT NULL,
    resolved     TEXT   NOT NULL,
    content_hash TEXT   NOT NULL,
    secret_paths TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, revision)
);

-- What each environment serves now: the latest change of every config.
CREATE TABLE published (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    revision    BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, config)
);

-- Who fetched what: "which instances still run the old release".
CREATE TABLE config_clients (
    tenant        TEXT   NOT NULL,
    project       TEXT   NOT NULL,
    environment   TEXT   NOT NULL,
    config        TEXT   NOT NULL,
    service       TEXT   NOT NULL,
    instance      TEXT   NOT NULL,
    release       BIGINT NOT NULL,
    etag          TEXT   NOT NULL,
    last_fetch_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, config, service, instance)
);

CREATE TABLE config_fetch_counts (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    fetches     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, config)
);

-- Data keys wrapped by a key-encryption key from settings; rotation re-wraps them in place.
CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    kek_id     TEXT   NOT NULL,
    ciphertext TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX data_keys_by_tenant ON data_keys (tenant, created_ms);
