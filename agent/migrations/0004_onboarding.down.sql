DROP TABLE onboarding_snapshots;
ALTER TABLE tenants DROP COLUMN onboarding, DROP COLUMN fingerprint, DROP COLUMN replay_fingerprint;
