-- Every fold rewrites the kept per-unit rows it moves (their values, never their keys). With
-- full pages each such update wrote a new tuple elsewhere plus an entry in both indexes; with
-- room left on each page PostgreSQL updates them in place (HOT), without index writes.
ALTER TABLE unit_contributions SET (fillfactor = 70);
ALTER TABLE arm_statistics SET (fillfactor = 70);
ALTER TABLE dimension_statistics SET (fillfactor = 70);
