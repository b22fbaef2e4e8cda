-- Commands the agent runs, kept whole so a command under way when the agent stopped is resumed
-- from its own record, without waiting for the mothership to deliver it again; and the hold a
-- rollback leaves on a tenant.
ALTER TABLE agent_commands
  ADD COLUMN command     bytea,                          -- the serialized tether.v1.Command
  ADD COLUMN attempt     bigint NOT NULL DEFAULT 0,      -- runs started, a resumed one included
  ADD COLUMN detail      jsonb  NOT NULL DEFAULT '{}',   -- decided once at first start (a rollback's target)
  ADD COLUMN steps_done  int    NOT NULL DEFAULT 0,
  ADD COLUMN steps_total int    NOT NULL DEFAULT 0;

-- Rolled back by a command: reconciles leave the tenant at its version until a migrate.
ALTER TABLE tenants ADD COLUMN held boolean NOT NULL DEFAULT false;
