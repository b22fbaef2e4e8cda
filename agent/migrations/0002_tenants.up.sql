-- The agent's record of its tenants, written before and after every change to one, so a
-- reconcile interrupted at any point is resumed, not repeated.
CREATE TABLE tenants (
  name        text PRIMARY KEY,
  state       text NOT NULL,
  version     bigint NOT NULL DEFAULT 0,
  error       text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
