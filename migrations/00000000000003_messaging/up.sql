-- Contacts, conversations, messages with their timeline, idempotency keys,
-- and Meta's raw webhook deliveries.

-- A WhatsApp user known inside one phone inbox.
CREATE TABLE contacts (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    phone_id         uuid NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    -- The stable key: the BSUID when known, else the phone / WhatsApp id.
    identifier       text NOT NULL,
    identifier_type  text NOT NULL CHECK (identifier_type IN ('phone', 'bsuid', 'wa_id', 'username')),
    wa_id            text,
    bsuid            text,
    parent_bsuid     text,
    username         text,
    profile_name     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX contacts_identifier_key ON contacts (phone_id, identifier);
CREATE INDEX contacts_wa_id_idx ON contacts (phone_id, wa_id) WHERE wa_id IS NOT NULL;
CREATE INDEX contacts_bsuid_idx ON contacts (phone_id, bsuid) WHERE bsuid IS NOT NULL;
CREATE INDEX contacts_org_idx ON contacts (org_id);

CREATE TABLE conversations (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    phone_id          uuid NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    contact_id        uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    last_message_at   timestamptz,
    -- The 24-hour customer-service window runs from the last inbound message.
    last_inbound_at   timestamptz,
    unread_count      integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX conversations_contact_key ON conversations (phone_id, contact_id);
CREATE INDEX conversations_recent_idx ON conversations (phone_id, last_message_at DESC NULLS LAST, id);

-- The messages table is also the dispatcher's outbox.
CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    phone_id         uuid NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    conversation_id  uuid REFERENCES conversations (id) ON DELETE SET NULL,
    contact_id       uuid REFERENCES contacts (id) ON DELETE SET NULL,
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type             text NOT NULL,
    -- The platform guide's read shape.
    content          jsonb NOT NULL,
    -- Outbound: the Graph request body. Inbound: Meta's raw message object.
    payload          jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'scheduled', 'processing', 'retrying', 'sent', 'delivered', 'read', 'failed')),
    recipient        text,
    wamid            text,
    batch_id         uuid,
    send_at          timestamptz,
    -- Dispatcher: when the message is next due, and the lease on it.
    next_attempt_at  timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    lease_token      uuid,
    -- A dispatch whose outcome is unknown (read timeout, lost lease).
    unknown_since    timestamptz,
    unknown_reason   text,
    error_code       bigint,
    error_title      text,
    error_details    text,
    error_message    text,
    pricing          jsonb,
    warnings         jsonb NOT NULL DEFAULT '[]'::jsonb,
    meta_timestamp   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX messages_wamid_key ON messages (phone_id, wamid) WHERE wamid IS NOT NULL;
CREATE INDEX messages_wamid_idx ON messages (wamid) WHERE wamid IS NOT NULL;
CREATE INDEX messages_due_idx ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled', 'retrying');
CREATE INDEX messages_processing_idx ON messages (lease_until) WHERE status = 'processing';
CREATE INDEX messages_org_created_idx ON messages (org_id, created_at DESC, id);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at DESC, id);
CREATE INDEX messages_batch_idx ON messages (batch_id) WHERE batch_id IS NOT NULL;

-- Every status change of a message: its delivery timeline.
CREATE TABLE message_events (
    id             bigserial PRIMARY KEY,
    org_id         uuid NOT NULL,
    message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status         text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    attempt        integer,
    error_code     bigint,
    error_title    text,
    error_details  text,
    error_message  text,
    pricing        jsonb,
    source         text NOT NULL,
    note           text
);
CREATE INDEX message_events_message_idx ON message_events (message_id, id);
-- A status from Meta is recorded once, however often it is delivered.
CREATE UNIQUE INDEX message_events_webhook_key ON message_events (message_id, status) WHERE source = 'webhook';

-- Idempotency keys, scoped per organization, kept 24 h.
CREATE TABLE idempotency_keys (
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key              text NOT NULL,
    rpc              text NOT NULL,
    fingerprint      bytea NOT NULL,
    response         bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Meta's webhook deliveries, stored raw before the 200.
CREATE TABLE inbound_webhooks (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    body          bytea NOT NULL,
    -- pending | processed | unparseable | unrouted
    state         text NOT NULL DEFAULT 'pending',
    attempts      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    processed_at  timestamptz,
    last_error    text,
    -- Meta phone number ids the payload names that no organization owns.
    unrouted_phone_ids  text[]
);
CREATE INDEX inbound_webhooks_pending_idx ON inbound_webhooks (id) WHERE state = 'pending';
CREATE INDEX inbound_webhooks_state_idx ON inbound_webhooks (state, received_at);

-- Statuses for a wamid not (yet) known: reconciled when the send commits.
CREATE TABLE orphan_statuses (
    id               bigserial PRIMARY KEY,
    meta_phone_number_id text NOT NULL,
    wamid            text NOT NULL,
    status           jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orphan_statuses_wamid_idx ON orphan_statuses (wamid);

-- Per-phone pacing (GCRA theoretical arrival time), shared by every instance.
ALTER TABLE phone_numbers ADD COLUMN pacing_tat timestamptz NOT NULL DEFAULT now();
-- Per (phone, recipient) pacing at Meta's pair rate.
CREATE UNLOGGED TABLE pair_pacing (
    phone_id   uuid NOT NULL,
    recipient  text NOT NULL,
    tat        timestamptz NOT NULL,
    PRIMARY KEY (phone_id, recipient)
);
