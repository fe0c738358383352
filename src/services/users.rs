//! People: invites, accepting them with a password, signing in with a password, and what a
//! signed-in person may do — the principal of the same role (`principal_for`), so the one
//! decision table (`auth::authorize`) decides for keys and people alike.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyRole;
use tokenhub_aggregates::user::{normalise_email, Membership, SignInMethod, UserCommand, USER_ID_PREFIX};

use crate::auth::password::{check_policy, PasswordProblem};
use crate::auth::Principal;
use crate::commands::{execute, CommandMetadata, RequestMeta};
use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::sessions::{self, NewSession};

/// How long an invite works.
pub const INVITE_LIFETIME: time::Duration = time::Duration::hours(72);

/// A user as sign-in reads it (`users`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub user_id: String,
    /// E-mail.
    pub email: String,
    /// `platform` or `tenant`.
    pub scope: String,
    /// Tenant, for tenant users.
    pub tenant_id: Option<String>,
    /// Role.
    pub role: String,
    /// `invited`, `active`, `disabled`.
    pub status: String,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    /// TOTP on.
    pub totp_enrolled: bool,
}

const SELECT: &str =
    "SELECT user_id, email, scope, tenant_id, role, status, password_hash, totp_enrolled FROM users";

/// The user with `user_id`.
pub async fn by_id(pool: &PgPool, user_id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE user_id = $1")).bind(user_id).fetch_optional(pool).await
}

/// The id of the account of (normalised) `email`: derived from it, so the event store's
/// aggregate key keeps one account per address.
pub fn user_id_for(email: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(format!("tokenhub:user:{email}").as_bytes());
    let tail: String = digest
        .iter()
        .take(tokenhub_aggregates::ids::ID_RANDOM_LEN)
        .map(|b| ALPHABET[*b as usize % 62] as char)
        .collect();
    format!("{USER_ID_PREFIX}{tail}")
}

/// The principal a signed-in user acts as: the one of the same role. `tenant_viewer` reads
/// like `tenant_finance` (its tenant, usage, resource limits).
pub fn principal_for(user: &UserRow) -> Option<Principal> {
    let platform = |role| Principal::PlatformKey {
        public_id: user.user_id.clone(),
        role,
        tenant_ids: std::sync::Arc::from(Vec::new()),
    };
    let tenant = |role| {
        Some(Principal::TenantKey {
            tenant_id: user.tenant_id.clone()?,
            public_id: user.user_id.clone(),
            role,
            sub_account_id: None,
            permissions: vec![],
        })
    };
    match (user.scope.as_str(), user.role.as_str()) {
        ("platform", "super_admin") => Some(Principal::SuperAdmin),
        ("platform", "finance_admin") => Some(platform(KeyRole::FinanceAdmin)),
        ("platform", "auditor") => Some(platform(KeyRole::Auditor)),
        ("tenant", "tenant_admin") => tenant(KeyRole::TenantAdmin),
        ("tenant", "tenant_finance" | "tenant_viewer") => tenant(KeyRole::TenantFinance),
        _ => None,
    }
}

/// What events and the query table keep of an invite token: its SHA-256, in hex.
fn invite_token_hash(token: &str) -> String {
    crate::auth::hashing::hex(&Sha256::digest(token.as_bytes()))
}

/// An invite, shown once.
#[derive(Debug, Clone)]
pub struct Invite {
    /// The user.
    pub user_id: String,
    /// The link with the token.
    pub invite_url: String,
    /// When it stops working.
    pub invite_expires_at: OffsetDateTime,
}

