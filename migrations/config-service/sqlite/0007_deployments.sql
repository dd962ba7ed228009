-- Progressive delivery: reusable strategies, deployments that move a config release or a
-- flag version to a growing share of clients, their event logs, and what clients report
-- about the versions they run.

CREATE TABLE strategies (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    -- The strategy as JSON (growth, duration, bake).
    definition  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    updated_by  TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, id)
);

-- One row per deployment. `revision` is bumped by every transition and checked by the next
-- (optimistic concurrency); the lease says which replica drives the schedule, and every
-- transition the driver writes also checks that it still holds the lease.
CREATE TABLE deployments (
    tenant          TEXT   NOT NULL,
    project         TEXT   NOT NULL,
    environment     TEXT   NOT NULL,
    number          BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    target          TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    previous        BIGINT NOT NULL,
    strategy        TEXT   NOT NULL,
    gates           TEXT   NOT NULL,
    seed            TEXT   NOT NULL,
    state           TEXT   NOT NULL,
    step            BIGINT NOT NULL,
    share           BIGINT NOT NULL,
    step_started_ms BIGINT NOT NULL,
    due_ms          BIGINT,
    paused_left_ms  BIGINT,
    reason          TEXT   NOT NULL,
    tallies         TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    created_by      TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    ended_ms        BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    -- Asked before the first step; may refuse the deployment.
    pre_start_webhook TEXT NOT NULL,
    -- Told of every event (JSON array of URLs), as is the channel $deployments:{project}.
    webhooks        TEXT   NOT NULL,
    -- 1 when it was created by breaking the glass: freeze windows do not hold it.
    break_glass     BIGINT NOT NULL DEFAULT 0,
    -- The last event written, and the last one announced: the driver announces the events in
    -- between (at least once, in order) and then moves `notified_sequence` on.
    event_sequence    BIGINT NOT NULL DEFAULT 0,
    notified_sequence BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT   NOT NULL DEFAULT '',
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, project, environment, number)
);

-- At most one active deployment per target and environment; later ones wait as QUEUED.
CREATE UNIQUE INDEX deployments_one_active ON deployments (tenant, project, environment, kind, target)
    WHERE state IN ('VALIDATING', 'DEPLOYING', 'PAUSED', 'BAKING', 'ROLLING_BACK');

-- What the drivers scan for: deployments that still need driving or announcing.
CREATE INDEX deployments_driven ON deployments (lease_until_ms)
    WHERE state IN ('QUEUED', 'VALIDATING', 'DEPLOYING', 'PAUSED', 'BAKING', 'ROLLING_BACK')
       OR notified_sequence < event_sequence;

CREATE TABLE deployment_events (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    deployment  BIGINT NOT NULL,
    sequence    BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    share       BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, deployment, sequence)
);

-- Client-reported outcomes per version and minute (ReportHealth adds to the counts).
CREATE TABLE health_reports (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    target      TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    minute_ms   BIGINT NOT NULL,
    ok          BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, kind, target, version, minute_ms)
);

-- Which client ids read each config, and when last: a deployment's step threshold is set so
-- that the step's share of these clients gets the new release.
CREATE TABLE client_sightings (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    seen_ms     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, config, client_id)
);

-- A change-log row of a config under deployment carries the candidate release and the share
-- of clients that get it (JSON); NULL otherwise.
ALTER TABLE changes ADD COLUMN rollout TEXT;
