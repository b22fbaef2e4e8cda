ALTER TABLE bootstrap_tokens ADD COLUMN uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0);
UPDATE bootstrap_tokens t SET uses = (SELECT count(*) FROM bootstrap_token_uses u WHERE u.token_id = t.id);
DROP TABLE bootstrap_token_uses;
