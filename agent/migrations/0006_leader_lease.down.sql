ALTER TABLE leadership DROP COLUMN renewed_at, DROP COLUMN holder_pid;
