-- The agent's own bookkeeping, beside the tenants' databases.

-- Commands already executed, so a redelivered command is not applied twice.
CREATE TABLE agent_commands (
  command_id   text PRIMARY KEY,
  kind         text NOT NULL,
  state        text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  error        text
);

-- Small facts the agent keeps about itself (the last applied revision and the like).
CREATE TABLE agent_state (
  key    text PRIMARY KEY,
  value  text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
