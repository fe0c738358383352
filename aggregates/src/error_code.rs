//! The one table of error codes: every code the API answers, its status and its meaning,
//! and the trait every domain error implements to name its [`Code`] by type.
//!
//! A code has exactly one status (a number here: the HTTP layer renders it); the code is
//! the contract clients match on and is never renamed. The error schema of the OpenAPI
//! document lists the codes as an enum; a test holds the documented table to [`Code::ALL`].

/// Implemented by every domain error enum.
pub trait DomainError: std::error::Error {
    /// Its stable code, e.g. [`Code::TenantNotFound`] (which fixes the status).
    fn code(&self) -> Code;
}

macro_rules! codes {
    ($($variant:ident = $name:literal, $status:literal, $meaning:literal;)*) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// Its one status (an HTTP status number).
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// What it means.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }

            /// The code named `name`, if it is one.
            pub fn parse(name: &str) -> Option<Code> {
                match name { $($name => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    InvalidJson = "invalid_json", 400, "The body is not valid JSON.";
    InvalidBody = "invalid_body", 400, "The body could not be read.";
    InvalidPath = "invalid_path", 400, "A path segment is malformed (or holds a control character).";
    TenantIdRequired = "tenant_id_required", 400, "A tenant route called by the super admin or a platform key without `X-Tenant-ID`.";
    MissingCredentials = "missing_credentials", 401, "No credentials were sent.";
    InvalidApiKey = "invalid_api_key", 401, "The API key is unknown, wrong, revoked, disabled or expired.";
    InvalidMasterKey = "invalid_master_key", 401, "The master key is wrong.";
    InvalidCredentials = "invalid_credentials", 401, "The e-mail or the password is wrong (the same answer for both).";
    InvalidSession = "invalid_session", 401, "The session is unknown, ended, idle too long or past its lifetime; sign in again.";
    SecondFactorRequired = "second_factor_required", 401, "The account needs its second factor.";
    InvalidSecondFactor = "invalid_second_factor", 401, "The TOTP or recovery code of a sign-in is wrong.";
    InvalidMfaToken = "invalid_mfa_token", 401, "The sign-in's `mfa_token` is unknown, used up (5 tries) or past its 5 minutes; sign in again.";
    OidcStateInvalid = "oidc_state_invalid", 401, "The provider's answer does not belong to a sign-in this browser started (wrong or used `state`, no `tokenhub_oidc` cookie, or older than 10 minutes).";
    OidcIdTokenInvalid = "oidc_id_token_invalid", 401, "The provider's ID token failed a check (signature, issuer, audience, expiry or nonce); the message says which.";
    OidcEmailUnverified = "oidc_email_unverified", 401, "The provider did not vouch for the e-mail (`email_verified` is not true).";
    OidcNoAccount = "oidc_no_account", 401, "No account is linked to this identity: sign in with your password and link it, or accept your invite with it.";
    OidcIdentityInUse = "oidc_identity_in_use", 409, "The identity is linked to an account already.";
    UserNotDisabled = "user_not_disabled", 409, "Only a disabled person is erased: disable them first.";
    UserErased = "user_erased", 409, "The person is erased already.";
    OidcIdentityInvalid = "oidc_identity_invalid", 401, "The provider's identity has no usable issuer or subject.";
    OidcEmailMismatch = "oidc_email_mismatch", 401, "The provider's verified e-mail is not the invited one.";
    OidcFailed = "oidc_failed", 401, "The provider refused the sign-in or the code exchange.";
    AmbiguousCredentials = "ambiguous_credentials", 401, "More than one credential was sent (two headers, or a header and the session cookie).";
    Forbidden = "forbidden", 403, "The principal may not perform this action.";
    CsrfFailed = "csrf_failed", 403, "A cookie-authenticated change without a matching `X-CSRF-Token`.";
    SecondFactorEnrolmentRequired = "second_factor_enrolment_required", 403, "The person's role (platform) or tenant requires TOTP: enrol it (`POST /auth/totp/enroll`) before anything else.";
    TenantSuspended = "tenant_suspended", 403, "The tenant is suspended.";
    TenantDeleted = "tenant_deleted", 409, "The tenant is deleted (its keys answer `invalid_api_key`).";
    TenantMismatch = "tenant_mismatch", 403, "`X-Tenant-ID` names another tenant than the key's.";
    TenantNotAllowed = "tenant_not_allowed", 403, "A platform key bound to other tenants.";
    IpNotAllowed = "ip_not_allowed", 403, "The key may not be used from this address.";
    PermissionsExceedIssuer = "permissions_exceed_issuer", 403, "A sub-account manager asked for more than its own key holds.";
    UserNotFound = "user_not_found", 404, "No such user.";
    SessionNotFound = "session_not_found", 404, "No such session of the signed-in person.";
    OidcProviderUnknown = "oidc_provider_unknown", 404, "No OpenID provider of that name is configured (`OIDC_PROVIDERS`).";
    TenantNotFound = "tenant_not_found", 404, "No such tenant.";
    ApiKeyNotFound = "api_key_not_found", 404, "No such key (also another tenant's).";
    SubAccountNotFound = "sub_account_not_found", 404, "No such sub-account (also another tenant's).";
    RoleNotFound = "role_not_found", 404, "No such role.";
    SecretNotFound = "secret_not_found", 404, "No such secret.";
    WebhookDeliveryNotFound = "webhook_delivery_not_found", 404, "No such webhook delivery (or another tenant's).";
    WebhookEndpointNotFound = "webhook_endpoint_not_found", 404, "No such webhook endpoint (or another tenant's).";
    ConfigVersionNotFound = "config_version_not_found", 404, "No such configuration version.";
    ResourceLimitNotFound = "resource_limit_not_found", 404, "No such resource limit.";
    RouteNotFound = "route_not_found", 404, "No such route.";
    MethodNotAllowed = "method_not_allowed", 405, "The route does not take this method.";
    TenantAlreadyExists = "tenant_already_exists", 409, "The tenant exists already.";
    TenantAlreadySuspended = "tenant_already_suspended", 409, "The tenant is suspended already.";
    TenantNotSuspended = "tenant_not_suspended", 409, "The tenant is not suspended.";
    ApiKeyAlreadyExists = "api_key_already_exists", 409, "The key exists already.";
    ApiKeyRevoked = "api_key_revoked", 409, "The key is revoked.";
    ApiKeyAlreadyDisabled = "api_key_already_disabled", 409, "The key is disabled already.";
    ApiKeyNotDisabled = "api_key_not_disabled", 409, "The key is not disabled.";
    ApiKeyLimitReached = "api_key_limit_reached", 409, "The plan's `max_api_keys` is reached.";
    SubAccountAlreadyExists = "sub_account_already_exists", 409, "The sub-account exists already.";
    SubAccountDeleted = "sub_account_deleted", 409, "The sub-account is deleted.";
    SubAccountAlreadyDisabled = "sub_account_already_disabled", 409, "The sub-account is disabled already.";
    SubAccountNotDisabled = "sub_account_not_disabled", 409, "The sub-account is not disabled.";
    SubAccountLimitReached = "sub_account_limit_reached", 409, "The plan's `max_sub_accounts` is reached.";
    RoleAlreadyExists = "role_already_exists", 409, "The role exists already.";
    RoleIsDefault = "role_is_default", 409, "The tenant's default role cannot be deleted.";
    RoleInUse = "role_in_use", 409, "A sub-account has the role.";
    RoleLimitReached = "role_limit_reached", 409, "`TENANT_MAX_ROLES` is reached.";
    SecretLimitReached = "secret_limit_reached", 409, "`TENANT_MAX_SECRETS` is reached.";
    UserAlreadyExists = "user_already_exists", 409, "An account with this e-mail exists.";
    UserNotActive = "user_not_active", 409, "The user has not accepted the invite yet.";
    UserDisabled = "user_disabled", 409, "The user is disabled.";
    TotpAlreadyEnrolled = "totp_already_enrolled", 409, "Two-factor authentication is already on.";
    TotpNotEnrolled = "totp_not_enrolled", 409, "Two-factor authentication is not on.";
    TotpEnrolmentNotStarted = "totp_enrolment_not_started", 409, "No pending enrolment: start with `POST /auth/totp/enroll`.";
    AggregateConflict = "aggregate_conflict", 409, "A concurrent request changed the resource; retry.";
    IdempotencyKeyInUse = "idempotency_key_in_use", 409, "The first request with this `Idempotency-Key` is still running; retry.";
    IdempotencyAnswerLost = "idempotency_answer_lost", 409, "The first request with this `Idempotency-Key` was committed but its answer was lost (server stopped); read the resource instead.";
    SecretShredded = "secret_shredded", 410, "The tenant's data key was destroyed (the tenant is deleted).";
    PayloadTooLarge = "payload_too_large", 413, "The body is over 256 KiB.";
    UnsupportedMediaType = "unsupported_media_type", 415, "The body is not `application/json`.";
    InvalidRequest = "invalid_request", 422, "The body does not fit the schema; the message names the field.";
    InvalidQuery = "invalid_query", 422, "A query parameter is invalid.";
    InvalidHeader = "invalid_header", 422, "A header value holds a control character.";
    InvalidEmail = "invalid_email", 422, "Not an e-mail address `local@domain.tld` of at most 254 characters.";
    InvalidUserRole = "invalid_user_role", 422, "Not a user role of that scope.";
    InviteInvalid = "invite_invalid", 422, "The invite is wrong, expired or used.";
    InviteExpired = "invite_expired", 422, "The invite's 72 hours are over; ask for a new one.";
    WeakPassword = "weak_password", 422, "Passwords are 12 to 256 characters, not among the 10,000 most common, not the e-mail.";
    TotpReplayed = "totp_replayed", 422, "This TOTP code was already used.";
    RecoveryCodeInvalid = "recovery_code_invalid", 422, "The recovery code is wrong or used.";
    InvalidTotpCode = "invalid_totp_code", 422, "The TOTP code is wrong (six digits from the authenticator, current step ±30 s).";
    WrongPassword = "wrong_password", 422, "The current password is wrong.";
    InvalidIdempotencyKey = "invalid_idempotency_key", 422, "`Idempotency-Key` is 1 to 255 visible ASCII characters.";
    IdempotencyKeyMismatch = "idempotency_key_mismatch", 422, "The `Idempotency-Key` was used with another request (tenant, query or body).";
    InvalidTenantName = "invalid_tenant_name", 422, "Tenant names are 1 to 128 characters.";
    InvalidRegion = "invalid_region", 422, "Unknown region.";
    InvalidLimits = "invalid_limits", 422, "A limit is out of range.";
    EmptyUpdate = "empty_update", 422, "The update sets no field.";
    InvalidKeyName = "invalid_key_name", 422, "Key names are 1 to 128 characters.";
    InvalidCidr = "invalid_cidr", 422, "Not an IPv4 or IPv6 address or CIDR.";
    InvalidListItem = "invalid_list_item", 422, "A list entry is invalid.";
    TooManyEntries = "too_many_entries", 422, "A list is over its size limit.";
    ExpiryInPast = "expiry_in_past", 422, "The expiry is not in the future.";
    EmptyAllowlist = "empty_allowlist", 422, "An enabled allowlist needs a network.";
    AllowlistExcludesCaller = "allowlist_excludes_caller", 422, "The list would lock the caller out.";
    InvalidSecretName = "invalid_secret_name", 422, "Secret names are `[A-Z][A-Z0-9_]{0,127}`.";
    SecretTooLarge = "secret_too_large", 422, "Secret values are at most 64 KiB.";
    InvalidConfig = "invalid_config", 422, "The configuration breaks the schema; the message lists each field.";
    WebhookNotConfigured = "webhook_not_configured", 422, "The URL is not one of the tenant configuration's webhooks.";
    ConfigTooLarge = "config_too_large", 422, "The configuration is over `TENANT_MAX_CONFIG_BYTES`.";
    InvalidQuota = "invalid_quota", 422, "Quotas are zero or more.";
    InvalidRateLimit = "invalid_rate_limit", 422, "Rate limits are at least 1.";
    ReservedTagKey = "reserved_tag_key", 422, "Tag keys may not start with `tokenhub.`.";
    InvalidTag = "invalid_tag", 422, "A tag key or value is malformed.";
    InvalidGracePeriod = "invalid_grace_period", 422, "Grace periods end within 30 days.";
    InvalidRole = "invalid_role", 422, "A role name is malformed, or a key's role does not fit its owner.";
    SubAccountKeyNotData = "sub_account_key_not_data", 422, "Only data keys belong to sub-accounts.";
    UnknownRole = "unknown_role", 422, "The body names a role the tenant does not have.";
    UnknownSubAccount = "unknown_sub_account", 422, "The body names a sub-account the tenant does not have.";
    InvalidSubAccountName = "invalid_sub_account_name", 422, "Sub-account names are 1 to 128 characters.";
    QuotaExceedsTenant = "quota_exceeds_tenant", 422, "A sub-account's quota is over the tenant's.";
    QuotaExceedsSubAccount = "quota_exceeds_sub_account", 422, "A key's quota is over its sub-account's.";
    PermissionsExceedSubAccount = "permissions_exceed_sub_account", 422, "A key's permissions are not all its sub-account's.";
    EmptyBatch = "empty_batch", 422, "A batch (usage records, keys) needs at least one item.";
    BatchTooLarge = "batch_too_large", 422, "A batch (usage records, keys) holds at most 1,000 items.";
    InvalidUsageRecord = "invalid_usage_record", 422, "A usage record is invalid; the message names `records[i].field`.";
    UnknownKey = "unknown_key", 422, "A usage record names an unknown key.";
    FullKeyNotAccepted = "full_key_not_accepted", 422, "A usage record holds a full key instead of its public id.";
    RecordTenantMismatch = "record_tenant_mismatch", 422, "A usage record's key belongs to another tenant than the record names.";
    UnknownTenant = "unknown_tenant", 422, "A usage record names an unknown tenant.";
    InvalidPeriod = "invalid_period", 422, "Periods are `YYYY-MM`.";
    InvalidResourceLimits = "invalid_resource_limits", 422, "A resource limit is invalid.";
    InvalidUserId = "invalid_user_id", 422, "A user id is malformed.";
    InvalidAmount = "invalid_amount", 422, "Amounts are 1 or more.";
    RateLimited = "rate_limited", 429, "A rate limit is reached; see `Retry-After`.";
    TooManyStreams = "too_many_streams", 429, "`LIVE_STREAMS_PER_PRINCIPAL` or `LIVE_STREAMS_MAX` live streams are open; close one or retry later.";
    SignInLocked = "sign_in_locked", 429, "Too many failed sign-ins for this account (back-off doubling from 15 s to 15 min); see `Retry-After`.";
    ResourceLimitExceeded = "resource_limit_exceeded", 429, "A `block` resource limit would be passed; see `Retry-After`.";
    ConfigVersionLimitReached = "config_version_limit_reached", 429, "`TENANT_MAX_CONFIG_VERSIONS_PER_DAY` is reached; see `Retry-After`.";
    Internal = "internal", 500, "A bug; logged with the request id.";
    ServiceUnavailable = "service_unavailable", 503, "A dependency is unavailable; see `Retry-After`.";
    KeyNotYetKnown = "key_not_yet_known", 503, "A usage record names a key this instance has not caught up with yet (issued elsewhere a moment ago); retry after `Retry-After`.";
    UsageStreamUnavailable = "usage_stream_unavailable", 503, "The usage stream is unavailable; retry the batch.";
    RequestTimeout = "request_timeout", 503, "The request took longer than `HTTP_REQUEST_TIMEOUT_MS`.";
    Overloaded = "overloaded", 503, "`HTTP_MAX_IN_FLIGHT` requests are in flight.";
    OidcProviderUnavailable = "oidc_provider_unavailable", 503, "The OpenID provider could not be reached (discovery, keys or token endpoint); retry later.";
    AuthenticationBusy = "authentication_busy", 503, "Every argon2 slot is busy.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_listed_once_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()));
        }
    }
}
