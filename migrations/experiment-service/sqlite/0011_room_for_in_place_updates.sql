-- PostgreSQL's 0011 leaves room on the pages of the rows folds rewrite; SQLite has no such
-- setting.
SELECT 1;
