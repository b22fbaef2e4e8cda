ALTER TABLE agent_tenants DROP COLUMN onboarding, DROP COLUMN fingerprint,
  DROP COLUMN replay_fingerprint;
