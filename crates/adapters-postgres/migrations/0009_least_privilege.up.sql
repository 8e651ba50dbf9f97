-- credo-storage PostgreSQL schema, version 9: the service can run as an application role that
-- owns nothing (docs/security.md). For such a role the audit log is append-only: it may read
-- and insert audit_events, never update or delete them; it removes events only through the
-- retention functions below, which run as the owner and refuse to delete an event younger
-- than audit_retention_floor, so a compromised service cannot erase recent history. The
-- owner (who runs migrations) and superusers are not bound by the floor.
--
-- Every function is SECURITY DEFINER with the search_path of its creation, and executable by
-- no one but the owner until PgStores::grant_app_role grants it.

CREATE TABLE audit_retention_floor (
    only_row boolean  PRIMARY KEY DEFAULT true CHECK (only_row),
    min_age  interval NOT NULL CHECK (min_age >= interval '0')
);
INSERT INTO audit_retention_floor (min_age) VALUES (interval '1 day');

-- Refuses `before` later than now() - the floor, unless the session's login role owns the log.
CREATE FUNCTION credo_audit_floor_check(before timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    min_age_v interval;
BEGIN
    IF pg_has_role(session_user,
                   (SELECT relowner FROM pg_class WHERE oid = 'audit_events'::regclass),
                   'MEMBER') THEN
        RETURN;
    END IF;
    SELECT min_age INTO min_age_v FROM audit_retention_floor;
    IF before > now() - min_age_v THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('permission denied: role %s may not delete audit events younger than %s (audit_retention_floor)',
                             session_user, min_age_v);
    END IF;
END
$$;

-- Retention row by row: at most max_rows events that occurred before `before`, of one
-- category when given. Returns how many it deleted.
CREATE FUNCTION credo_audit_purge(before timestamptz, only_category text, max_rows integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM credo_audit_floor_check(before);
    DELETE FROM audit_events WHERE (tenant_id, id) IN (
        SELECT tenant_id, id FROM audit_events
        WHERE occurred_at < before AND (only_category IS NULL OR category = only_category)
        LIMIT max_rows);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Makes the partition `part` of ids lo..hi, moving in the events the catch-all kept for it.
CREATE FUNCTION credo_audit_partition_create(part text, lo uuid, hi uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF part !~ '^audit_events_p[0-9_]+$' OR length(part) > 63 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('not an audit partition name: %s', part);
    END IF;
    IF lo >= hi THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('empty partition range %s..%s', lo, hi);
    END IF;
    -- Held to the end: an event routed to the catch-all between the move and the attach
    -- would make the attach fail.
    LOCK TABLE audit_events_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM audit_events_default WHERE id >= $1 AND id < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
END
$$;

-- Drops the partition `part` when its range ends by `before` and none of its events occurred
-- at or after `before`; false (and nothing dropped) when one did.
CREATE FUNCTION credo_audit_partition_drop(part text, before timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    rel regclass;
    bound text;
    hi_ms bigint;
    young boolean;
BEGIN
    PERFORM credo_audit_floor_check(before);
    rel := to_regclass(quote_ident(part));
    SELECT pg_get_expr(c.relpartbound, c.oid) INTO bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'audit_events'::regclass AND i.inhrelid = rel;
    IF bound IS NULL OR bound !~ '^FOR VALUES FROM \(''[0-9a-f-]{36}''\) TO \(''[0-9a-f-]{36}''\)$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('not a time partition of audit_events: %s', part);
    END IF;
    -- The first 48 bits of the upper bound: the millisecond its range ends.
    hi_ms := ('x' || substr(replace(substring(bound from 'TO \(''([0-9a-f-]{36})''\)'), '-', ''), 1, 12))::bit(48)::bigint;
    IF to_timestamp(hi_ms / 1000.0) > before THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('partition %s ends after %s', part, before);
    END IF;
    -- The parent first, as the drop takes it: an insert routed into this partition between
    -- the check and the drop could otherwise be lost with it.
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE occurred_at >= $1)', part)
        INTO young USING before;
    IF young THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', part);
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION credo_audit_floor_check(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION credo_audit_purge(timestamptz, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION credo_audit_partition_create(text, uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION credo_audit_partition_drop(text, timestamptz) FROM PUBLIC;
