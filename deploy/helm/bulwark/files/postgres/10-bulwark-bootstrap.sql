-- PLACEHOLDER for deploy/vault/postgres-bootstrap.sql (branch `vault`), run once by the dev
-- PostgreSQL's initdb. Per the contract: per service database <db>, NOLOGIN roles
-- <db>_owner (owns schema public) and <db>_rw (DML via default privileges), CONNECT revoked
-- from PUBLIC. The real file replaces this one at merge.
CREATE DATABASE bulwark_api;
CREATE DATABASE bulwark_auth;
CREATE DATABASE bulwark_users;