/// Invites `email` with `membership`.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestMeta,
    email: &str,
    membership: Membership,
) -> ApiResult<Invite> {
    let email = normalise_email(email)
        .ok_or_else(|| ApiError::new(Code::InvalidRequest, "email must be an address local@domain.tld"))?;
    if let Some(tenant_id) = membership.tenant_id() {
        if state.keys.tenant_status(tenant_id).is_none() {
            return Err(ApiError::new(Code::UnknownTenant, "no such tenant"));
        }
    }
    let user_id = user_id_for(&email);
    let token = crate::auth::random_alphanumeric(43);
    let now = OffsetDateTime::now_utc();
    let expires = now + INVITE_LIFETIME;
    let command = UserCommand::Invite {
        user_id: user_id.clone(),
        email,
        membership: membership.clone(),
        invite_token_hash: invite_token_hash(&token),
        invite_expires_at: expires,
        at: now,
    };
    let meta = CommandMetadata::new(principal, ctx, membership.tenant_id());
    execute(&state.commands.users, &user_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    let invite_url = format!("{}/auth/invites/{token}", state.limits.public_url);
    tracing::info!(user_id = %user_id, "user invited");
    Ok(Invite { user_id, invite_url, invite_expires_at: expires })
}

fn password_error(problem: PasswordProblem) -> ApiError {
    ApiError::new(Code::WeakPassword, problem.to_string())
}

/// Accepts the invite of `token` with a first `password`.
pub async fn accept(state: &AppState, ctx: &RequestMeta, token: &str, password: &str) -> ApiResult<UserRow> {
    let hash = invite_token_hash(token);
    let row: Option<UserRow> = sqlx::query_as(&format!("{SELECT} WHERE invite_token_hash = $1"))
        .bind(&hash)
        .fetch_optional(&state.pool)
        .await?;
    let Some(user) = row else {
        return Err(ApiError::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)"));
    };
    check_policy(password, &user.email).map_err(password_error)?;
    let password_hash = state.passwords.hash(password).await.map_err(|_| busy())?;
    let command =
        UserCommand::AcceptInvite { invite_token_hash: hash, password_hash, at: OffsetDateTime::now_utc() };
    let meta = metadata_of(&user, ctx);
    execute(&state.commands.users, &user.user_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    Ok(user)
}

/// Metadata of a command the person `user` causes (accepting, signing in).
fn metadata_of(user: &UserRow, ctx: &RequestMeta) -> CommandMetadata {
    CommandMetadata::person(&user.user_id, &user.email, ctx, user.tenant_id.as_deref())
}

fn busy() -> ApiError {
    ApiError::new(Code::AuthenticationBusy, "too many sign-ins at once; retry later").retry_after(1)
}

fn bad_credentials() -> ApiError {
    ApiError::new(Code::InvalidCredentials, "the e-mail or the password is wrong")
}

/// Signs in with e-mail and password; starts a session. Unknown e-mails and wrong passwords
/// get the same answer in the same time (a decoy hash is checked); failures from one address
/// are throttled like failed key authentications.
pub async fn login(
    state: &AppState,
    ctx: &RequestMeta,
    ip: Option<std::net::IpAddr>,
    email: &str,
    password: &str,
) -> ApiResult<(UserRow, NewSession)> {
    if let Some(retry) = state.throttles.auth_blocked(ip) {
        return Err(ApiError::new(
            Code::RateLimited,
            format!("too many failed sign-ins; retry in {retry} s"),
        )
        .retry_after(retry));
    }
    let email = normalise_email(email).unwrap_or_default();
    let user = by_id(&state.pool, &user_id_for(&email)).await?;
    let phc = user.as_ref().filter(|u| u.status == "active").and_then(|u| u.password_hash.as_deref());
    let ok = state.passwords.verify(password, phc).await.map_err(|_| busy())?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        (_, user) => {
            state.throttles.record_auth_failure(ip);
            if let Some(user) = user {
                let command = UserCommand::RecordSignInFailure {
                    reason: "password".into(),
                    at: OffsetDateTime::now_utc(),
                };
                let meta = metadata_of(&user, ctx);
                if let Err(e) = execute(&state.commands.users, &user.user_id, command, meta).await {
                    tracing::warn!(error = %e, "cannot record a failed sign-in");
                }
            }
            tracing::info!(msg = "Sign-in failed", "sign-in failed");
            return Err(bad_credentials());
        }
    };
    if user.totp_enrolled {
        // Two-factor sign-in is not built yet (issue 12): refuse rather than skip the factor.
        return Err(ApiError::new(Code::SecondFactorRequired, "this account needs its second factor"));
    }
    let command = UserCommand::SignIn {
        method: SignInMethod::Password,
        step: None,
        recovery_code_hash: None,
        at: OffsetDateTime::now_utc(),
    };
    let meta = metadata_of(&user, ctx);
    execute(&state.commands.users, &user.user_id, command, meta).await?;
    let session = sessions::create(
        &state.pool,
        &user.user_id,
        state.limits.session_absolute,
        &ctx.user_agent,
        &ctx.source_ip,
    )
    .await?;
    tracing::info!(user_id = %user.user_id, "signed in");
    Ok((user, session))
}
