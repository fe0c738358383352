//! Signing in: the first factor (password; OpenID providers call [`after_first_factor`] too),
//! then, when TOTP is on, the second step with a code or a recovery code. Every failure is
//! counted per account (`store::sign_in_locks`: back-off and a temporary lock, shared by every
//! instance) and per client address (`auth::throttle`), and audited as `user.sign_in_failed`.
//! An unknown e-mail and a wrong password get the same answer in the same time: a decoy hash
//! is checked, and the lock is kept per address-derived id whether or not an account exists.

use std::net::IpAddr;

use time::OffsetDateTime;
use tokenhub_aggregates::user::{normalise_email, SignInMethod, UserCommand};

use crate::commands::{execute_retrying, CommandError, RequestMeta};
use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult};
use crate::services::oidc::Identity;
use crate::services::two_factor;
use crate::services::users::{by_id, metadata_of, user_id_for, UserRow};
use crate::state::AppState;
use crate::store::oidc_logins::Intent;
use crate::store::sessions::{self, NewSession};
use crate::store::{mfa_challenges, sign_in_locks};

/// What a first factor leads to.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in.
    Session(Box<UserRow>, NewSession),
    /// TOTP is on: answer the challenge with `POST /auth/login/mfa`.
    SecondFactor {
        /// The challenge's token (5 minutes, 5 tries).
        mfa_token: String,
    },
}

/// 503 `authentication_busy`.
pub fn busy() -> ApiError {
    ApiError::new(Code::AuthenticationBusy, "too many sign-ins at once; retry later").retry_after(1)
}

fn bad_credentials() -> ApiError {
    ApiError::new(Code::InvalidCredentials, "the e-mail or the password is wrong")
}

fn bad_second_factor() -> ApiError {
    ApiError::new(Code::InvalidSecondFactor, "the code is wrong")
}

fn bad_challenge() -> ApiError {
    ApiError::new(Code::InvalidMfaToken, "the sign-in expired or ran out of tries; sign in again")
}

/// Refuses when the client address failed too often.
fn check_address(state: &AppState, ip: Option<IpAddr>) -> ApiResult<()> {
    match state.throttles.auth_blocked(ip) {
        Some(retry) => {
            let message = format!("too many failed sign-ins from this address; retry in {retry} s");
            Err(ApiError::new(Code::RateLimited, message).retry_after(retry))
        }
        None => Ok(()),
    }
}

/// Refuses when the client address or the account (`subject`) is locked out.
async fn check_locks(state: &AppState, ip: Option<IpAddr>, subject: &str) -> ApiResult<()> {
    check_address(state, ip)?;
    if let Some(retry) = sign_in_locks::locked_for(&state.pool, subject).await? {
        let message = format!("too many failed sign-ins for this account; retry in {retry} s");
        return Err(ApiError::new(Code::SignInLocked, message).retry_after(retry));
    }
    Ok(())
}

/// When a failure's audit event is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audit {
    /// Before answering (a signed-in person's step-up: no timing to hide).
    Now,
    /// After answering: a wrong password on an account must take the time an unknown e-mail
    /// takes, and an unknown e-mail has no account to append to.
    AfterAnswer,
}

/// Counts a failure against the address and the account (for an unknown e-mail too), and
/// audits it for an account.
async fn record_failure(
    state: &AppState,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    subject: &str,
    user: Option<&UserRow>,
    reason: &str,
    audit: Audit,
) -> ApiResult<()> {
    state.throttles.record_auth_failure(ip);
    let lock = sign_in_locks::record_failure(&state.pool, subject).await?;
    if let Some(user) = user {
        let at = OffsetDateTime::now_utc();
        let (commands, user_id, meta, reason) =
            (state.commands.users.clone(), user.user_id.clone(), metadata_of(user, ctx), reason.to_string());
        let append = async move {
            let command = || UserCommand::RecordSignInFailure { reason: reason.clone(), at };
            if let Err(e) = execute_retrying(&commands, &user_id, command, meta).await {
                tracing::warn!(error = %e, "cannot record a failed sign-in");
            }
        };
        match audit {
            Audit::Now => append.await,
            Audit::AfterAnswer => drop(tokio::spawn(append)),
        }
    }
    tracing::info!(msg = "Sign-in failed", reason, lock_seconds = lock, "sign-in failed");
    Ok(())
}

