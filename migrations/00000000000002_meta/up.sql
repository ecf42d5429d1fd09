-- WABAs and phone numbers, and the generic job queue.

CREATE TABLE wabas (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meta_waba_id       text,
    name               text,
    -- 'credentials' (bring your own) or 'embedded_signup'.
    source             text NOT NULL CHECK (source IN ('credentials', 'embedded_signup')),
    -- AES-256-GCM with WAGATE_MASTER_KEY; NULL once credentials are removed.
    access_token_enc   bytea,
    token_last4        text,
    verified_at        timestamptz,
    -- Active account restrictions from Meta's account_update webhooks.
    restrictions       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX wabas_org_meta_key ON wabas (org_id, meta_waba_id) WHERE meta_waba_id IS NOT NULL;
-- One bring-your-own-credentials WABA per organization.
CREATE UNIQUE INDEX wabas_org_credentials_key ON wabas (org_id) WHERE source = 'credentials';
CREATE INDEX wabas_meta_waba_id_idx ON wabas (meta_waba_id);

CREATE TABLE phone_numbers (
    id                        uuid PRIMARY KEY,
    org_id                    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    waba_id                   uuid NOT NULL REFERENCES wabas (id) ON DELETE CASCADE,
    meta_phone_number_id      text NOT NULL,
    display_phone_number      text,
    verified_name             text,
    is_default                boolean NOT NULL DEFAULT false,
    metadata                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Health snapshot, refreshed by the resync job and by Meta's webhooks.
    status                    text,
    is_registered             boolean NOT NULL DEFAULT false,
    quality_rating            text,
    throughput_level          text,
    messaging_limit           text,
    name_status               text,
    code_verification_status  text,
    health_status             jsonb,
    app_subscribed            boolean,
    token_valid               boolean,
    last_synced_at            timestamptz,
    last_sync_error           text,
    -- Pacing: Meta's messages per second for this number.
    throughput_mps            integer NOT NULL DEFAULT 80,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
-- Inbound webhooks are routed by Meta's phone number id: one owner.
CREATE UNIQUE INDEX phone_numbers_meta_key ON phone_numbers (meta_phone_number_id);
CREATE UNIQUE INDEX phone_numbers_default_key ON phone_numbers (org_id) WHERE is_default;
CREATE INDEX phone_numbers_org_idx ON phone_numbers (org_id, created_at);

-- Background jobs, claimed with FOR UPDATE SKIP LOCKED under a lease.
CREATE TABLE jobs (
    id            bigserial PRIMARY KEY,
    org_id        uuid,
    kind          text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Deduplicates pending jobs of one kind (e.g. one resync per phone).
    unique_key    text,
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 8,
    locked_until  timestamptz,
    lease_token   uuid,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX jobs_unique_key ON jobs (kind, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_due_idx ON jobs (run_at);

CREATE FUNCTION wagate_notify_jobs() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wagate_jobs', NEW.kind);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION wagate_notify_jobs();
