-- How each tenant was onboarded, as its agent reports it, and the fingerprints that proved it.
ALTER TABLE agent_tenants
  ADD COLUMN onboarding         text NOT NULL DEFAULT '',
  ADD COLUMN fingerprint        text NOT NULL DEFAULT '',
  ADD COLUMN replay_fingerprint text NOT NULL DEFAULT '';
