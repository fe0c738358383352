//! Sub-account rules below HTTP: the plan's `max_sub_accounts`, the tenant's monthly token
//! quota a sub-account's may not exceed (checked by the aggregate), the default role, and that
//! a named role exists. Handlers only extract, call these and map the answer.

use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::QuotaPeriod;
use tokenhub_aggregates::sub_account::{
    SubAccount, SubAccountChanges, SubAccountCommand, SubAccountEvent, SUB_ACCOUNT_ID_PREFIX,
};

use tokenhub_projections::read::tenants;

use crate::auth::Principal;
use crate::commands::RequestMeta;
use crate::commands::{decide_create, execute, CommandMetadata};
use crate::crypto::random_alphanumeric;
use crate::error::{Code, Failure, Outcome};
use crate::services::roles::require_role;
use crate::services::Ctx;

async fn tenant_quota(pool: &PgPool, tenant_id: &str) -> Outcome<Option<u64>> {
    let quota = tenants::plan_limit(pool, tenant_id, "monthly_token_quota").await?;
    Ok(quota.map(|q| q.max(0) as u64))
}

async fn check_limit(pool: &PgPool, tenant_id: &str) -> Outcome<()> {
    let Some(max) = tenants::plan_limit(pool, tenant_id, "max_sub_accounts").await? else { return Ok(()) };
    if tokenhub_projections::read::sub_accounts::count_live(pool, tenant_id).await? >= max {
        return Err(Failure::new(
            Code::SubAccountLimitReached,
            format!("the tenant's plan allows {max} sub-accounts"),
        ));
    }
    Ok(())
}

/// A sub-account to create.
#[derive(Debug)]
pub struct NewSubAccount {
    /// Name.
    pub name: String,
    /// Role; the tenant's default role when absent.
    pub role: Option<String>,
    /// Quota.
    pub quota_limit: Option<i64>,
    /// Its window.
    pub quota_period: Option<QuotaPeriod>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// Creates `new` in `tenant_id`; returns what its event says. `before_commit` sees that
/// once the command is decided and before it is stored: the caller keeps its answer with an
/// idempotency claim, so a retry after a crash at any moment gets exactly it.
pub async fn create(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: &str,
    new: NewSubAccount,
    before_commit: impl AsyncFnOnce(&SubAccountEvent) -> Outcome<()>,
) -> Outcome<SubAccountEvent> {
    check_limit(&state.pool, tenant_id).await?;
    let role = match new.role {
        Some(role) => role,
        None => tenants::default_role(&state.pool, tenant_id).await?.unwrap_or_else(|| "viewer".to_string()),
    };
    require_role(&state.pool, tenant_id, &role).await?;
    let id =
        format!("{SUB_ACCOUNT_ID_PREFIX}{}", random_alphanumeric(tokenhub_aggregates::ids::ID_RANDOM_LEN));
    let command = SubAccountCommand::Create {
        sub_account_id: id.clone(),
        tenant_id: tenant_id.to_string(),
        name: new.name,
        role,
        quota_limit: new.quota_limit,
        quota_period: new.quota_period,
        permissions: new.permissions,
        tenant_quota: tenant_quota(&state.pool, tenant_id).await?,
        at: crate::time_fmt::now_micros(),
    };
    let created = decide_create::<SubAccount>(command.clone())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Failure::internal(&"a create decided no event"))?;
    before_commit(&created).await?;
    let meta = CommandMetadata::new(principal, ctx, Some(tenant_id));
    execute(&state.commands.sub_accounts, &id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    Ok(created)
}

/// What to do to an existing sub-account.
#[derive(Debug)]
pub enum SubAccountAction {
    /// Change it.
    Update(SubAccountChanges),
    /// Its keys answer `SUB_ACCOUNT_DISABLED`.
    Disable,
    /// Undo a disable.
    Enable,
    /// Terminal.
    Delete,
}

/// Runs `action` on sub-account `id` (which the caller has already found in its tenant).
pub async fn act(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant_id: &str,
    id: &str,
    action: SubAccountAction,
) -> Outcome<()> {
    let at = OffsetDateTime::now_utc();
    let command = match action {
        SubAccountAction::Update(changes) => {
            if let Some(role) = &changes.role {
                require_role(&state.pool, tenant_id, role).await?;
            }
            let tenant_quota = tenant_quota(&state.pool, tenant_id).await?;
            SubAccountCommand::Update { changes, tenant_quota, at }
        }
        SubAccountAction::Disable => SubAccountCommand::Disable { at },
        SubAccountAction::Enable => SubAccountCommand::Enable { at },
        SubAccountAction::Delete => SubAccountCommand::Delete { at },
    };
    let meta = CommandMetadata::new(principal, ctx, Some(tenant_id));
    execute(&state.commands.sub_accounts, id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    Ok(())
}
