//! How many of a thing a tenant may have: the plan's limits (`max_api_keys`,
//! `max_sub_accounts`) and the operator's caps (`TENANT_MAX_ROLES`, `TENANT_MAX_SECRETS`),
//! checked one way.

use sqlx::PgPool;

use crate::error::Code;
use crate::error::{Failure, Outcome};

/// The tenant's effective plan limit `name` (e.g. `max_api_keys`); `None`: unlimited.
pub async fn plan_limit(pool: &PgPool, tenant_id: &str, name: &str) -> Outcome<Option<i64>> {
    Ok(tokenhub_projections::read::tenants::plan_limit(pool, tenant_id, name).await?)
}

/// `Err(code)` with `message(count)` when `count_sql` (its `$1` is the tenant) counts `max` or
/// more.
pub async fn ensure_below(
    pool: &PgPool,
    tenant_id: &str,
    count_sql: &'static str,
    max: i64,
    code: Code,
    message: impl FnOnce(i64) -> String,
) -> Outcome<()> {
    let count: i64 = sqlx::query_scalar(count_sql).bind(tenant_id).fetch_one(pool).await?;
    if count >= max {
        return Err(Failure::new(code, message(count)));
    }
    Ok(())
}
