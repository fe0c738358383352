-- Idempotency-Key on creates. One row per (principal, route, key): claimed before the
-- handler runs, marked `committed` in the same transaction as the command's events, and given
-- the sealed answer (XChaCha20-Poly1305 under the KEK, never plain text: it can hold a key
-- shown once) right after. Kept 24 hours. Not derived from the log and not part of it: losing
-- this table only makes a retry after a lost answer create again.

CREATE TABLE idempotency_requests (
    scope       bytea       PRIMARY KEY,  -- sha256(principal, path, Idempotency-Key)
    fingerprint bytea       NOT NULL,     -- sha256(X-Tenant-ID, query, body)
    lease_until timestamptz NOT NULL,     -- while the first request may still be running
    committed   boolean     NOT NULL DEFAULT false,
    kek_id      text,
    nonce       bytea,
    answer      bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idempotency_requests_created_at ON idempotency_requests (created_at);
