-- Sub-accounts: the query table (projection `sub_accounts`) and the key lookup's view of them
-- (owned by projection `api_keys`, under its checkpoint).

CREATE TABLE sub_accounts (
    sub_account_id   text        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    name             text        NOT NULL,
    role             text        NOT NULL,
    status           text        NOT NULL,
    quota_limit      bigint,
    permissions      jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL UNIQUE
);
CREATE INDEX sub_accounts_tenant ON sub_accounts (tenant_id, created_position);

CREATE TABLE key_sub_accounts (
    sub_account_id text  PRIMARY KEY,
    record         jsonb NOT NULL
);
