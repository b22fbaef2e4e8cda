-- Pro mode: several agents of a cluster share this database and one of them leads. Each new
-- leader bumps its cluster's epoch in the transaction that claims leadership; every
-- transaction a leader writes in calls tether_fence first, so the late write of a deposed
-- leader is refused by the database itself.
CREATE TABLE leadership (
  cluster text PRIMARY KEY,
  epoch   bigint NOT NULL,
  leader  text NOT NULL,        -- the agent's name
  since   timestamptz NOT NULL DEFAULT now()
);

-- Refuses (SQLSTATE TF001) unless `p_epoch` is the cluster's current epoch, and holds the row
-- until the calling transaction ends, so no new leader is claimed while its write is under way.
CREATE FUNCTION tether_fence(p_cluster text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  current_epoch bigint;
BEGIN
  SELECT epoch INTO current_epoch FROM leadership WHERE cluster = p_cluster FOR SHARE;
  IF current_epoch IS DISTINCT FROM p_epoch THEN
    RAISE EXCEPTION 'fenced: epoch % of cluster % is over (the current epoch is %)',
      p_epoch, p_cluster, coalesce(current_epoch::text, 'none')
      USING ERRCODE = 'TF001';
  END IF;
END $$;
