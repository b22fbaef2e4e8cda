DROP TABLE agent_ca;
