-- Back to version 5: rows lose their trace context (nothing else reads it).
ALTER TABLE outbox DROP COLUMN IF EXISTS traceparent;
