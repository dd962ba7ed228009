-- When each user was last online and last active, written in batches from what presence
-- state (Redis or memory) holds, so both survive a Redis flush and answer for offline users.
CREATE TABLE last_seen (
    tenant    TEXT   NOT NULL,
    user_id   TEXT   NOT NULL,
    seen_ms   BIGINT NOT NULL,
    active_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, user_id)
);
