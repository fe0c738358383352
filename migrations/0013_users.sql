-- People (issue 12): the `users` query table (projection `users`) and the server-side
-- sessions. A user's id is derived from the normalised e-mail, so the event store's
-- aggregate key makes one account per address; the unique index here is a second guard.
-- Sessions are not events: they are short-lived, stored by the SHA-256 of their id only.

CREATE TABLE users (
    user_id           text        PRIMARY KEY,
    email             text        NOT NULL UNIQUE,
    scope             text        NOT NULL,          -- platform | tenant
    tenant_id         text,
    role              text        NOT NULL,
    status            text        NOT NULL,          -- invited | active | disabled
    password_hash     text,                          -- argon2id PHC string
    invite_token_hash text        UNIQUE,
    invite_expires_at timestamptz,
    totp_enrolled     boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    created_position  bigint      NOT NULL UNIQUE
);
CREATE INDEX users_tenant ON users (tenant_id, created_position);

CREATE TABLE user_sessions (
    id_hash          bytea       PRIMARY KEY,        -- sha256 of the cookie value
    csrf_hash        bytea       NOT NULL,           -- sha256 of the CSRF token
    user_id          text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    absolute_expires timestamptz NOT NULL,
    user_agent       text        NOT NULL DEFAULT '',
    source_ip        text        NOT NULL DEFAULT ''
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
