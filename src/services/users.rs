//! People: invites, accepting them with a password, the `users` rows, and what a signed-in
//! person may do — the principal of the same role (`principal_for`), so the one
//! decision table (`auth::authorize`) decides for keys and people alike.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyRole;
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_aggregates::user::{normalise_email, Membership, UserCommand, USER_ID_PREFIX};

use crate::auth::password::{check_policy, PasswordProblem};
use crate::auth::Principal;
use crate::commands::{execute, CommandMetadata, RequestMeta};
use crate::error::Code;
use crate::error::{Failure, Outcome};
use crate::services::Ctx;

/// How long an invite works.
pub const INVITE_LIFETIME: time::Duration = time::Duration::hours(72);

pub use tokenhub_projections::read::users::{by_id, by_identity, by_ids, by_invite, UserRow};

/// What events and the query table keep of an invite token: its SHA-256, in hex.
pub fn hash_of_invite(token: &str) -> String {
    invite_token_hash(token)
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

/// How a sealed password hash starts (events and the `users` table keep only this form).
const SEALED_PASSWORD: &str = "sealed:v1:";

fn password_aad(user_id: &str) -> Vec<u8> {
    format!("tokenhub:password:{user_id}").into_bytes()
}

fn sealing_error(e: impl std::fmt::Display) -> Failure {
    Failure::internal(&format!("password hash sealing: {e}"))
}

/// Seals an argon2id PHC string under the person's own data key: what events and the `users`
/// table keep, `sealed:v1:<nonce>:<ciphertext>` (base64). Erasing the person destroys the key.
pub async fn seal_password(state: &Ctx, user_id: &str, phc: &str) -> Outcome<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dek = crate::crypto::data_keys::tenant_dek(&state.pool, &state.keks, user_id)
        .await
        .map_err(sealing_error)?;
    let (nonce, sealed) = dek.seal(&password_aad(user_id), phc.as_bytes()).map_err(sealing_error)?;
    Ok(format!("{SEALED_PASSWORD}{}:{}", b64.encode(nonce), b64.encode(sealed)))
}

/// The PHC string of `user`'s password (`None`: no such user, no password, or erased). The
/// person's data key is read for an unknown e-mail too (the decoy id), so both take one read.
pub async fn password_of(state: &Ctx, user: Option<&UserRow>) -> Outcome<Option<String>> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let owner = user.map_or("usr_decoy_never_a_user", |u| u.user_id.as_str());
    let dek = crate::crypto::data_keys::existing_dek(&state.pool, &state.keks, owner)
        .await
        .map_err(sealing_error)?;
    let Some(stored) = user.and_then(|u| u.password_hash.as_deref()) else { return Ok(None) };
    let Some(sealed) = stored.strip_prefix(SEALED_PASSWORD) else {
        // Written before hashes were sealed (the log keeps it as it was).
        return Ok(Some(stored.to_string()));
    };
    let (Some(dek), Some((nonce, ciphertext))) = (dek, sealed.split_once(':')) else { return Ok(None) };
    let (Ok(nonce), Ok(ciphertext)) = (b64.decode(nonce), b64.decode(ciphertext)) else { return Ok(None) };
    let plain = dek.open(&password_aad(owner), &nonce, &ciphertext).map_err(sealing_error)?;
    Ok(String::from_utf8(plain).ok())
}

/// What events and the query table keep of an invite token: its SHA-256, in hex.
fn invite_token_hash(token: &str) -> String {
    crate::crypto::hex(&Sha256::digest(token.as_bytes()))
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
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    email: &str,
    membership: Membership,
) -> Outcome<Invite> {
    let email = normalise_email(email)
        .ok_or_else(|| Failure::new(Code::InvalidRequest, "email must be an address local@domain.tld"))?;
    if let Some(tenant_id) = membership.tenant_id() {
        // A deleted tenant takes no new people.
        if matches!(state.keys.tenant_status(tenant_id), None | Some(TenantStatus::Deleted)) {
            return Err(Failure::new(Code::UnknownTenant, "no such tenant"));
        }
    }
    let user_id = user_id_for(&email);
    let token = crate::crypto::random_alphanumeric(43);
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

fn password_error(problem: PasswordProblem) -> Failure {
    Failure::new(Code::WeakPassword, problem.to_string())
}

/// Accepts the invite of `token` with a first `password`.
pub async fn accept(state: &Ctx, ctx: &RequestMeta, token: &str, password: &str) -> Outcome<UserRow> {
    let hash = invite_token_hash(token);
    let row = tokenhub_projections::read::users::by_invite_token(&state.pool, &hash).await?;
    let Some(user) = row else {
        return Err(Failure::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)"));
    };
    // An invite into a tenant that is gone is void; one that is suspended waits.
    tenant_admits_person(state, &user, ctx, || {
        Failure::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)")
    })?;
    check_policy(password, &user.email).map_err(password_error)?;
    let password_hash = state.passwords.hash(password).await.map_err(|_| crate::auth::password::busy())?;
    let password_hash = seal_password(state, &user.user_id, &password_hash).await?;
    let command =
        UserCommand::AcceptInvite { invite_token_hash: hash, password_hash, at: OffsetDateTime::now_utc() };
    let meta = metadata_of(&user, ctx);
    execute(&state.commands.users, &user.user_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    Ok(user)
}

/// The one policy's tenant gate for a person signing in or accepting an invite, from the
/// request's address: their tenant's state and allowlist, exactly what the tenant's keys
/// meet. A deleted tenant's people are gone (`deleted`: the caller's own "no such account"
/// answer); a suspended one's are refused (`tenant_suspended`), as are addresses outside
/// the allowlist (`ip_not_allowed`).
pub fn tenant_admits_person(
    state: &Ctx,
    user: &UserRow,
    ctx: &RequestMeta,
    deleted: impl FnOnce() -> Failure,
) -> Outcome<()> {
    let Some(tenant_id) = &user.tenant_id else { return Ok(()) };
    tenant_gate(state.keys.tenant_admits(tenant_id, ctx.source_ip.parse().ok()), deleted)
}

/// The answer for a tenant's gate ([`crate::cache::KeyCache::tenant_admits`]) to a person:
/// a suspended tenant's (403 `tenant_suspended`), an address outside its allowlist (403
/// `ip_not_allowed`); a deleted tenant's people are gone (`deleted`: the caller's answer for
/// that).
pub fn tenant_gate(code: crate::cache::VerifyCode, deleted: impl FnOnce() -> Failure) -> Outcome<()> {
    use crate::cache::VerifyCode;
    match code {
        VerifyCode::Valid => Ok(()),
        VerifyCode::TenantSuspended => Err(Failure::new(Code::TenantSuspended, "the tenant is suspended")),
        VerifyCode::IpNotAllowed => {
            Err(Failure::new(Code::IpNotAllowed, "the tenant's IP allowlist does not include this address"))
        }
        _ => Err(deleted()),
    }
}

/// Metadata of a command the person `user` causes (accepting, signing in, their own factors).
pub fn metadata_of(user: &UserRow, ctx: &RequestMeta) -> CommandMetadata {
    CommandMetadata::person(&user.user_id, &user.email, ctx, user.tenant_id.as_deref())
}
