-- The mothership's registry: clusters, agents, tokens and the event log.

CREATE TABLE clusters (
  name        text PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Bootstrap tokens let an agent register. Only the hash of the secret is kept.
CREATE TABLE bootstrap_tokens (
  id            text PRIMARY KEY,
  secret_hash   text NOT NULL,
  cluster       text NOT NULL REFERENCES clusters (name),
  description   text NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,            -- NULL: never
  uses_allowed  integer NOT NULL DEFAULT 0 CHECK (uses_allowed >= 0),  -- 0: unlimited
  uses          integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
  revoked_at    timestamptz
);

CREATE TABLE agents (
  id               uuid PRIMARY KEY,
  name             text NOT NULL UNIQUE,
  cluster          text NOT NULL REFERENCES clusters (name),
  mode             text NOT NULL DEFAULT 'lite',
  version          text NOT NULL DEFAULT '',
  incarnation      bigint NOT NULL DEFAULT 1,
  credential_hash  text NOT NULL,
  registered_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at     timestamptz,         -- last Hello or heartbeat
  health           jsonb NOT NULL DEFAULT '{}',  -- the last Health, proto3 JSON
  applied_revision bigint NOT NULL DEFAULT 0,
  lost_reported    boolean NOT NULL DEFAULT false  -- an agent.lost event was written
);
CREATE INDEX agents_cluster ON agents (cluster);

-- Operators' tokens for ControlService.
CREATE TABLE operator_tokens (
  id           text PRIMARY KEY,
  secret_hash  text NOT NULL UNIQUE,
  description  text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);

CREATE TABLE events (
  id       bigserial PRIMARY KEY,
  at       timestamptz NOT NULL DEFAULT now(),
  cluster  text NOT NULL DEFAULT '',
  agent    text NOT NULL DEFAULT '',
  kind     text NOT NULL,
  message  text NOT NULL DEFAULT ''
);
CREATE INDEX events_cluster ON events (cluster, id);
