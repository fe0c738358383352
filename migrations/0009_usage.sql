-- Usage metering: rollups built by the usage projection from the JetStream usage stream,
-- resource limits and their counters.

-- The tenant's resource limits (events: tenant.resource_limits_set).
ALTER TABLE tenants ADD COLUMN resource_limits jsonb NOT NULL DEFAULT '[]';

-- Every usage record the projection has counted, by tenant and idempotency id: a redelivered
-- or re-posted record finds its row here and is not counted again. Written in the same
-- transaction as the rollups. Rows are pruned once their record is older than ingest accepts
-- (USAGE_MAX_AGE_DAYS): a re-post of such a record is refused anyway.
CREATE TABLE usage_records (
    tenant_id   text   NOT NULL,
    record_id   text   NOT NULL,
    stream_seq  bigint NOT NULL,
    recorded_on date   NOT NULL,
    PRIMARY KEY (tenant_id, record_id)
);
CREATE INDEX usage_records_by_day ON usage_records (recorded_on);

-- The usage consumer's ack floor (every record at or below it is counted), copied from
-- JetStream every few seconds: a consumer that was deleted is recreated from here.
CREATE TABLE usage_consumer_floors (
    consumer  text   PRIMARY KEY,
    ack_floor bigint NOT NULL
);

-- Sums per tenant, sub-account, key, end-user and model, per UTC day and per UTC month.
-- '' stands for "none" in the dimension columns.
CREATE TABLE usage_rollups (
    tenant_id         text   NOT NULL,
    granularity       text   NOT NULL CHECK (granularity IN ('day', 'month')),
    bucket            date   NOT NULL,
    sub_account_id    text   NOT NULL DEFAULT '',
    key_id            text   NOT NULL DEFAULT '',
    user_id           text   NOT NULL DEFAULT '',
    model             text   NOT NULL DEFAULT '',
    records           bigint NOT NULL DEFAULT 0,
    api_calls         bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    bandwidth_bytes   bigint NOT NULL DEFAULT 0,
    storage_bytes     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, granularity, bucket, sub_account_id, key_id, user_id, model)
);
CREATE INDEX usage_rollups_by_period ON usage_rollups (granularity, bucket);

-- LLM tokens per key, sub-account and tenant for quota enforcement: for the lifetime
-- (window_start 1970-01-01), per UTC day and per UTC month (window_start = its first day).
-- `version` grows with every change so instances refresh only what changed.
CREATE SEQUENCE usage_quota_version;
CREATE TABLE usage_quota_totals (
    scope        text   NOT NULL CHECK (scope IN ('key', 'sub_account', 'tenant')),
    subject_id   text   NOT NULL,
    period       text   NOT NULL CHECK (period IN ('lifetime', 'day', 'month')),
    window_start date   NOT NULL,
    llm_tokens   bigint NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (scope, subject_id, period, window_start)
);
CREATE INDEX usage_quota_totals_by_version ON usage_quota_totals (version);

-- A sub-account quota's window (NULL: lifetime); keys keep theirs in their settings.
ALTER TABLE sub_accounts ADD COLUMN quota_period text CHECK (quota_period IN ('day', 'month'));

-- Resource-limit counters: one row per end-user, limit and calendar window (UTC). A new
-- window is a new row, so counts reset on their own.
CREATE TABLE resource_usage (
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    resource     text        NOT NULL,
    metric       text        NOT NULL,
    period       text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         bigint      NOT NULL,
    PRIMARY KEY (tenant_id, user_id, resource, metric, period, window_start)
);
