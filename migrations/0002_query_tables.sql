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
    admin_key_public_id text     NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL UNIQUE,
    version          bigint      NOT NULL
);

-- Key lookup by public id: the table the key cache and authentication read.
CREATE TABLE api_keys (
    public_id      text        PRIMARY KEY,
    tenant_id      text,
    kind           text        NOT NULL,
    role           text        NOT NULL,
    secret_hash    text        NOT NULL,
    status         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
