-- Organizations, their users and API keys. Every tenant-owned table carries
-- org_id, so the schema can be distributed by organization later.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    plan        text NOT NULL DEFAULT 'basic' CHECK (plan IN ('basic', 'pro', 'ultra', 'mega')),
    onboarding  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email          text NOT NULL,
    name           text NOT NULL,
    role           text NOT NULL DEFAULT 'owner',
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Logins are by email, across organizations.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_id_idx ON users (org_id, created_at);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- The visible start of the key, e.g. sk_org_4f9aB2.
    prefix        text NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    key_hash      bytea NOT NULL UNIQUE,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_org_id_idx ON api_keys (org_id, created_at);
