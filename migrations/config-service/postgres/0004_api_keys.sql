-- API keys created at runtime (the key store every service follows). Only the SHA-256 of a
-- key is stored. A revoked key keeps its row, for the audit trail and `ListApiKeys`;
-- `revision` grows with every change so followers can tell sets apart. Times are Unix ms.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant       TEXT   NOT NULL,
    sha256       TEXT   NOT NULL UNIQUE,
    display_name TEXT   NOT NULL,
    roles        TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    creator      TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    expire_ms    BIGINT,
    revoked_ms   BIGINT,
    last_used_ms BIGINT,
    revision     BIGINT NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_ms, id);
