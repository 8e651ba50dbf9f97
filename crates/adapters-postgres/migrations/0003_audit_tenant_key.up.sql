-- credo-storage PostgreSQL schema, version 3: audit event ids deduplicate per tenant, so one
-- tenant's event id can never suppress another tenant's event. The key is rebuilt (an index
-- build over audit_events, under an exclusive lock: plan it for a quiet moment on a big log).
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (tenant_id, id);