/// A signed-in person's step-up check (the password or a TOTP code asked before changing a
/// factor or the password): it meets sign-in's lock-out and back-off (per account and per
/// address), and a wrong answer counts there and is audited as `user.sign_in_failed` with
/// reason `step_up_password` or `step_up_totp` — a stolen session cannot guess freely.
pub async fn step_up<T>(
    state: &AppState,
    ctx: &RequestMeta,
    user: &UserRow,
    check: impl std::future::Future<Output = ApiResult<T>>,
) -> ApiResult<T> {
    let ip = ctx.source_ip.parse().ok();
    check_locks(state, ip, &user.user_id).await?;
    match check.await {
        Err(e) if matches!(e.code, Code::WrongPassword | Code::InvalidTotpCode) => {
            let reason = if e.code == Code::WrongPassword { "step_up_password" } else { "step_up_totp" };
            record_failure(state, ctx, ip, &user.user_id, Some(user), reason, Audit::Now).await?;
            Err(e)
        }
        other => other,
    }
}

/// Signs in with e-mail and password.
pub async fn with_password(
    state: &AppState,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    email: &str,
    password: &str,
) -> ApiResult<SignIn> {
    let email = normalise_email(email).unwrap_or_default();
    let subject = user_id_for(&email);
    check_locks(state, ip, &subject).await?;
    let user = by_id(&state.pool, &subject).await?;
    let active = user.as_ref().filter(|u| u.status == "active");
    let phc = crate::services::users::password_of(state, active).await?;
    let ok = state.passwords.verify(password, phc.as_deref()).await.map_err(|_| busy())?;
    match (ok, user) {
        (true, Some(user)) => after_first_factor(state, ctx, user, "password").await,
        (_, user) => {
            record_failure(state, ctx, ip, &subject, user.as_ref(), "password", Audit::AfterAnswer).await?;
            Err(bad_credentials())
        }
    }
}

/// After a first factor (`password` or `oidc`): a session, or the TOTP challenge.
pub async fn after_first_factor(
    state: &AppState,
    ctx: &RequestMeta,
    user: UserRow,
    method: &str,
) -> ApiResult<SignIn> {
    crate::services::users::tenant_admits_person(state, &user, ctx, bad_credentials)?;
    if user.totp_enrolled {
        let mfa_token = mfa_challenges::create(&state.pool, &user.user_id, method).await?;
        return Ok(SignIn::SecondFactor { mfa_token });
    }
    let method = if method == "oidc" { SignInMethod::Oidc } else { SignInMethod::Password };
    let session = finish(state, ctx, &user, method, None, None).await?;
    Ok(SignIn::Session(Box::new(user), session))
}

/// What an OpenID round trip came to.
#[derive(Debug)]
pub enum ProviderOutcome {
    /// Signed in (or the TOTP challenge).
    SignIn(SignIn),
    /// The identity is now linked to the signed-in person.
    Linked,
}

/// The provider's answer for `intent`. An identity reaches an account only when it is linked
/// to it (never by a matching e-mail): a sign-in needs the link; a signed-in person links it;
/// an invite, accepted with the provider, activates its account (the provider's verified
/// e-mail must be the invited one) and links it. Never creates an account.
pub async fn with_provider(
    state: &AppState,
    ctx: &RequestMeta,
    provider: &str,
    identity: &Identity,
    intent: Intent,
) -> ApiResult<ProviderOutcome> {
    let no_account = || {
        ApiError::new(
            Code::OidcNoAccount,
            "no account is linked to this identity: sign in with your password and link it, or accept your invite with it",
        )
    };
    let link = |user: UserRow| async move {
        let command = UserCommand::LinkIdentity {
            provider: provider.to_string(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            at: OffsetDateTime::now_utc(),
        };
        crate::commands::execute(&state.commands.users, &user.user_id, command, metadata_of(&user, ctx)).await
    };
    let linked_to =
        crate::services::users::by_identity(&state.pool, &identity.issuer, &identity.subject).await?;
    match intent {
        Intent::SignIn => {
            let user = linked_to.filter(|u| u.status == "active").ok_or_else(no_account)?;
            Ok(ProviderOutcome::SignIn(after_first_factor(state, ctx, user, "oidc").await?))
        }
        Intent::Link { user_id } => {
            let user = by_id(&state.pool, &user_id)
                .await?
                .filter(|u| u.status == "active")
                .ok_or_else(no_account)?;
            if let Some(other) = linked_to {
                return Err(ApiError::new(
                    Code::OidcIdentityInUse,
                    if other.user_id == user.user_id {
                        "this identity is linked to your account already"
                    } else {
                        "this identity is linked to another account"
                    },
                ));
            }
            let user_id = user.user_id.clone();
            link(user).await?;
            state.readmodels.wait_for_head().await;
            tracing::info!(user_id = %user_id, provider, "identity linked");
            Ok(ProviderOutcome::Linked)
        }
        Intent::Invite { invite_token_hash } => {
            let invalid =
                || ApiError::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)");
            let user = crate::services::users::by_invite(&state.pool, &invite_token_hash)
                .await?
                .ok_or_else(invalid)?;
            if linked_to.is_some() {
                return Err(ApiError::new(
                    Code::OidcIdentityInUse,
                    "this identity is linked to another account",
                ));
            }
            if normalise_email(&identity.email).as_deref() != Some(user.email.as_str()) {
                return Err(ApiError::new(
                    Code::OidcEmailMismatch,
                    "the provider's verified e-mail is not the invited one",
                ));
            }
            crate::services::users::tenant_admits_person(state, &user, ctx, invalid)?;
            let command = UserCommand::ActivateByProvider {
                provider: provider.to_string(),
                invite_token_hash,
                at: OffsetDateTime::now_utc(),
            };
            crate::commands::execute(&state.commands.users, &user.user_id, command, metadata_of(&user, ctx))
                .await?;
            let user_id = user.user_id.clone();
            link(user).await?;
            state.readmodels.wait_for_head().await;
            let user = by_id(&state.pool, &user_id).await?.ok_or_else(no_account)?;
            Ok(ProviderOutcome::SignIn(after_first_factor(state, ctx, user, "oidc").await?))
        }
    }
}

