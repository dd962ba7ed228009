-- PostgreSQL's 0009 makes the high-volume tables' keys compare byte by byte; SQLite's text
-- comparison (BINARY) already does.
SELECT 1;
