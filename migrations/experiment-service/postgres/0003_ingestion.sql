-- Ingestion: exposures and metric events as they arrive, deduplicated by their ids, and each
-- experiment's units per phase with the arm they saw first.

-- Every id accepted, per tenant and kind (`exposure`, `event`): a replay finds its id here
-- and counts once. Ids are kept at least as long as `dedup_window_hours`.
CREATE TABLE ingested_ids (
    tenant      TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, event_id)
);
CREATE INDEX ingested_ids_by_age ON ingested_ids (received_ms);

-- Raw exposures, kept for re-analysis.
CREATE TABLE exposures (
    tenant         TEXT   NOT NULL,
    project        TEXT   NOT NULL,
    experiment_key TEXT   NOT NULL,
    phase          INTEGER NOT NULL,
    unit           TEXT   NOT NULL,
    variant        TEXT   NOT NULL,
    environment    TEXT   NOT NULL,
    exposed_ms     BIGINT NOT NULL,
    attributes     TEXT   NOT NULL,
    event_id       TEXT   NOT NULL
);
CREATE INDEX exposures_by_unit ON exposures (tenant, project, experiment_key, phase, unit);

-- Each unit of an experiment's phase: the arm it saw first, when, its attributes then, and
-- whether it has also seen another arm (`multiple` = 1: left out of the analysis).
CREATE TABLE experiment_units (
    tenant           TEXT    NOT NULL,
    project          TEXT    NOT NULL,
    experiment_key   TEXT    NOT NULL,
    phase            INTEGER NOT NULL,
    unit             TEXT    NOT NULL,
    variant          TEXT    NOT NULL,
    first_exposed_ms BIGINT  NOT NULL,
    multiple         INTEGER NOT NULL,
    attributes       TEXT    NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key, phase, unit)
);

-- Raw metric events, kept for re-analysis after a metric changes; one partition per day
-- (days since the Unix epoch), created as events for that day arrive, so old days can be
-- detached or dropped whole.
CREATE TABLE metric_events (
    tenant      TEXT             NOT NULL,
    project     TEXT             NOT NULL,
    event_name  TEXT             NOT NULL,
    unit        TEXT             NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    occurred_ms BIGINT           NOT NULL,
    day         INTEGER          NOT NULL,
    environment TEXT             NOT NULL,
    event_id    TEXT             NOT NULL
) PARTITION BY RANGE (day);
CREATE INDEX metric_events_by_unit ON metric_events (tenant, project, unit, event_name, occurred_ms);
