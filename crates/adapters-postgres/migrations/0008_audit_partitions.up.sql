-- credo-storage PostgreSQL schema, version 8: the audit log is partitioned by range of its
-- event ids. Ids are UUIDv7, whose first 48 bits are the millisecond they were minted, so a
-- range of ids is a range of recording time; and because the partition key is the id, the key
-- (tenant_id, id) stays one primary key over every partition: a redelivered event is skipped
-- however old it is. The maintenance runner creates partitions ahead and drops whole ones past
-- retention (docs/maintenance.md). Ids outside every partition (not UUIDv7, or minted before
-- the first partition or far ahead) go to audit_events_default, purged row by row.
--
-- This copies the whole log once, under an exclusive lock: plan it for a quiet moment on a
-- big log (docs/scale.md gives the rate).
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned
    RENAME CONSTRAINT audit_events_pkey TO audit_events_unpartitioned_pkey;
DROP INDEX audit_events_tenant_time, audit_events_subject, audit_events_time,
    audit_events_category_time;

CREATE TABLE audit_events (
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
) PARTITION BY RANGE (id);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

INSERT INTO audit_events SELECT id, tenant_id, occurred_at, category, action, actor,
    subject_user_id, purpose, decision, reason, request_id, metadata
    FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;

ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_subject ON audit_events (tenant_id, subject_user_id, occurred_at, id);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_category_time ON audit_events (category, occurred_at);
-- The catch-all's own index on the id alone: a new partition takes the events of its range
-- that were kept here (minted ahead of it) without walking the catch-all.
CREATE INDEX audit_events_default_id ON audit_events_default (id);
