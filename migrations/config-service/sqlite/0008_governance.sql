-- Governance: freeze windows per project (optionally some environments), every use of
-- break-glass that went through one (or past an approval policy), approval policies and
-- change requests.

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
    -- 1 when it also went past the environment's approval policy.
    approval_bypassed BIGINT NOT NULL DEFAULT 0,
    created_ms  BIGINT NOT NULL
);

CREATE INDEX break_glass_by_project ON break_glass_uses (tenant, project, created_ms);

-- An environment with a policy is protected: its changes go through change requests.
CREATE TABLE approval_policies (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    definition  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    updated_by  TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment)
);

CREATE TABLE change_requests (
    tenant         TEXT   NOT NULL,
    project        TEXT   NOT NULL,
    environment    TEXT   NOT NULL,
    number         BIGINT NOT NULL,
    config         TEXT   NOT NULL,
    -- What applying it does, as JSON.
    operation      TEXT   NOT NULL,
    title          TEXT   NOT NULL,
    description    TEXT   NOT NULL,
    author         TEXT   NOT NULL,
    base_release   BIGINT NOT NULL,
    state          TEXT   NOT NULL,
    -- JSON array of {approver, comment, decided_ms}.
    approvals      TEXT   NOT NULL,
    rejected_by    TEXT   NOT NULL,
    rejection      TEXT   NOT NULL,
    scheduled_ms   BIGINT NOT NULL,
    schedule_zone  TEXT   NOT NULL,
    scheduled_by   TEXT   NOT NULL,
    outcome        TEXT   NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    revision       BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, number)
);

-- What the scheduler scans for.
CREATE INDEX change_requests_due ON change_requests (scheduled_ms) WHERE state = 'SCHEDULED';
