-- Webhook delivery (issue 14). Deliveries are derived from the event log by position (the
-- checkpoint `webhooks`), one per event and matching endpoint, plus derived notices
-- (api_key.expiring, quota.threshold, rate_limit.exceeded) recorded once in webhook_notices.
-- A delivery's id is its `webhook-id`: the same on every attempt.

CREATE TABLE webhook_endpoints (
    endpoint_id     text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    url             text        NOT NULL,
    -- First failure since the last success (NULL: the last attempt succeeded, or none yet).
    failing_since   timestamptz,
    -- Set from the tenant.webhook_disabled event, cleared by tenant.webhook_enabled.
    disabled_at     timestamptz,
    disabled_reason text,
    UNIQUE (tenant_id, url)
);

CREATE TABLE webhook_deliveries (
    delivery_id     text        PRIMARY KEY,
    -- Order per endpoint: deliveries are attempted strictly in this order.
    seq             bigserial   NOT NULL UNIQUE,
    tenant_id       text        NOT NULL,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    url             text        NOT NULL,
    secret_ref      text,
    event_type      text        NOT NULL,
    -- The event id (or notice id) it carries, and the event's log position (NULL for notices).
    source_id       text        NOT NULL,
    position        bigint,
    -- The exact bytes sent (the CloudEvent JSON), so every attempt signs the same body.
    body            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    -- Retries stop here (created_at + WEBHOOK_RETRY_FOR_SECONDS; moved by a manual retry).
    deadline        timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id   text        NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt       integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    latency_ms    integer     NOT NULL,
    status_code   integer,
    error         text,
    -- The first 1 KiB of the response body.
    response_body text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Derived notices already raised (once per id: threshold and window, expiry step, minute).
CREATE TABLE webhook_notices (
    notice_id  text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
