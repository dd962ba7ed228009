-- Incremental folding: a batch of metric events moves the touched units' kept sums by what the
-- batch alone adds, so the aggregator never reads a unit's raw events again after the unit's
-- first exposure.

-- The batch's new metric events, as a JSON array of [unit, event name, value, occurred ms];
-- `units` now holds the units whose exposures the batch carried (checked for a changed
-- membership, and recounted from raw events only then).
ALTER TABLE pending_batches ADD COLUMN events TEXT NOT NULL DEFAULT '[]';

-- The pending batch that brought each event: a recount leaves out events of batches still
-- pending, which add themselves when they are folded.
ALTER TABLE metric_events ADD COLUMN batch_id BIGINT;

-- Raw sums (conversions counted, values summed, uncapped) beside the value the statistics
-- count, and the first exposure the row was computed for. Rows from before this migration
-- have exposed_ms 0, so the next batch that touches their unit recounts it.
ALTER TABLE unit_contributions ADD COLUMN raw_x DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE unit_contributions ADD COLUMN raw_y DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE unit_contributions ADD COLUMN exposed_ms BIGINT NOT NULL DEFAULT 0;

-- Lookups by unit lead with the unit: with (tenant, project, unit) a planner without fresh
-- statistics (a new day's partition, a burst of inserts) used only tenant and project and
-- read every row of the project.
DROP INDEX metric_events_by_unit;
CREATE INDEX metric_events_by_unit ON metric_events (unit, tenant, project);
DROP INDEX experiment_units_by_unit;
CREATE INDEX experiment_units_by_unit ON experiment_units (unit, tenant, project);
DROP INDEX unit_contributions_by_unit;
CREATE INDEX unit_contributions_by_unit ON unit_contributions (unit, tenant, project);
