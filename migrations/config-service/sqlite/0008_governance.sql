-- Governance: freeze windows per project (optionally some environments), and every use of
-- break-glass that went through one, for the report.

CREATE TABLE freeze_windows (
    tenant     TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    -- The window as JSON (title, environments, zone, schedule, during).
    definition TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    updated_by TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, id)
);

CREATE TABLE break_glass_uses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    resource    TEXT   NOT NULL,
    -- The windows it overrode, as a JSON array of ids.
    windows     TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE INDEX break_glass_by_project ON break_glass_uses (tenant, project, created_ms);
