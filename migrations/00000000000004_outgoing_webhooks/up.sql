-- Outgoing webhooks: the customer's endpoints, the events recorded for the
-- organization, one delivery per (event, endpoint) and a log of every attempt.
-- Events and their deliveries are inserted in the transaction of the change
-- that caused them (a transactional outbox), so none is lost or invented.

CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- Only this WABA's events when set (onboarding links); NULL: the whole organization.
    waba_id          uuid REFERENCES wabas (id) ON DELETE CASCADE,
    -- 'endpoint' (POST /v1/outgoing-webhooks) or 'forward' (PUT /auth/me/webhook, one per organization).
    kind             text NOT NULL DEFAULT 'endpoint' CHECK (kind IN ('endpoint', 'forward')),
    url              text NOT NULL,
    description      text,
    -- Event names, or '*' for every event.
    events           text[] NOT NULL CHECK (cardinality(events) > 0),
    is_active        boolean NOT NULL DEFAULT true,
    -- AES-256-GCM under WAGATE_MASTER_KEY: signing needs the plaintext, so it is encrypted, not hashed.
    secret_enc       bytea NOT NULL,
    -- Why wagate deactivated the endpoint (the receiver answered 410 Gone).
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id, created_at);
CREATE UNIQUE INDEX webhook_endpoints_forward_key ON webhook_endpoints (org_id) WHERE kind = 'forward';

-- Secrets replaced by a rotation keep signing, beside the new one, until they expire.
CREATE TABLE webhook_old_secrets (
    id           bigserial PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret_enc   bytea NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX webhook_old_secrets_endpoint_idx ON webhook_old_secrets (endpoint_id, expires_at);

-- What happened, once per organization; the envelope is built from it at delivery time.
CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- The WABA the event belongs to (for WABA-scoped endpoints), when it belongs to one.
    waba_id     uuid,
    event       text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_org_time_idx ON webhook_events (org_id, created_at, id);

-- One event to one endpoint. While a worker holds it (lease_token set),
-- next_attempt_at is the end of its lease: a crashed worker's delivery is due again then.
CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL,
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id          uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    -- The event's name, copied so the log reads without a join.
    event             text NOT NULL,
    -- 'event' (fan-out), 'replay' or 'test'.
    trigger           text NOT NULL CHECK (trigger IN ('event', 'replay', 'test')),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    lease_token       uuid,
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (endpoint_id) WHERE status = 'pending' AND lease_token IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- Every attempt: when, what the receiver answered, how long it took.
CREATE TABLE webhook_attempts (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event            text NOT NULL,
    trigger          text NOT NULL,
    attempt          integer NOT NULL,
    url              text NOT NULL,
    status_code      integer,
    duration_ms      integer NOT NULL,
    -- The start of the response body.
    response         text,
    error            text,
    -- 'succeeded', 'retrying' or 'failed' (final).
    outcome          text NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'failed')),
    next_attempt_at  timestamptz,
    -- When the attempt started.
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, created_at DESC);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
