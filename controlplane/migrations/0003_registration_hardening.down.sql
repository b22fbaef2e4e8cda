ALTER TABLE bootstrap_tokens DROP COLUMN names;
ALTER TABLE agents DROP COLUMN registration_token_id;
ALTER TABLE agents RENAME COLUMN registration_id_hash TO last_registration_id;
