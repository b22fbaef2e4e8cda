ALTER TABLE agents DROP COLUMN last_registration_id;
