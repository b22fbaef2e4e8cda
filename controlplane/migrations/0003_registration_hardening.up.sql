-- A retried Register is recognised by the hash of its registration id and the token that made
-- it, never by an id kept in clear; the id is forgotten once the agent has connected.
ALTER TABLE agents RENAME COLUMN last_registration_id TO registration_id_hash;
UPDATE agents SET registration_id_hash = encode(sha256(convert_to(registration_id_hash, 'UTF8')), 'hex')
  WHERE registration_id_hash <> '';
ALTER TABLE agents ADD COLUMN registration_token_id text NOT NULL DEFAULT '';

-- Bootstrap tokens may be limited to agent names matching glob patterns ('web-*'); empty: any.
ALTER TABLE bootstrap_tokens ADD COLUMN names text[] NOT NULL DEFAULT '{}';
