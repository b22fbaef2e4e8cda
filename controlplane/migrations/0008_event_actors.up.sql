-- Who caused an event, and from where: "operator:<token id>" or "agent:<agent id>" (empty for
-- the mothership's own findings, such as a lost agent), and the peer address of the request.
ALTER TABLE events ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN peer text NOT NULL DEFAULT '';
CREATE INDEX events_actor ON events (actor, id) WHERE actor <> '';
CREATE INDEX events_kind ON events (kind, id);
