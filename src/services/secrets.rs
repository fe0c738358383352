//! Tenant secrets: store a new version (sealed under the tenant's data key before it becomes
//! an event), delete, reveal (on the record before the value leaves). The value is never
//! logged, never in an event, never in a query table in plain text.

use time::OffsetDateTime;
use tokenhub_aggregates::secret::{is_secret_name, secret_id, SecretCommand};
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::read::secrets as read;

use crate::auth::Principal;
use crate::commands::{execute, execute_retrying, CommandMetadata, RequestMeta};
use crate::crypto::data_keys::{DataKeyError, DEK_VERSION};
use crate::crypto::secrets::{self as sealed, OpenError};
use crate::error::{Code, Failure, Outcome};
use crate::services::Ctx;

/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

fn bad_name() -> Failure {
    Failure::new(Code::InvalidSecretName, "secret names match [A-Z][A-Z0-9_]{0,127}")
}

/// 404 `secret_not_found`.
pub fn not_found() -> Failure {
    Failure::new(Code::SecretNotFound, "secret not found")
}

fn data_key_failure(e: DataKeyError) -> Failure {
    match e {
        DataKeyError::Shredded => Failure::new(
            Code::SecretShredded,
            "the tenant's data key was destroyed; its secrets cannot be read by anyone",
        ),
        other => Failure::unavailable(&other),
    }
}

fn require_live_tenant(ctx: &Ctx, tenant: &str) -> Outcome<()> {
    match ctx.keys.tenant_status(tenant) {
        Some(TenantStatus::Deleted) => Err(Failure::new(Code::TenantDeleted, "tenant is deleted")),
        _ => Ok(()),
    }
}

/// The tenant's live secrets (names, versions, times; never values).
pub async fn list(ctx: &Ctx, tenant: &str) -> Outcome<Vec<read::SecretMeta>> {
    Ok(read::list(&ctx.pool, tenant).await?)
}

/// Stores `value` as the next version of `name`; returns that version. `before_commit` sees
/// the version once it is decided and before the command is stored (an idempotent answer).
pub async fn store(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    name: &str,
    value: &str,
    before_commit: impl AsyncFnOnce(i64) -> Outcome<()>,
) -> Outcome<i64> {
    if !is_secret_name(name) {
        return Err(bad_name());
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Failure::new(
            Code::SecretTooLarge,
            format!("values are at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    require_live_tenant(ctx, tenant)?;
    let current = read::last_version(&ctx.pool, tenant, name).await?;
    if current.is_none_or(|(_, deleted)| deleted) {
        let n = read::count_live(&ctx.pool, tenant).await?;
        if n >= ctx.limits.max_secrets {
            return Err(Failure::new(
                Code::SecretLimitReached,
                format!(
                    "the tenant has {n} secrets, the most allowed (TENANT_MAX_SECRETS); delete one first"
                ),
            ));
        }
    }
    let version = current.map_or(0, |(v, _)| v) + 1;
    let (nonce, ciphertext) = sealed::seal(&ctx.pool, &ctx.keks, tenant, name, version, value.as_bytes())
        .await
        .map_err(data_key_failure)?;
    let command = SecretCommand::Store {
        tenant_id: tenant.to_string(),
        name: name.to_string(),
        version,
        ciphertext,
        nonce,
        dek_version: DEK_VERSION,
        at: OffsetDateTime::now_utc(),
    };
    before_commit(version).await?;
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute(&ctx.commands.secrets, &secret_id(tenant, name), command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    tracing::info!(tenant_id = %tenant, secret = %name, version, "secret stored");
    Ok(version)
}

/// Deletes `name` (its versions stay sealed in the log; the tenant's erasure shreds them).
pub async fn delete(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    name: &str,
) -> Outcome<()> {
    if !is_secret_name(name) {
        return Err(not_found());
    }
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    let command = SecretCommand::Delete { at: OffsetDateTime::now_utc() };
    execute(&ctx.commands.secrets, &secret_id(tenant, name), command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

/// The current value of `name` and its version, recorded as `secret.revealed` (who, which
/// version; never the value) before it is returned. A suspended tenant's secrets are handed
/// to no one; a platform key's reveals are bounded per minute.
pub async fn reveal(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    name: &str,
) -> Outcome<(i64, String)> {
    if !is_secret_name(name) {
        return Err(not_found());
    }
    if ctx.keys.tenant_status(tenant) == Some(TenantStatus::Suspended) {
        return Err(Failure::new(Code::TenantSuspended, "the tenant is suspended"));
    }
    if let Principal::PlatformKey { public_id, .. } = principal {
        if let Err(retry) = ctx.throttles.reveal(public_id).await {
            let e = Failure::new(
                Code::RateLimited,
                format!("this platform key's secret reveals per minute are used up; retry in {retry} s"),
            );
            return Err(e.retry_after(retry));
        }
    }
    let (version, value) = match sealed::open_current(&ctx.pool, &ctx.keks, tenant, name).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return Err(not_found()),
        Err(OpenError::DataKey(e)) => return Err(data_key_failure(e)),
        Err(e @ OpenError::Corrupt(_)) => return Err(Failure::internal(&e)),
    };
    // The reveal is on the record before the value leaves. Reveals have no precondition but
    // the secret's existence, so a concurrent write (another reveal) is simply retried.
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    let command = || SecretCommand::RecordReveal { at: OffsetDateTime::now_utc() };
    execute_retrying(&ctx.commands.secrets, &secret_id(tenant, name), command, metadata).await?;
    let value = String::from_utf8(value).map_err(|e| Failure::internal(&e))?;
    Ok((version, value))
}
