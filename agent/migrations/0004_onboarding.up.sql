-- How each tenant was onboarded and the fingerprints that proved it; and the schema snapshot of
-- the latest revision, one per tenancy, for snapshot onboarding.
ALTER TABLE tenants
  ADD COLUMN onboarding         text NOT NULL DEFAULT '',  -- migrations | template | warm_pool | snapshot
  ADD COLUMN fingerprint        text NOT NULL DEFAULT '',  -- of its schema once onboarded
  ADD COLUMN replay_fingerprint text NOT NULL DEFAULT '';  -- of a replay of the same migrations

CREATE TABLE onboarding_snapshots (
  tenancy     text    NOT NULL,        -- database | schema
  migrations  text    NOT NULL,        -- digest of the migrations it holds
  version     bigint  NOT NULL,
  faithful    boolean NOT NULL,        -- applied, it gave the replay's fingerprint
  reason      text    NOT NULL DEFAULT '',  -- why not, when not
  fingerprint text    NOT NULL,        -- the replay's
  sql         text    NOT NULL,
  taken_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenancy, migrations)
);
