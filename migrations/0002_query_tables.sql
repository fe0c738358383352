-- Query tables, owned by projections (tokenhub-projections). Each is rebuildable from the
-- event log; none is a source of truth.

CREATE TABLE tenants (
    tenant_id        text        PRIMARY KEY,
    name             text        NOT NULL,
    plan             text        NOT NULL,
    region           text        NOT NULL,
    status           text        NOT NULL,
    limit_overrides  jsonb       NOT NULL,
    limits           jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL UNIQUE,
    version          bigint      NOT NULL
);

-- Key lookup by public id: what authentication, verification and the key cache read.
-- `record` is the full tokenhub_projections::api_keys::KeyRecord (with the secret hash; never
-- returned by the API); the other columns serve filters and pagination.
CREATE TABLE api_keys (
    public_id        text        PRIMARY KEY,
    tenant_id        text,
    sub_account_id   text,
    role             text        NOT NULL,
    status           text        NOT NULL,
    name             text        NOT NULL,
    created_position bigint      NOT NULL UNIQUE,
    record           jsonb       NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_position);

-- Tenant status as the key lookup sees it (owned by the same projection and checkpoint).
CREATE TABLE key_tenants (
    tenant_id text PRIMARY KEY,
    status    text NOT NULL
);

-- When each key was last verified: operational data written in batches by the key cache,
-- not derived from events (no event per verification).
CREATE TABLE api_key_last_used (
    public_id    text        PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
