DROP TABLE agent_state;
DROP TABLE agent_commands;
