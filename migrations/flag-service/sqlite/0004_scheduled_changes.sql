-- Changes to a flag's environment rules to apply at a time chosen in a named time zone.
-- `status` is pending, applied, cancelled or failed; applying marks the row in the same
-- transaction that writes the flag, so only one replica applies it.
CREATE TABLE scheduled_changes (
    tenant          TEXT   NOT NULL,
    id              TEXT   NOT NULL,
    project         TEXT   NOT NULL,
    flag_key        TEXT   NOT NULL,
    due_ms          BIGINT NOT NULL,
    time_zone       TEXT   NOT NULL,
    local_time      TEXT   NOT NULL,
    environments    TEXT   NOT NULL,
    author          TEXT   NOT NULL,
    message         TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    applied_ms      BIGINT,
    applied_version BIGINT,
    failure         TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX scheduled_changes_due ON scheduled_changes (status, due_ms);
CREATE INDEX scheduled_changes_by_flag ON scheduled_changes (tenant, project, flag_key);
