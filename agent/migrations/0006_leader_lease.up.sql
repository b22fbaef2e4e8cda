-- A leader renews its lease every second. A leader cut off from this database without its
-- session ending (a proxy or a partition that keeps the server's side of the connection open)
-- stops renewing; once the lease is older than the standbys' lease time, a standby ends the
-- stale leader's session (the backend holding the leadership lock), takes the lock and bumps
-- the epoch, which fences every write the old leader still attempts.
ALTER TABLE leadership
  ADD COLUMN renewed_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN holder_pid integer NOT NULL DEFAULT 0;   -- the leader's leadership backend
