-- credo-storage PostgreSQL schema, version 4: email keys follow the email policy from this
-- version (NFKC and lower case, credo_ports::validate::email_key). SQL has no lower case that
-- matches Rust's for every script, so the keys of rows with non-ASCII addresses are recomputed
-- by `PgStores::migrate` right after this migration, under the migration lock; this table
-- marks that recomputation as still to do (it is dropped when done).
CREATE TABLE email_rekey_pending (since timestamptz NOT NULL DEFAULT now());
INSERT INTO email_rekey_pending DEFAULT VALUES;
