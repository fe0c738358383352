//! Signing in (the lock-out it shares with step-up checks is in [`crate::services::lockout`]):
//! the first factor (password; OpenID providers call [`after_first_factor`] too),
//! then, when TOTP is on, the second step with a code or a recovery code. Every failure is
//! counted per account (`store::sign_in_locks`: back-off and a temporary lock, shared by every
//! instance) and per client address (`auth::throttle`), and audited as `user.sign_in_failed`.
//! An unknown e-mail and a wrong password get the same answer in the same time: a decoy hash
//! is checked, and the lock is kept per address-derived id whether or not an account exists.

use std::net::IpAddr;

use time::OffsetDateTime;
use tokenhub_aggregates::user::{normalise_email, SignInMethod, UserCommand};

use crate::auth::password::busy;
use crate::commands::{execute_retrying, CommandError, RequestMeta};
use crate::error::Code;
use crate::error::{Failure, Outcome};
use crate::services::lockout::{check_address, check_locks, record_failure, Audit};
use crate::services::oidc::Identity;
use crate::services::two_factor;
use crate::services::users::{by_id, metadata_of, user_id_for, UserRow};
use crate::services::Ctx;
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

fn bad_credentials() -> Failure {
    Failure::new(Code::InvalidCredentials, "the e-mail or the password is wrong")
}

fn bad_second_factor() -> Failure {
    Failure::new(Code::InvalidSecondFactor, "the code is wrong")
}

fn bad_challenge() -> Failure {
    Failure::new(Code::InvalidMfaToken, "the sign-in expired or ran out of tries; sign in again")
}

/// Signs in with e-mail and password.
pub async fn with_password(
    state: &Ctx,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    email: &str,
    password: &str,
) -> Outcome<SignIn> {
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
    state: &Ctx,
    ctx: &RequestMeta,
    user: UserRow,
    method: &str,
) -> Outcome<SignIn> {
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
    state: &Ctx,
    ctx: &RequestMeta,
    provider: &str,
    identity: &Identity,
    intent: Intent,
) -> Outcome<ProviderOutcome> {
    let no_account = || {
        Failure::new(
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
                return Err(Failure::new(
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
                || Failure::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)");
            let user = crate::services::users::by_invite(&state.pool, &invite_token_hash)
                .await?
                .ok_or_else(invalid)?;
            if linked_to.is_some() {
                return Err(Failure::new(
                    Code::OidcIdentityInUse,
                    "this identity is linked to another account",
                ));
            }
            if normalise_email(&identity.email).as_deref() != Some(user.email.as_str()) {
                return Err(Failure::new(
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
    state: &Ctx,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    mfa_token: &str,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> Outcome<(UserRow, NewSession)> {
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
        _ => return Err(Failure::new(Code::InvalidRequest, "send either code or recovery_code")),
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
    state: &Ctx,
    ctx: &RequestMeta,
    user: &UserRow,
    method: SignInMethod,
    step: Option<u64>,
    recovery_code_hash: Option<String>,
) -> Outcome<NewSession> {
    crate::services::users::tenant_admits_person(state, user, ctx, bad_credentials)?;
    let at = OffsetDateTime::now_utc();
    let command = || UserCommand::SignIn { method, step, recovery_code_hash: recovery_code_hash.clone(), at };
    match execute_retrying(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await {
        Ok(()) => {}
        Err(CommandError::Refused { code: Code::RecoveryCodeInvalid, .. }) => return Err(bad_second_factor()),
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
