-- Two-factor sign-in and account protection (issue 12).
-- * users.totp_*: the TOTP secret, sealed (base64) under the user's own data key in
--   tenant_data_keys (keyed by the user id), as in the `user.totp_enrolled` event.
-- * totp_enrolments: a secret shown to the user but not yet confirmed with a code (sealed too).
-- * mfa_challenges: the second step of a sign-in, found by the SHA-256 of its token.
-- * sign_in_locks: failed sign-ins per account (keyed by the id derived from the e-mail, so
--   an unknown address locks exactly like a known one) and the lock they earned.
-- * tenants.require_2fa: the tenant's people must enrol TOTP before acting.

ALTER TABLE users ADD COLUMN totp_nonce text, ADD COLUMN totp_ciphertext text;

CREATE TABLE totp_enrolments (
    user_id    text        PRIMARY KEY,
    nonce      bytea       NOT NULL,
    ciphertext bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mfa_challenges (
    token_hash bytea       PRIMARY KEY,
    user_id    text        NOT NULL,
    method     text        NOT NULL,              -- password | oidc
    attempts   integer     NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL
);

CREATE TABLE sign_in_locks (
    subject         text        PRIMARY KEY,
    failures        integer     NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);

ALTER TABLE tenants ADD COLUMN require_2fa boolean NOT NULL DEFAULT false;
