-- credo-storage PostgreSQL schema, version 1.
-- Timestamps are timestamptz (microsecond precision, as every backend keeps them).
-- Text compared or ordered by the stores uses COLLATE "C" so ordering matches every backend.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    email          text        NOT NULL,
    -- trimmed, lower-cased in Rust (credo_ports::validate::email_key), so every backend folds
    -- case identically whatever the database locale
    email_key      text        NOT NULL,
    email_verified boolean     NOT NULL,
    first_name     text        NOT NULL,
    last_name      text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL,
    CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email_key)
);
CREATE INDEX users_tenant_created ON users (tenant_id, created_at, id);

CREATE TABLE sessions (
    id                uuid PRIMARY KEY,
    tenant_id         uuid        NOT NULL,
    user_id           uuid        NOT NULL,
    client_id         text        NOT NULL,
    scopes            text[]      NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending_consent', 'active', 'revoked')),
    user_agent        text,
    ip_address        text,
    device_id         text,
    device_name       text,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    last_refreshed_at timestamptz,
    revoked_at        timestamptz,
    version           bigint      NOT NULL
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE revoked_tokens (
    tenant_id  uuid        NOT NULL,
    jti        text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);

CREATE TABLE consents (
    id         uuid PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    purpose    text COLLATE "C" NOT NULL,
    granted_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    version    bigint      NOT NULL,
    CONSTRAINT consents_tenant_user_purpose UNIQUE (tenant_id, user_id, purpose)
);

CREATE TABLE audit_events (
    id              uuid PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    category        text        NOT NULL CHECK (category IN ('compliance', 'security', 'operations')),
    action          text COLLATE "C" NOT NULL,
    actor           text,
    subject_user_id uuid,
    purpose         text COLLATE "C",
    decision        text,
    reason          text,
    request_id      text,
    metadata        jsonb       NOT NULL
);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_subject ON audit_events (tenant_id, subject_user_id, occurred_at, id);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

-- Transactional outbox: stores insert here in the transaction of the change. A claim sets
-- claimed_until (a lease) under FOR UPDATE SKIP LOCKED, so two relays never hold one row.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    tenant_id     uuid        NOT NULL,
    event_type    text        NOT NULL,
    payload       jsonb       NOT NULL,
    enqueued_at   timestamptz NOT NULL,
    claimed_until timestamptz,
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- GCRA state: one theoretical arrival time (microseconds since the epoch) per key.
CREATE TABLE rate_limits (
    tenant_id uuid   NOT NULL,
    key       text COLLATE "C" NOT NULL,
    tat_us    bigint NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX rate_limits_tat ON rate_limits (tat_us);
