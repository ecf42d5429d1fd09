-- Inbound: fencing for the webhook processor, deduplicated early statuses,
-- template records and the WABA notices Meta posts (account, phone number,
-- template and capability updates).

-- The processor's lease: every change to a claimed delivery names the token
-- of the claim, so a worker that lost its lease cannot overwrite anything.
ALTER TABLE inbound_webhooks ADD COLUMN lease_token uuid;
-- pending | processed | unparseable | unrouted | failed (processing kept
-- failing after every retry; reprocess on request).
CREATE INDEX inbound_webhooks_problems_idx ON inbound_webhooks (received_at DESC, id DESC)
    WHERE state IN ('unparseable', 'unrouted', 'failed');

-- Meta redelivers: an early status is kept once per (phone, wamid, status).
CREATE UNIQUE INDEX orphan_statuses_key ON orphan_statuses (meta_phone_number_id, wamid, (status ->> 'status'));
CREATE INDEX orphan_statuses_received_idx ON orphan_statuses (received_at);

-- Message templates as Meta's template webhooks describe them. A later
-- templates feature (sync, create, send) adds its columns to this table.
CREATE TABLE templates (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    waba_id            uuid NOT NULL REFERENCES wabas (id) ON DELETE CASCADE,
    meta_template_id   text,
    name               text NOT NULL,
    language           text NOT NULL,
    -- APPROVED, REJECTED, PENDING, PAUSED, DISABLED, ... (Meta's words).
    status             text,
    category           text,
    previous_category  text,
    -- GREEN, YELLOW, RED, UNKNOWN.
    quality_score      text,
    reason             text,
    -- Meta's time of the status last applied: an older status webhook that
    -- arrives late does not overwrite a newer one.
    status_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX templates_name_key ON templates (waba_id, name, language);
CREATE UNIQUE INDEX templates_meta_key ON templates (waba_id, meta_template_id) WHERE meta_template_id IS NOT NULL;
CREATE INDEX templates_org_idx ON templates (org_id);

-- Every non-message notice Meta posts about a WABA or one of its phones
-- (account_update, phone_number_quality_update, template updates,
-- user_preferences, value-level errors, fields wagate does not know yet),
-- kept verbatim so operators and customers can see them.
CREATE TABLE waba_updates (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    waba_id      uuid NOT NULL REFERENCES wabas (id) ON DELETE CASCADE,
    phone_id     uuid REFERENCES phone_numbers (id) ON DELETE SET NULL,
    -- Meta's webhook field, e.g. account_update.
    field        text NOT NULL,
    -- The value's event or decision, when it names one.
    event        text,
    value        jsonb NOT NULL,
    -- Meta's entry time, else when wagate received it.
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of (field, entry time, value): a redelivery is kept once.
    dedupe_key   text NOT NULL
);
CREATE UNIQUE INDEX waba_updates_dedupe_key ON waba_updates (waba_id, dedupe_key);
CREATE INDEX waba_updates_recent_idx ON waba_updates (waba_id, received_at DESC, id);
