-- Back to version 2 (event ids unique across tenants). Refuses while two tenants hold one
-- event id: version 2 cannot represent that, and choosing which event to drop is an
-- operator's decision. Find them with:
--   SELECT id, array_agg(tenant_id) FROM audit_events GROUP BY id HAVING count(*) > 1;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_events GROUP BY id HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'audit_events holds event ids shared by several tenants; version 2 cannot hold them (see the query in 0003_audit_tenant_key.down.sql)';
    END IF;
END
$$;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (id);
