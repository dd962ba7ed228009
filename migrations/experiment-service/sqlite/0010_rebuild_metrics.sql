-- A rebuild after a metric changed recounts only the metrics that depend on it: a JSON array
-- of their keys. Empty: every metric (the experiment's metrics or dimensions changed).
ALTER TABLE rebuilds ADD COLUMN metrics TEXT NOT NULL DEFAULT '';
