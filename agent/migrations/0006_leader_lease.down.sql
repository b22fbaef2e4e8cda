CREATE OR REPLACE FUNCTION tether_fence(p_cluster text, p_epoch bigint) RETURNS void
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
DROP TABLE leadership_leases;
