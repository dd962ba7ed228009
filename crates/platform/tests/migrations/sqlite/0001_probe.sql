-- A table for the platform's own storage tests.
CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL);
