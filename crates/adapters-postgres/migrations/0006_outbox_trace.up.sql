-- Trace context: the W3C `traceparent` of the call that recorded the event, carried by the
-- relay into the Kafka headers. NULL for rows recorded outside a trace and for older rows.
ALTER TABLE outbox ADD COLUMN traceparent text;
