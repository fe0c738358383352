//! The names beside the ids of an audit page: tenants, keys (also as actors) and
//! sub-accounts, read from their query tables as they are now. A tenant's page names only its
//! own: another tenant's or a platform key's name is never looked up for it.

use std::collections::BTreeMap;

use sqlx::PgPool;
use tokenhub_projections::read;

use super::AuditItem;

/// id → current name, for the ids `items` mention; `tenant_id` limits the lookup to one
/// tenant's (a tenant's own audit page).
pub async fn of(
    pool: &PgPool,
    tenant_id: Option<&str>,
    items: &[AuditItem],
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let (mut tenants, mut keys, mut subs) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        if let Some(t) = &item.tenant_id {
            tenants.push(t.clone());
        }
        match item.aggregate_type.as_str() {
            "tenant" => tenants.push(item.aggregate_id.clone()),
            "api_key" => keys.push(item.aggregate_id.clone()),
            "sub_account" => subs.push(item.aggregate_id.clone()),
            _ => {}
        }
        if matches!(item.actor.kind.as_str(), "api_key" | "platform_key") {
            keys.push(item.actor.id.clone());
        }
    }
    for ids in [&mut tenants, &mut keys, &mut subs] {
        ids.sort();
        ids.dedup();
    }
    if let Some(own) = tenant_id {
        tenants.retain(|t| t == own);
    }
    let mut names = BTreeMap::new();
    if !tenants.is_empty() {
        let found = read::tenants::names_and_monthly_quotas(pool, &tenants).await?;
        names.extend(found.into_iter().map(|(id, name, _)| (id, name)));
    }
    if !keys.is_empty() {
        names.extend(read::api_keys::names(pool, tenant_id, &keys).await?);
    }
    if !subs.is_empty() {
        names.extend(read::sub_accounts::names(pool, tenant_id, &subs).await?);
    }
    Ok(names)
}
