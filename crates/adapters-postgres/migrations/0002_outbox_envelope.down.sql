-- Back to schema version 1: the bare event in `payload`. Dead letters become pending again.
-- A row whose envelope is not JSON (a poison row set aside) has no version-1 form: refuse,
-- and leave the operator to re-queue or remove it first.
DO $$
BEGIN
    PERFORM envelope::jsonb FROM outbox;
EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'outbox holds rows whose envelope is not JSON (dead letters?); '
        'resolve them before migrating down: SELECT event_id, last_error FROM outbox '
        'WHERE dead_at IS NOT NULL';
END $$;
DROP INDEX IF EXISTS outbox_dead;
DROP INDEX IF EXISTS outbox_pending_key;
DROP INDEX IF EXISTS outbox_pending;
ALTER TABLE outbox ADD COLUMN payload jsonb;
UPDATE outbox SET payload = envelope::jsonb -> 'event', claimed_until = NULL;
ALTER TABLE outbox
    ALTER COLUMN payload SET NOT NULL,
    DROP COLUMN envelope,
    DROP COLUMN schema_version,
    DROP COLUMN subject_user_id,
    DROP COLUMN claim_token,
    DROP COLUMN failures,
    DROP COLUMN last_error,
    DROP COLUMN dead_at;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
