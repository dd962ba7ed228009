-- Keys of the high-volume tables compare byte by byte (COLLATE "C"). Under the database's
-- default collation (C.UTF-8, en_US.UTF-8 …) every index comparison of a unit, tenant or event
-- id went through strcoll, a large share of PostgreSQL's time while ingesting and folding.
-- Nothing orders these keys for people, and equality is the same either way.
ALTER TABLE ingested_ids
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN kind TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C";
ALTER TABLE exposures
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN project TYPE TEXT COLLATE "C",
    ALTER COLUMN experiment_key TYPE TEXT COLLATE "C",
    ALTER COLUMN unit TYPE TEXT COLLATE "C";
ALTER TABLE experiment_units
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN project TYPE TEXT COLLATE "C",
    ALTER COLUMN experiment_key TYPE TEXT COLLATE "C",
    ALTER COLUMN unit TYPE TEXT COLLATE "C";
ALTER TABLE metric_events
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN project TYPE TEXT COLLATE "C",
    ALTER COLUMN event_name TYPE TEXT COLLATE "C",
    ALTER COLUMN unit TYPE TEXT COLLATE "C";
ALTER TABLE unit_contributions
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN project TYPE TEXT COLLATE "C",
    ALTER COLUMN experiment_key TYPE TEXT COLLATE "C",
    ALTER COLUMN metric_key TYPE TEXT COLLATE "C",
    ALTER COLUMN unit TYPE TEXT COLLATE "C";

-- A rebuild in progress walks units in key order from `next_unit`, which was saved under the
-- old order: it starts again from the first unit rather than skip any.
UPDATE rebuilds SET next_unit = '', done = 0;
