-- Pro clusters: which of the agents sharing the cluster's PostgreSQL leads, in which fencing
-- epoch, as the agents report it. Commands of a pro cluster are routed to its leader, and move
-- to the next one when the epoch changes.
CREATE TABLE cluster_leaders (
  cluster    text PRIMARY KEY,
  agent_id   uuid NOT NULL,
  agent_name text NOT NULL,
  epoch      bigint NOT NULL,
  since      timestamptz NOT NULL DEFAULT now()
);
