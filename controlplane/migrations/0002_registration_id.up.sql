-- The id of the registration that made the current incarnation, so a retried Register (its
-- answer lost on the way) is recognised instead of counted twice.
ALTER TABLE agents ADD COLUMN last_registration_id text NOT NULL DEFAULT '';
