ALTER TABLE agent_tenants DROP COLUMN held;
DROP TABLE command_lines;
DROP TABLE command_targets;
DROP TABLE commands;
