-- An imported release records who imported it and when as its author and time; what the
-- archive claimed is kept beside, as imported_author and imported_ms (empty and 0 otherwise).
ALTER TABLE releases ADD COLUMN imported_author TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN imported_ms BIGINT NOT NULL DEFAULT 0;
