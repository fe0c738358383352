//! Lock-out of failed sign-ins and step-up checks: every failure is counted per account
//! (`store::sign_in_locks`: back-off and a temporary lock, shared by every instance) and per
//! client address (`auth::throttle`), and audited as `user.sign_in_failed`.

use std::net::IpAddr;

use time::OffsetDateTime;
use tokenhub_aggregates::user::UserCommand;

use crate::commands::{execute_retrying, RequestMeta};
use crate::error::{Code, Failure, Outcome};
use crate::services::users::{metadata_of, UserRow};
use crate::services::Ctx;
use crate::store::sign_in_locks;

/// Refuses when the client address failed too often.
pub(crate) fn check_address(state: &Ctx, ip: Option<IpAddr>) -> Outcome<()> {
    match state.throttles.auth_blocked(ip) {
        Some(retry) => {
            let message = format!("too many failed sign-ins from this address; retry in {retry} s");
            Err(Failure::new(Code::RateLimited, message).retry_after(retry))
        }
        None => Ok(()),
    }
}

/// Refuses when the client address or the account (`subject`) is locked out.
pub(crate) async fn check_locks(state: &Ctx, ip: Option<IpAddr>, subject: &str) -> Outcome<()> {
    check_address(state, ip)?;
    if let Some(retry) = sign_in_locks::locked_for(&state.pool, subject).await? {
        let message = format!("too many failed sign-ins for this account; retry in {retry} s");
        return Err(Failure::new(Code::SignInLocked, message).retry_after(retry));
    }
    Ok(())
}

/// When a failure's audit event is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audit {
    /// Before answering (a signed-in person's step-up: no timing to hide).
    Now,
    /// After answering: a wrong password on an account must take the time an unknown e-mail
    /// takes, and an unknown e-mail has no account to append to.
    AfterAnswer,
}

/// Counts a failure against the address and the account (for an unknown e-mail too), and
/// audits it for an account.
pub(crate) async fn record_failure(
    state: &Ctx,
    ctx: &RequestMeta,
    ip: Option<IpAddr>,
    subject: &str,
    user: Option<&UserRow>,
    reason: &str,
    audit: Audit,
) -> Outcome<()> {
    state.throttles.record_auth_failure(ip).await;
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
    state: &Ctx,
    ctx: &RequestMeta,
    user: &UserRow,
    check: impl std::future::Future<Output = Outcome<T>>,
) -> Outcome<T> {
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
