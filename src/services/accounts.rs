//! Managing people: listing them (all, or one tenant's), changing a role, disabling (which
//! ends their sessions), and a person changing their own password (which ends their other
//! sessions). Tenant admins reach only their tenant's people, with tenant roles.

use time::OffsetDateTime;
use tokenhub_aggregates::user::{Membership, UserCommand};

use crate::auth::password::busy;
use crate::auth::password::check_policy;
use crate::auth::Principal;
use crate::commands::{execute, CommandMetadata, RequestMeta};
use crate::error::Code;
use crate::error::{Failure, Outcome};
use crate::services::users::{by_id, metadata_of, UserRow};
use crate::services::Ctx;
use crate::store::sessions;

/// A page of people after log position `after`: all of them, or `tenant_id`'s.
pub async fn list(state: &Ctx, tenant_id: Option<&str>, after: i64, limit: i64) -> Outcome<Vec<UserRow>> {
    Ok(tokenhub_projections::read::users::page(&state.pool, tenant_id, after, limit).await?)
}

fn not_found() -> Failure {
    Failure::new(Code::UserNotFound, "no such user")
}

/// The person `user_id`, if `tenant_id` is `None` (platform) or is theirs.
pub async fn get(state: &Ctx, tenant_id: Option<&str>, user_id: &str) -> Outcome<UserRow> {
    let user = by_id(&state.pool, user_id).await?.ok_or_else(not_found)?;
    if tenant_id.is_some() && user.tenant_id.as_deref() != tenant_id {
        return Err(not_found());
    }
    Ok(user)
}

/// Gives `user_id` the role and scope `membership` (the caller checked which it may give).
pub async fn change_role(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: Option<&str>,
    user_id: &str,
    membership: Membership,
) -> Outcome<UserRow> {
    let user = get(state, tenant_id, user_id).await?;
    if let Some(new_tenant) = membership.tenant_id() {
        if state.keys.tenant_status(new_tenant).is_none() {
            return Err(Failure::new(Code::UnknownTenant, "no such tenant"));
        }
    }
    let meta = CommandMetadata::new(principal, ctx, user.tenant_id.as_deref().or(membership.tenant_id()));
    let command = UserCommand::ChangeRole { membership, at: OffsetDateTime::now_utc() };
    execute(&state.commands.users, &user.user_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    get(state, None, user_id).await
}

/// Runs `command` on `user_id` (of `tenant_id` when given) for `principal`, then ends every
/// session of theirs.
async fn end_person(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: Option<&str>,
    user_id: &str,
    command: UserCommand,
) -> Outcome<u64> {
    let user = get(state, tenant_id, user_id).await?;
    let meta = CommandMetadata::new(principal, ctx, user.tenant_id.as_deref());
    execute(&state.commands.users, &user.user_id, command, meta).await?;
    let ended = sessions::end_all_but(&state.pool, &user.user_id, None).await?;
    state.readmodels.wait_for_head().await;
    Ok(ended)
}

/// Disables `user_id` (terminal) and ends every session of theirs.
pub async fn disable(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: Option<&str>,
    user_id: &str,
) -> Outcome<()> {
    let command = UserCommand::Disable { at: OffsetDateTime::now_utc() };
    let ended = end_person(state, principal, ctx, tenant_id, user_id, command).await?;
    tracing::info!(user_id = %user_id, sessions_ended = ended, "user disabled");
    Ok(())
}

/// Erases the disabled person `user_id`: `user.erased` destroys their data key (the users
/// projection shreds it), so the sealed password hashes and TOTP secret in the log can never
/// be opened again.
pub async fn erase(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: Option<&str>,
    user_id: &str,
) -> Outcome<()> {
    let command = UserCommand::Erase { at: OffsetDateTime::now_utc() };
    end_person(state, principal, ctx, tenant_id, user_id, command).await?;
    tracing::info!(user_id = %user_id, "user erased");
    Ok(())
}

/// The signed-in `user` changes their password; their other sessions end.
pub async fn change_password(
    state: &Ctx,
    ctx: &RequestMeta,
    user: &UserRow,
    current_session: &[u8],
    current: &str,
    new: &str,
) -> Outcome<u64> {
    crate::services::lockout::step_up(state, ctx, user, async {
        let phc = crate::services::users::password_of(state, Some(user)).await?;
        let ok = state.passwords.verify(current, phc.as_deref()).await.map_err(|_| busy())?;
        if ok {
            Ok(())
        } else {
            Err(Failure::new(Code::WrongPassword, "the current password is wrong"))
        }
    })
    .await?;
    check_policy(new, &user.email).map_err(|p| Failure::new(Code::WeakPassword, p.to_string()))?;
    let password_hash = state.passwords.hash(new).await.map_err(|_| busy())?;
    let password_hash = crate::services::users::seal_password(state, &user.user_id, &password_hash).await?;
    let command = UserCommand::SetPassword { password_hash, at: OffsetDateTime::now_utc() };
    execute(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await?;
    let ended = sessions::end_all_but(&state.pool, &user.user_id, Some(current_session)).await?;
    state.readmodels.wait_for_head().await;
    tracing::info!(user_id = %user.user_id, sessions_ended = ended, "password changed");
    Ok(ended)
}
