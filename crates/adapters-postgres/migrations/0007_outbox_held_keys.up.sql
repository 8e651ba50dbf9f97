-- Claims skip every key that has a pending row under a live lease (a relay's claim, or a
-- rejected row waiting for its retry) before they take their batch, so a relay that died
-- holding rows stalls only its own keys. This index finds those rows without walking the
-- pending ones: a lease that ran out keeps its claimed_until until the row is settled, so the
-- range `claimed_until > now` reads only live leases.
CREATE INDEX outbox_held ON outbox (claimed_until)
    WHERE published_at IS NULL AND dead_at IS NULL AND claimed_until IS NOT NULL;
