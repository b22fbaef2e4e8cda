DROP TABLE agent_tenants;
ALTER TABLE agents DROP COLUMN incarnation_at, DROP COLUMN converged_at, DROP COLUMN nack_revision,
  DROP COLUMN nack_error, DROP COLUMN nack_at;
DROP TABLE spec_revisions;
DROP TABLE spec_files;
ALTER TABLE clusters DROP COLUMN last_revision;
