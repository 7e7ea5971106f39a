-- Run once per service database, as a PostgreSQL admin, connected to that database, before
-- deploy/vault/setup.sh:  psql "postgresql://admin@host:5432/<db>" -f postgres-bootstrap.sql
-- Idempotent. Creates the two stable NOLOGIN group roles Vault's short-lived users join:
--   <db>_owner  owns schema public, so every table migrations create (they `SET ROLE
--               <db>_owner`) outlives the Vault user that ran them;
--   <db>_rw     DML on whatever <db>_owner creates (default privileges), no DDL.
-- Nobody else may connect to <db>.
\set ON_ERROR_STOP on
SELECT current_database() AS db, current_database() || '_owner' AS owner,
       current_database() || '_rw' AS rw \gset

SELECT format('CREATE ROLE %I NOLOGIN', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I NOLOGIN', :'rw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'rw') \gexec

REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"owner", :"rw";

ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"rw";

ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"rw";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"rw";
-- Tables that already exist (a database migrated before this ran).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"rw";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"rw";
