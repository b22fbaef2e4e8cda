-- Desired state: append-only revisions of each cluster's spec, the SQL files they carry (kept
-- once by content), what each agent last reported, and its tenants as it reported them.
ALTER TABLE clusters ADD COLUMN last_revision bigint NOT NULL DEFAULT 0;

CREATE TABLE spec_files (
  sha256    text PRIMARY KEY,
  contents  text NOT NULL
);

CREATE TABLE spec_revisions (
  cluster     text NOT NULL REFERENCES clusters (name),
  revision    bigint NOT NULL,
  spec        jsonb NOT NULL,   -- the ClusterSpec (proto3 JSON), its files' contents left out
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  text NOT NULL DEFAULT '',
  changes     text NOT NULL DEFAULT '',  -- what changed from the revision before, one per line
  PRIMARY KEY (cluster, revision)
);

ALTER TABLE agents
  ADD COLUMN incarnation_at timestamptz,
  ADD COLUMN converged_at timestamptz,
  ADD COLUMN nack_revision bigint NOT NULL DEFAULT 0,
  ADD COLUMN nack_error text NOT NULL DEFAULT '',
  ADD COLUMN nack_at timestamptz;
UPDATE agents SET incarnation_at = registered_at;

CREATE TABLE agent_tenants (
  agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  tenant          text NOT NULL,
  revision        bigint NOT NULL,
  state           text NOT NULL,
  version         bigint NOT NULL DEFAULT 0,
  target_version  bigint NOT NULL DEFAULT 0,
  pending         text NOT NULL DEFAULT '',  -- pending versions, comma-separated
  error           text NOT NULL DEFAULT '',
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, tenant)
);
