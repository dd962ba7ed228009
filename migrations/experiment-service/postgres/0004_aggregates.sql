-- Incremental analysis: what each unit currently contributes to each metric of each
-- experiment phase, and per arm the sufficient statistics (n, Σx, Σx², Σy, Σy², Σxy) that
-- results are computed from without reading raw events.

-- Batches acknowledged to their sender but not yet folded into the aggregates: written in the
-- batch's own transaction and deleted in the transaction that folds it, so a crash in between
-- only delays the fold. `units` is the JSON array of the units the batch touched.
CREATE TABLE pending_batches (
    id          BIGSERIAL PRIMARY KEY,
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    units       TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE INDEX experiment_units_by_unit ON experiment_units (tenant, project, unit);

-- A unit's current (x, y) for one metric of one experiment phase, in the arm it counts for.
-- Units that saw two arms have no rows.
CREATE TABLE unit_contributions (
    tenant         TEXT             NOT NULL,
    project        TEXT             NOT NULL,
    experiment_key TEXT             NOT NULL,
    phase          INTEGER          NOT NULL,
    metric_key     TEXT             NOT NULL,
    unit           TEXT             NOT NULL,
    variant        TEXT             NOT NULL,
    x              DOUBLE PRECISION NOT NULL,
    y              DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key, phase, metric_key, unit)
);
CREATE INDEX unit_contributions_by_unit ON unit_contributions (tenant, project, unit);

-- Per experiment phase, metric and arm: the sums of the contributions above.
CREATE TABLE arm_statistics (
    tenant         TEXT             NOT NULL,
    project        TEXT             NOT NULL,
    experiment_key TEXT             NOT NULL,
    phase          INTEGER          NOT NULL,
    metric_key     TEXT             NOT NULL,
    variant        TEXT             NOT NULL,
    n              BIGINT           NOT NULL,
    sum_x          DOUBLE PRECISION NOT NULL,
    sum_x2         DOUBLE PRECISION NOT NULL,
    sum_y          DOUBLE PRECISION NOT NULL,
    sum_y2         DOUBLE PRECISION NOT NULL,
    sum_xy         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key, phase, metric_key, variant)
);
