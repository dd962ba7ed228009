-- Rebuilding an experiment's kept sums after one of its metrics changed: requested in the
-- metric's own write transaction, then worked through by the aggregator in chunks of units
-- (by unit, from `next_unit` on), each chunk recounted from raw events in one transaction.
-- `done` of `total` units is the progress results report; the row goes when it is finished.
CREATE TABLE rebuilds (
    tenant         TEXT   NOT NULL,
    project        TEXT   NOT NULL,
    experiment_key TEXT   NOT NULL,
    next_unit      TEXT   NOT NULL,
    done           BIGINT NOT NULL,
    total          BIGINT NOT NULL,
    requested_ms   BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key)
);
