-- Back to version 7: one unpartitioned audit log. Copies every partition's rows into it (under
-- an exclusive lock, like the way up) and drops the partitions.
CREATE TABLE audit_events_unpartitioned (
    id              uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    category        text        NOT NULL
        CONSTRAINT audit_events_category_check
        CHECK (category IN ('compliance', 'security', 'operations')),
    action          text COLLATE "C" NOT NULL,
    actor           text,
    subject_user_id uuid,
    purpose         text COLLATE "C",
    decision        text,
    reason          text,
    request_id      text,
    metadata        jsonb       NOT NULL
);
INSERT INTO audit_events_unpartitioned SELECT id, tenant_id, occurred_at, category, action,
    actor, subject_user_id, purpose, decision, reason, request_id, metadata
    FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_unpartitioned RENAME TO audit_events;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_subject ON audit_events (tenant_id, subject_user_id, occurred_at, id);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_category_time ON audit_events (category, occurred_at);
