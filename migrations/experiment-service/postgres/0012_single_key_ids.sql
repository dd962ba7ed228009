-- Every acknowledged event looks its id up and inserts it. With the key (tenant, kind,
-- event_id) each index comparison read three variable-length columns, and a second index
-- (received_ms) took an entry per event though nothing read it. Now the key is one byte-order
-- text — tenant, kind and id joined by U+001F, which neither a tenant nor a kind contains, so
-- distinct ids never share a key — and the age index is a BRIN range index (ids arrive in
-- received order), which costs next to nothing to keep and finds the expired ones that
-- ingestion deletes.
ALTER TABLE ingested_ids RENAME TO ingested_ids_before_0012;
CREATE TABLE ingested_ids (
    id_key      TEXT COLLATE "C" PRIMARY KEY,
    received_ms BIGINT NOT NULL
);
INSERT INTO ingested_ids (id_key, received_ms)
    SELECT tenant || chr(31) || kind || chr(31) || event_id, received_ms FROM ingested_ids_before_0012;
DROP TABLE ingested_ids_before_0012;
CREATE INDEX ingested_ids_by_age ON ingested_ids USING brin (received_ms);