/// The second factor of a sign-in: a TOTP `code` or a `recovery_code` for the challenge of
/// `mfa_token`.
pub async fn with_second_factor(
    state: &AppState,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    mfa_token: &str,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> ApiResult<(UserRow, NewSession)> {
    check_address(state, ip)?;
    let (user_id, first) =
        mfa_challenges::attempt(&state.pool, mfa_token).await?.ok_or_else(bad_challenge)?;
    check_locks(state, ip, &user_id).await?;
    let user = by_id(&state.pool, &user_id).await?;
    let Some(user) = user.filter(|u| u.status == "active" && u.totp_enrolled) else {
        return Err(bad_challenge());
    };
    let oidc = first == "oidc";
    let outcome = match (code, recovery_code) {
        (Some(code), None) => {
            match two_factor::code_step(&two_factor::enrolled_secret(state, &user).await?, code) {
                Some(step) => {
                    let method = if oidc { SignInMethod::Oidc } else { SignInMethod::PasswordTotp };
                    finish(state, ctx, &user, method, Some(step), None).await
                }
                None => Err(bad_second_factor()),
            }
        }
        (None, Some(recovery)) => {
            let hash = two_factor::recovery_code_hash(state, &user.user_id, recovery);
            finish(state, ctx, &user, SignInMethod::PasswordRecoveryCode, None, Some(hash)).await
        }
        _ => return Err(ApiError::new(Code::InvalidRequest, "send either code or recovery_code")),
    };
    match outcome {
        Ok(session) => {
            mfa_challenges::finish(&state.pool, mfa_token).await?;
            Ok((user, session))
        }
        // `finish` answers a spent or wrong recovery code as this code too.
        Err(e) if e.code == Code::InvalidSecondFactor => {
            let reason = if code.is_some() { "totp" } else { "recovery_code" };
            record_failure(state, ctx, ip, &user.user_id, Some(&user), reason, Audit::AfterAnswer).await?;
            Err(bad_second_factor())
        }
        Err(e) => Err(e),
    }
}

/// Records the sign-in (the aggregate refuses a replayed step or a spent recovery code) and
/// starts the session.
async fn finish(
    state: &AppState,
    ctx: &RequestMeta,
    user: &UserRow,
    method: SignInMethod,
    step: Option<u64>,
    recovery_code_hash: Option<String>,
) -> ApiResult<NewSession> {
    crate::services::users::tenant_admits_person(state, user, ctx, bad_credentials)?;
    let at = OffsetDateTime::now_utc();
    let command = || UserCommand::SignIn { method, step, recovery_code_hash: recovery_code_hash.clone(), at };
    match execute_retrying(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await {
        Ok(()) => {}
        Err(CommandError::Refused { code: "recovery_code_invalid", .. }) => return Err(bad_second_factor()),
        Err(e) => return Err(e.into()),
    }
    sign_in_locks::clear(&state.pool, &user.user_id).await?;
    let session = sessions::create(
        &state.pool,
        &user.user_id,
        state.limits.session_absolute,
        &ctx.user_agent,
        &ctx.source_ip,
    )
    .await?;
    tracing::info!(user_id = %user.user_id, ?method, "signed in");
    Ok(session)
}
