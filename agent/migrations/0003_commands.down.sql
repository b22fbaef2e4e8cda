ALTER TABLE tenants DROP COLUMN held;
ALTER TABLE agent_commands
  DROP COLUMN steps_total,
  DROP COLUMN steps_done,
  DROP COLUMN detail,
  DROP COLUMN attempt,
  DROP COLUMN command;
