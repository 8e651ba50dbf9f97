-- Maintenance: leases that let one service instance at a time run a job, and an index for
-- audit retention by category.
CREATE TABLE maintenance_leases (
    job         text        PRIMARY KEY,
    holder      text        NOT NULL,
    held_until  timestamptz NOT NULL
);
CREATE INDEX audit_events_category_time ON audit_events (category, occurred_at);
