-- OpenID identities linked to people (policy issue, finding 7): an identity (issuer, subject)
-- signs in to the account it is linked to, and to no other — never by a matching e-mail.
-- Built by the users projection from `user.identity_linked`.
CREATE TABLE user_identities (
    issuer     text        NOT NULL,
    subject    text        NOT NULL,
    user_id    text        NOT NULL,
    provider   text        NOT NULL,
    linked_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- What a pending OpenID sign-in is for: a sign-in, linking the identity to a signed-in
-- person (`user_id`), or accepting an invite (`invite_token_hash`).
ALTER TABLE oidc_logins
    ADD COLUMN intent            text NOT NULL DEFAULT 'sign_in',
    ADD COLUMN user_id           text,
    ADD COLUMN invite_token_hash text;
