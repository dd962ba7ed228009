-- Every mutation of this service writes one record here, in the same transaction as the
-- change itself: who did what to which resource, digests of before and after, and the
-- request it came from. Records are appended and never updated.
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    tenant        TEXT        NOT NULL,
    actor         TEXT        NOT NULL,
    action        TEXT        NOT NULL,
    resource      TEXT        NOT NULL,
    before_digest TEXT,
    after_digest  TEXT,
    request_id    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_by_resource ON audit_log (tenant, resource, created_at);
CREATE INDEX audit_log_by_actor ON audit_log (tenant, actor, created_at);
