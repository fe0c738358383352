//! The one table of error codes: every code the API answers, its HTTP status and its
//! meaning. [`ApiError`](crate::http::error::ApiError) carries a [`Code`]; a code has exactly
//! one status; the domain's string codes are parsed into it ([`Code::parse`]); the error
//! schema of the OpenAPI document lists them as an enum; the README table is checked against
//! [`Code::ALL`] by a test.

use axum::http::StatusCode;

macro_rules! codes {
    ($($variant:ident = $name:literal, $status:ident, $meaning:literal;)*) => {
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

            /// Its one HTTP status.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
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
    InvalidJson = "invalid_json", BAD_REQUEST, "The body is not valid JSON.";
    InvalidBody = "invalid_body", BAD_REQUEST, "The body could not be read.";
    InvalidPath = "invalid_path", BAD_REQUEST, "A path segment is malformed (or holds a control character).";
    TenantIdRequired = "tenant_id_required", BAD_REQUEST, "A tenant route called by the super admin or a platform key without `X-Tenant-ID`.";
    MissingCredentials = "missing_credentials", UNAUTHORIZED, "No credentials were sent.";
    InvalidApiKey = "invalid_api_key", UNAUTHORIZED, "The API key is unknown, wrong, revoked, disabled or expired.";
    InvalidMasterKey = "invalid_master_key", UNAUTHORIZED, "The master key is wrong.";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, "The e-mail or the password is wrong (the same answer for both).";
    InvalidSession = "invalid_session", UNAUTHORIZED, "The session is unknown, ended, idle too long or past its lifetime; sign in again.";
    SecondFactorRequired = "second_factor_required", UNAUTHORIZED, "The account needs its second factor.";
    InvalidSecondFactor = "invalid_second_factor", UNAUTHORIZED, "The TOTP or recovery code of a sign-in is wrong.";
    InvalidMfaToken = "invalid_mfa_token", UNAUTHORIZED, "The sign-in's `mfa_token` is unknown, used up (5 tries) or past its 5 minutes; sign in again.";
    OidcStateInvalid = "oidc_state_invalid", UNAUTHORIZED, "The provider's answer does not belong to a sign-in this browser started (wrong or used `state`, no `tokenhub_oidc` cookie, or older than 10 minutes).";
    OidcIdTokenInvalid = "oidc_id_token_invalid", UNAUTHORIZED, "The provider's ID token failed a check (signature, issuer, audience, expiry or nonce); the message says which.";
    OidcEmailUnverified = "oidc_email_unverified", UNAUTHORIZED, "The provider did not vouch for the e-mail (`email_verified` is not true).";
    OidcNoAccount = "oidc_no_account", UNAUTHORIZED, "No account is linked to this identity: sign in with your password and link it, or accept your invite with it.";
    OidcIdentityInUse = "oidc_identity_in_use", CONFLICT, "The identity is linked to an account already.";
    UserNotDisabled = "user_not_disabled", CONFLICT, "Only a disabled person is erased: disable them first.";
    UserErased = "user_erased", CONFLICT, "The person is erased already.";
    OidcIdentityInvalid = "oidc_identity_invalid", UNAUTHORIZED, "The provider's identity has no usable issuer or subject.";
    OidcEmailMismatch = "oidc_email_mismatch", UNAUTHORIZED, "The provider's verified e-mail is not the invited one.";
    OidcFailed = "oidc_failed", UNAUTHORIZED, "The provider refused the sign-in or the code exchange.";
    AmbiguousCredentials = "ambiguous_credentials", UNAUTHORIZED, "More than one credential was sent (two headers, or a header and the session cookie).";
    Forbidden = "forbidden", FORBIDDEN, "The principal may not perform this action.";
    CsrfFailed = "csrf_failed", FORBIDDEN, "A cookie-authenticated change without a matching `X-CSRF-Token`.";
    SecondFactorEnrolmentRequired = "second_factor_enrolment_required", FORBIDDEN, "The person's role (platform) or tenant requires TOTP: enrol it (`POST /auth/totp/enroll`) before anything else.";
    TenantSuspended = "tenant_suspended", FORBIDDEN, "The tenant is suspended.";
    TenantDeleted = "tenant_deleted", CONFLICT, "The tenant is deleted (its keys answer `invalid_api_key`).";
    TenantMismatch = "tenant_mismatch", FORBIDDEN, "`X-Tenant-ID` names another tenant than the key's.";
    TenantNotAllowed = "tenant_not_allowed", FORBIDDEN, "A platform key bound to other tenants.";
    IpNotAllowed = "ip_not_allowed", FORBIDDEN, "The key may not be used from this address.";
    PermissionsExceedIssuer = "permissions_exceed_issuer", FORBIDDEN, "A sub-account manager asked for more than its own key holds.";
    UserNotFound = "user_not_found", NOT_FOUND, "No such user.";
    SessionNotFound = "session_not_found", NOT_FOUND, "No such session of the signed-in person.";
    OidcProviderUnknown = "oidc_provider_unknown", NOT_FOUND, "No OpenID provider of that name is configured (`OIDC_PROVIDERS`).";
    TenantNotFound = "tenant_not_found", NOT_FOUND, "No such tenant.";
    ApiKeyNotFound = "api_key_not_found", NOT_FOUND, "No such key (also another tenant's).";
    SubAccountNotFound = "sub_account_not_found", NOT_FOUND, "No such sub-account (also another tenant's).";
    RoleNotFound = "role_not_found", NOT_FOUND, "No such role.";
    SecretNotFound = "secret_not_found", NOT_FOUND, "No such secret.";
    WebhookDeliveryNotFound = "webhook_delivery_not_found", NOT_FOUND, "No such webhook delivery (or another tenant's).";
    WebhookEndpointNotFound = "webhook_endpoint_not_found", NOT_FOUND, "No such webhook endpoint (or another tenant's).";
    ConfigVersionNotFound = "config_version_not_found", NOT_FOUND, "No such configuration version.";
    ResourceLimitNotFound = "resource_limit_not_found", NOT_FOUND, "No such resource limit.";
    RouteNotFound = "route_not_found", NOT_FOUND, "No such route.";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, "The route does not take this method.";
    TenantAlreadyExists = "tenant_already_exists", CONFLICT, "The tenant exists already.";
    TenantAlreadySuspended = "tenant_already_suspended", CONFLICT, "The tenant is suspended already.";
    TenantNotSuspended = "tenant_not_suspended", CONFLICT, "The tenant is not suspended.";
    ApiKeyAlreadyExists = "api_key_already_exists", CONFLICT, "The key exists already.";
    ApiKeyRevoked = "api_key_revoked", CONFLICT, "The key is revoked.";
    ApiKeyAlreadyDisabled = "api_key_already_disabled", CONFLICT, "The key is disabled already.";
    ApiKeyNotDisabled = "api_key_not_disabled", CONFLICT, "The key is not disabled.";
    ApiKeyLimitReached = "api_key_limit_reached", CONFLICT, "The plan's `max_api_keys` is reached.";
    SubAccountAlreadyExists = "sub_account_already_exists", CONFLICT, "The sub-account exists already.";
    SubAccountDeleted = "sub_account_deleted", CONFLICT, "The sub-account is deleted.";
    SubAccountAlreadyDisabled = "sub_account_already_disabled", CONFLICT, "The sub-account is disabled already.";
    SubAccountNotDisabled = "sub_account_not_disabled", CONFLICT, "The sub-account is not disabled.";
    SubAccountLimitReached = "sub_account_limit_reached", CONFLICT, "The plan's `max_sub_accounts` is reached.";
    RoleAlreadyExists = "role_already_exists", CONFLICT, "The role exists already.";
    RoleIsDefault = "role_is_default", CONFLICT, "The tenant's default role cannot be deleted.";
    RoleInUse = "role_in_use", CONFLICT, "A sub-account has the role.";
    RoleLimitReached = "role_limit_reached", CONFLICT, "`TENANT_MAX_ROLES` is reached.";
    SecretLimitReached = "secret_limit_reached", CONFLICT, "`TENANT_MAX_SECRETS` is reached.";
    UserAlreadyExists = "user_already_exists", CONFLICT, "An account with this e-mail exists.";
    UserNotActive = "user_not_active", CONFLICT, "The user has not accepted the invite yet.";
    UserDisabled = "user_disabled", CONFLICT, "The user is disabled.";
    TotpAlreadyEnrolled = "totp_already_enrolled", CONFLICT, "Two-factor authentication is already on.";
    TotpNotEnrolled = "totp_not_enrolled", CONFLICT, "Two-factor authentication is not on.";
    TotpEnrolmentNotStarted = "totp_enrolment_not_started", CONFLICT, "No pending enrolment: start with `POST /auth/totp/enroll`.";
    AggregateConflict = "aggregate_conflict", CONFLICT, "A concurrent request changed the resource; retry.";
    IdempotencyKeyInUse = "idempotency_key_in_use", CONFLICT, "The first request with this `Idempotency-Key` is still running; retry.";
    IdempotencyAnswerLost = "idempotency_answer_lost", CONFLICT, "The first request with this `Idempotency-Key` was committed but its answer was lost (server stopped); read the resource instead.";
    SecretShredded = "secret_shredded", GONE, "The tenant's data key was destroyed (the tenant is deleted).";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, "The body is over 256 KiB.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The body is not `application/json`.";
    InvalidRequest = "invalid_request", UNPROCESSABLE_ENTITY, "The body does not fit the schema; the message names the field.";
    InvalidQuery = "invalid_query", UNPROCESSABLE_ENTITY, "A query parameter is invalid.";
    InvalidHeader = "invalid_header", UNPROCESSABLE_ENTITY, "A header value holds a control character.";
    InvalidEmail = "invalid_email", UNPROCESSABLE_ENTITY, "Not an e-mail address `local@domain.tld` of at most 254 characters.";
    InvalidUserRole = "invalid_user_role", UNPROCESSABLE_ENTITY, "Not a user role of that scope.";
    InviteInvalid = "invite_invalid", UNPROCESSABLE_ENTITY, "The invite is wrong, expired or used.";
    InviteExpired = "invite_expired", UNPROCESSABLE_ENTITY, "The invite's 72 hours are over; ask for a new one.";
    WeakPassword = "weak_password", UNPROCESSABLE_ENTITY, "Passwords are 12 to 256 characters, not among the 10,000 most common, not the e-mail.";
    TotpReplayed = "totp_replayed", UNPROCESSABLE_ENTITY, "This TOTP code was already used.";
    RecoveryCodeInvalid = "recovery_code_invalid", UNPROCESSABLE_ENTITY, "The recovery code is wrong or used.";
    InvalidTotpCode = "invalid_totp_code", UNPROCESSABLE_ENTITY, "The TOTP code is wrong (six digits from the authenticator, current step ±30 s).";
    WrongPassword = "wrong_password", UNPROCESSABLE_ENTITY, "The current password is wrong.";
    InvalidIdempotencyKey = "invalid_idempotency_key", UNPROCESSABLE_ENTITY, "`Idempotency-Key` is 1 to 255 visible ASCII characters.";
    IdempotencyKeyMismatch = "idempotency_key_mismatch", UNPROCESSABLE_ENTITY, "The `Idempotency-Key` was used with another request (tenant, query or body).";
    InvalidTenantName = "invalid_tenant_name", UNPROCESSABLE_ENTITY, "Tenant names are 1 to 128 characters.";
    InvalidRegion = "invalid_region", UNPROCESSABLE_ENTITY, "Unknown region.";
    InvalidLimits = "invalid_limits", UNPROCESSABLE_ENTITY, "A limit is out of range.";
    EmptyUpdate = "empty_update", UNPROCESSABLE_ENTITY, "The update sets no field.";
    InvalidKeyName = "invalid_key_name", UNPROCESSABLE_ENTITY, "Key names are 1 to 128 characters.";
    InvalidCidr = "invalid_cidr", UNPROCESSABLE_ENTITY, "Not an IPv4 or IPv6 address or CIDR.";
    InvalidListItem = "invalid_list_item", UNPROCESSABLE_ENTITY, "A list entry is invalid.";
    TooManyEntries = "too_many_entries", UNPROCESSABLE_ENTITY, "A list is over its size limit.";
    ExpiryInPast = "expiry_in_past", UNPROCESSABLE_ENTITY, "The expiry is not in the future.";
    EmptyAllowlist = "empty_allowlist", UNPROCESSABLE_ENTITY, "An enabled allowlist needs a network.";
    AllowlistExcludesCaller = "allowlist_excludes_caller", UNPROCESSABLE_ENTITY, "The list would lock the caller out.";
    InvalidSecretName = "invalid_secret_name", UNPROCESSABLE_ENTITY, "Secret names are `[A-Z][A-Z0-9_]{0,127}`.";
    SecretTooLarge = "secret_too_large", UNPROCESSABLE_ENTITY, "Secret values are at most 64 KiB.";
    InvalidConfig = "invalid_config", UNPROCESSABLE_ENTITY, "The configuration breaks the schema; the message lists each field.";
    WebhookNotConfigured = "webhook_not_configured", UNPROCESSABLE_ENTITY, "The URL is not one of the tenant configuration's webhooks.";
    ConfigTooLarge = "config_too_large", UNPROCESSABLE_ENTITY, "The configuration is over `TENANT_MAX_CONFIG_BYTES`.";
    InvalidQuota = "invalid_quota", UNPROCESSABLE_ENTITY, "Quotas are zero or more.";
    InvalidRateLimit = "invalid_rate_limit", UNPROCESSABLE_ENTITY, "Rate limits are at least 1.";
    ReservedTagKey = "reserved_tag_key", UNPROCESSABLE_ENTITY, "Tag keys may not start with `tokenhub.`.";
    InvalidTag = "invalid_tag", UNPROCESSABLE_ENTITY, "A tag key or value is malformed.";
    InvalidGracePeriod = "invalid_grace_period", UNPROCESSABLE_ENTITY, "Grace periods end within 30 days.";
    InvalidRole = "invalid_role", UNPROCESSABLE_ENTITY, "A role name is malformed, or a key's role does not fit its owner.";
    SubAccountKeyNotData = "sub_account_key_not_data", UNPROCESSABLE_ENTITY, "Only data keys belong to sub-accounts.";
    UnknownRole = "unknown_role", UNPROCESSABLE_ENTITY, "The body names a role the tenant does not have.";
    UnknownSubAccount = "unknown_sub_account", UNPROCESSABLE_ENTITY, "The body names a sub-account the tenant does not have.";
    InvalidSubAccountName = "invalid_sub_account_name", UNPROCESSABLE_ENTITY, "Sub-account names are 1 to 128 characters.";
    QuotaExceedsTenant = "quota_exceeds_tenant", UNPROCESSABLE_ENTITY, "A sub-account's quota is over the tenant's.";
    QuotaExceedsSubAccount = "quota_exceeds_sub_account", UNPROCESSABLE_ENTITY, "A key's quota is over its sub-account's.";
    PermissionsExceedSubAccount = "permissions_exceed_sub_account", UNPROCESSABLE_ENTITY, "A key's permissions are not all its sub-account's.";
    EmptyBatch = "empty_batch", UNPROCESSABLE_ENTITY, "A batch (usage records, keys) needs at least one item.";
    BatchTooLarge = "batch_too_large", UNPROCESSABLE_ENTITY, "A batch (usage records, keys) holds at most 1,000 items.";
    InvalidUsageRecord = "invalid_usage_record", UNPROCESSABLE_ENTITY, "A usage record is invalid; the message names `records[i].field`.";
    UnknownKey = "unknown_key", UNPROCESSABLE_ENTITY, "A usage record names an unknown key.";
    FullKeyNotAccepted = "full_key_not_accepted", UNPROCESSABLE_ENTITY, "A usage record holds a full key instead of its public id.";
    RecordTenantMismatch = "record_tenant_mismatch", UNPROCESSABLE_ENTITY, "A usage record's key belongs to another tenant than the record names.";
    UnknownTenant = "unknown_tenant", UNPROCESSABLE_ENTITY, "A usage record names an unknown tenant.";
    InvalidPeriod = "invalid_period", UNPROCESSABLE_ENTITY, "Periods are `YYYY-MM`.";
    InvalidResourceLimits = "invalid_resource_limits", UNPROCESSABLE_ENTITY, "A resource limit is invalid.";
    InvalidUserId = "invalid_user_id", UNPROCESSABLE_ENTITY, "A user id is malformed.";
    InvalidAmount = "invalid_amount", UNPROCESSABLE_ENTITY, "Amounts are 1 or more.";
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, "A rate limit is reached; see `Retry-After`.";
    TooManyStreams = "too_many_streams", TOO_MANY_REQUESTS, "`LIVE_STREAMS_PER_PRINCIPAL` or `LIVE_STREAMS_MAX` live streams are open; close one or retry later.";
    SignInLocked = "sign_in_locked", TOO_MANY_REQUESTS, "Too many failed sign-ins for this account (back-off doubling from 15 s to 15 min); see `Retry-After`.";
    ResourceLimitExceeded = "resource_limit_exceeded", TOO_MANY_REQUESTS, "A `block` resource limit would be passed; see `Retry-After`.";
    ConfigVersionLimitReached = "config_version_limit_reached", TOO_MANY_REQUESTS, "`TENANT_MAX_CONFIG_VERSIONS_PER_DAY` is reached; see `Retry-After`.";
    Internal = "internal", INTERNAL_SERVER_ERROR, "A bug; logged with the request id.";
    ServiceUnavailable = "service_unavailable", SERVICE_UNAVAILABLE, "A dependency is unavailable; see `Retry-After`.";
    KeyNotYetKnown = "key_not_yet_known", SERVICE_UNAVAILABLE, "A usage record names a key this instance has not caught up with yet (issued elsewhere a moment ago); retry after `Retry-After`.";
    UsageStreamUnavailable = "usage_stream_unavailable", SERVICE_UNAVAILABLE, "The usage stream is unavailable; retry the batch.";
    RequestTimeout = "request_timeout", SERVICE_UNAVAILABLE, "The request took longer than `HTTP_REQUEST_TIMEOUT_MS`.";
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, "`HTTP_MAX_IN_FLIGHT` requests are in flight.";
    OidcProviderUnavailable = "oidc_provider_unavailable", SERVICE_UNAVAILABLE, "The OpenID provider could not be reached (discovery, keys or token endpoint); retry later.";
    AuthenticationBusy = "authentication_busy", SERVICE_UNAVAILABLE, "Every argon2 slot is busy.";
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
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn every_domain_error_code_is_in_the_table() {
        for source in [
            include_str!("../../aggregates/src/api_key/error.rs"),
            include_str!("../../aggregates/src/tenant/error.rs"),
            include_str!("../../aggregates/src/sub_account/error.rs"),
            include_str!("../../aggregates/src/secret.rs"),
            include_str!("../../aggregates/src/role/aggregate.rs"),
            include_str!("../../aggregates/src/user/error.rs"),
        ] {
            let Some(block) = source.split("fn code(&self)").nth(1) else { continue };
            let block = block.split("fn kind(&self)").next().unwrap_or_default();
            for piece in block.split("=> \"").skip(1) {
                let name = piece.split('"').next().unwrap_or_default();
                assert!(Code::parse(name).is_some(), "domain code `{name}` is not in the table");
            }
        }
    }

    #[test]
    fn the_readme_table_lists_every_code_under_its_status() {
        let readme = include_str!("../../README.md");
        let table = readme.split("### Errors").nth(1).unwrap_or_default();
        for &code in Code::ALL {
            let row = table
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", code.status().as_u16())))
                .unwrap_or_default();
            assert!(
                row.contains(&format!("`{}`", code.as_str())),
                "README: `{}` missing from the {} row",
                code.as_str(),
                code.status().as_u16()
            );
        }
    }
}
