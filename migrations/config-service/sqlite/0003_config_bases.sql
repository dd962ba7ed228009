-- The inheritance graph, one row per (config, base), indexed by base so that "what extends
-- this config" is one indexed query instead of a scan of every draft of the tenant.
CREATE TABLE config_bases (
    tenant       TEXT NOT NULL,
    project      TEXT NOT NULL,
    config       TEXT NOT NULL,
    base_project TEXT NOT NULL,
    base_config  TEXT NOT NULL,
    PRIMARY KEY (tenant, project, config, base_project, base_config)
);
CREATE INDEX config_bases_by_base ON config_bases (tenant, base_project, base_config);
