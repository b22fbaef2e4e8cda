-- Durable commands: what an operator asked for (or an apply stored), each target agent's part
-- in it, and its progress lines in the order they were stored.
CREATE TABLE commands (
  id                bigserial PRIMARY KEY,
  cluster           text NOT NULL REFERENCES clusters (name),
  kind              text NOT NULL,               -- migrate | rollback | reprovision | drop_tenant | apply
  command           jsonb NOT NULL,              -- the v1.Command as queued (proto3 JSON)
  summary           text NOT NULL DEFAULT '',
  revision          bigint NOT NULL DEFAULT 0,   -- the cluster's latest revision when queued
  idempotency_key   text,
  request_hash      text NOT NULL DEFAULT '',    -- a retry with the key must ask the same
  created_by        text NOT NULL DEFAULT '',
  created_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  state             text NOT NULL,               -- overall, from the targets'
  error             text NOT NULL DEFAULT '',
  cancel_requested  boolean NOT NULL DEFAULT false,
  line_count        bigint NOT NULL DEFAULT 0    -- the last line's seq
);
CREATE UNIQUE INDEX commands_idempotency_key ON commands (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX commands_cluster ON commands (cluster, id);
CREATE INDEX commands_apply ON commands (cluster, revision) WHERE kind = 'apply';

CREATE TABLE command_targets (
  command_id    bigint NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
  agent_id      uuid NOT NULL,        -- no reference: a deleted agent's part stays in history
  agent_name    text NOT NULL,
  state         text NOT NULL,
  error         text NOT NULL DEFAULT '',
  incarnation   bigint NOT NULL DEFAULT 0,  -- the agent's incarnation that started it
  attempt       bigint NOT NULL DEFAULT 0,  -- the agent's run whose lines are stored
  lines_stored  bigint NOT NULL DEFAULT 0,  -- how many lines of that attempt
  steps_done    integer NOT NULL DEFAULT 0,
  steps_total   integer NOT NULL DEFAULT 0,
  step          text NOT NULL DEFAULT '',
  started_at    timestamptz,
  finished_at   timestamptz,
  PRIMARY KEY (command_id, agent_id)
);
CREATE INDEX command_targets_unfinished ON command_targets (agent_id) WHERE finished_at IS NULL;

CREATE TABLE command_lines (
  command_id  bigint NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
  seq         bigint NOT NULL,
  at          timestamptz NOT NULL,
  agent_name  text NOT NULL DEFAULT '',
  text        text NOT NULL,
  PRIMARY KEY (command_id, seq)
);

-- A tenant a rollback left held at its version, as its agent reports it.
ALTER TABLE agent_tenants ADD COLUMN held boolean NOT NULL DEFAULT false;
