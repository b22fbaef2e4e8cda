DROP TABLE events;
DROP TABLE operator_tokens;
DROP TABLE agents;
DROP TABLE bootstrap_tokens;
DROP TABLE clusters;
