--
-- PostgreSQL database dump
--
\restrict AbCdEf123
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE SCHEMA tether_snapshot;
CREATE TABLE tether_snapshot.orders (
    id bigint NOT NULL,
    status text DEFAULT 'new'::text,
    note text DEFAULT 'tether_snapshot.orders is a name in a comment'
);
CREATE SEQUENCE tether_snapshot.orders_id_seq START WITH 1;
SELECT pg_catalog.setval('tether_snapshot.orders_id_seq', 1, false);
ALTER TABLE ONLY tether_snapshot.orders ALTER COLUMN id SET DEFAULT nextval('tether_snapshot.orders_id_seq'::regclass);
COMMENT ON SCHEMA "tether_snapshot" IS 'schema tether_snapshot';
GRANT USAGE ON SCHEMA TETHER_SNAPSHOT TO PUBLIC;
SELECT 'tether_snapshot'::regnamespace, ' tether_snapshot '::regnamespace;
\unrestrict AbCdEf123
