-- credo-storage PostgreSQL schema, version 2: the outbox holds the versioned envelope written
-- once at enqueue (credo_ports::envelope), claims carry a token, rows of one order key
-- (tenant, subject) leave in order, and rows a sink keeps rejecting are set aside.

ALTER TABLE outbox
    ADD COLUMN envelope        text,
    ADD COLUMN schema_version  integer,
    ADD COLUMN subject_user_id uuid,
    ADD COLUMN claim_token     uuid,
    ADD COLUMN failures        integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error      text,
    ADD COLUMN dead_at         timestamptz;

-- Rows written by version 1 hold the bare event: wrap it in the version-1 envelope, so they
-- are relayed like any other.
UPDATE outbox SET
    envelope        = jsonb_build_object('schema_version', 1, 'event', payload)::text,
    schema_version  = 1,
    subject_user_id = (payload ->> 'subject_user_id')::uuid;

ALTER TABLE outbox
    ALTER COLUMN envelope SET NOT NULL,
    ALTER COLUMN schema_version SET NOT NULL,
    DROP COLUMN payload;

-- Pending = neither published nor set aside.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL AND dead_at IS NULL;
-- Per order key, for the claim's "every earlier row of the key" check.
CREATE INDEX outbox_pending_key ON outbox
    (tenant_id, (COALESCE(subject_user_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq)
    WHERE published_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_dead ON outbox (enqueued_at, event_id) WHERE dead_at IS NOT NULL;
