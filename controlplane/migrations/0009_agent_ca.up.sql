-- The CA that signs agents' client certificates when the mothership serves TLS, made by the
-- first replica to start and shared by all (unless --ca-cert/--ca-key name one). Holding its
-- key signs certificates, but a stream also needs the agent's credential, of which only a hash
-- is stored, so the key alone impersonates no one.
CREATE TABLE agent_ca (
  id smallint PRIMARY KEY CHECK (id = 1),
  cert_pem text NOT NULL,
  key_pem text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
