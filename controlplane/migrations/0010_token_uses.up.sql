-- Each use of a bootstrap token is a row of its own: registrations with one shared token insert
-- side by side instead of queueing on the token's row to add one to a counter. A token's uses
-- are the count of its rows; a use-limited token is still counted under its row's lock, so it
-- admits exactly its number of uses.
CREATE TABLE bootstrap_token_uses (
  token_id  text NOT NULL REFERENCES bootstrap_tokens (id) ON DELETE CASCADE,
  used_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bootstrap_token_uses_token ON bootstrap_token_uses (token_id);
INSERT INTO bootstrap_token_uses (token_id, used_at)
  SELECT id, created_at FROM bootstrap_tokens, generate_series(1, uses);
ALTER TABLE bootstrap_tokens DROP COLUMN uses;
