-- Per-tenant data keys, wrapped by the KEK; outside the event log so that destroying one
-- (tenant deleted) shreds every secret sealed under it. NULL wrapped bytes = destroyed.
CREATE TABLE tenant_data_keys (
    tenant_id    text        PRIMARY KEY,
    version      integer     NOT NULL,
    kek_id       text        NOT NULL,
    nonce        bytea,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz
);

-- The secrets query table (projection `secrets`): latest version of each secret.
CREATE TABLE secrets (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    version     bigint      NOT NULL,
    nonce       text        NOT NULL,
    ciphertext  text        NOT NULL,
    dek_version integer     NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
