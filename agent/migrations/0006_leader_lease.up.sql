-- The leader's lease, beside (not in) the epoch's row, so renewing it never waits for the
-- leader's own fenced writes, which hold that row for share. A leader renews it every second.
-- A leader cut off from this database without its session ending (a proxy or a partition
-- that keeps the server's side of the connection open) stops renewing; once the lease is older
-- than the standbys' lease time, a standby ends the session holding the leadership lock,
-- takes the lock and bumps the epoch, which fences every write the old leader still attempts.
CREATE TABLE leadership_leases (
  cluster    text PRIMARY KEY,
  leader     text NOT NULL,          -- the agent's name
  holder_pid integer NOT NULL,       -- its leadership backend
  renewed_at timestamptz NOT NULL DEFAULT now()
);

-- A fenced transaction left idle by a leader that is cut off would hold the epoch's row, and
-- keep the next leader from claiming it, for as long as its connection lives: it is ended after
-- 5 s idle (a leader's transactions are never idle that long). The function finds `leadership`
-- in the schema it was created in, whatever the caller's search path (a tenant's schema).
CREATE OR REPLACE FUNCTION tether_fence(p_cluster text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  current_epoch bigint;
BEGIN
  PERFORM set_config('idle_in_transaction_session_timeout', '5000', true);
  SELECT epoch INTO current_epoch FROM leadership WHERE cluster = p_cluster FOR SHARE;
  IF current_epoch IS DISTINCT FROM p_epoch THEN
    RAISE EXCEPTION 'fenced: epoch % of cluster % is over (the current epoch is %)',
      p_epoch, p_cluster, coalesce(current_epoch::text, 'none')
      USING ERRCODE = 'TF001';
  END IF;
END $$;
