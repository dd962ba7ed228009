-- How often each flag served each variant in each environment, and when it was last
-- evaluated; flushed from memory periodically. An empty variant counts evaluations that served
-- none (disabled, the caller's default, errors).
CREATE TABLE flag_usage (
    tenant      TEXT   NOT NULL,
    project     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    flag_key    TEXT   NOT NULL,
    variant     TEXT   NOT NULL,
    evaluations BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    PRIMARY KEY (tenant, project, environment, flag_key, variant)
);
