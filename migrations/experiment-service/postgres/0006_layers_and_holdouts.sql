-- Layers and holdouts of a project (definition as JSON). They are created, never changed (so
-- `version` stays 1): an experiment resolves them when it first starts and keeps what it
-- resolved. Creation is audited like every other write.
CREATE TABLE layers (
    tenant     TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    layer_key  TEXT   NOT NULL,
    definition TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, layer_key)
);

CREATE TABLE holdouts (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    holdout_key TEXT   NOT NULL,
    definition  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, holdout_key)
);
