-- Sign-ins started at an OpenID provider and not yet back (issue 12): found by the SHA-256 of
-- the `state` parameter, bound to the browser that started them by the SHA-256 of the
-- `tokenhub_oidc` cookie, with the nonce the ID token must carry and the PKCE verifier
-- (sealed under the KEK). Ten minutes, used once.

CREATE TABLE oidc_logins (
    state_hash      bytea       PRIMARY KEY,
    provider        text        NOT NULL,
    binding_hash    bytea       NOT NULL,
    nonce           text        NOT NULL,
    verifier_nonce  bytea       NOT NULL,
    verifier_sealed bytea       NOT NULL,
    expires_at      timestamptz NOT NULL
);
