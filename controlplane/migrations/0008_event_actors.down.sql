DROP INDEX events_kind;
DROP INDEX events_actor;
ALTER TABLE events DROP COLUMN peer;
ALTER TABLE events DROP COLUMN actor;
