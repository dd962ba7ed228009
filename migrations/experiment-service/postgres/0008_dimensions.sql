-- Dimension breakdowns: each kept per-unit row carries its unit's segment (a JSON array of
-- [dimension, slice] pairs, from the unit's first exposure's attributes), and per slice the
-- same sufficient statistics as per arm are kept beside `arm_statistics`.
ALTER TABLE unit_contributions ADD COLUMN segment TEXT NOT NULL DEFAULT '[]';

-- Slices are stored as `=value`, `$missing` or `$other` (see biz/dimensions.rs).
CREATE TABLE dimension_statistics (
    tenant         TEXT             NOT NULL,
    project        TEXT             NOT NULL,
    experiment_key TEXT             NOT NULL,
    phase          INTEGER          NOT NULL,
    dimension      TEXT             NOT NULL,
    slice          TEXT             NOT NULL,
    metric_key     TEXT             NOT NULL,
    variant        TEXT             NOT NULL,
    n              BIGINT           NOT NULL,
    sum_x          DOUBLE PRECISION NOT NULL,
    sum_x2         DOUBLE PRECISION NOT NULL,
    sum_y          DOUBLE PRECISION NOT NULL,
    sum_y2         DOUBLE PRECISION NOT NULL,
    sum_xy         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, project, experiment_key, phase, dimension, slice, metric_key, variant)
);
