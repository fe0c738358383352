//! Key management below HTTP: who may see which key ([`Scope`]), who acts ([`issuer_of`]),
//! the tenant's plan limits, and running a command on the `ApiKey` aggregate, whose
//! [`Issuer`] rule decides what a sub-account manager may do. Handlers only extract, call
//! these and map the answer.
//!
//! A key of another tenant is always `api_key_not_found`, never `forbidden`, so its existence
//! is not confirmed.

use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{
    ApiKeyCommand, ApiKeyEvent, Issuer, KeyChanges, KeyOwner, KeyRole, KeySettings, KeyStatus,
    ManagerCredential, ParentLimits,
};
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::api_keys::{change_for, KeyLookupChange, KeyLookupEvent, KeyRecord};

use crate::auth::key_format::{self, GeneratedKey};
use crate::auth::Principal;
use crate::commands::RequestMeta;
use crate::commands::{execute, CommandMetadata};
use crate::error::Code;
use crate::error::{Failure, Outcome};
use crate::paging;
use crate::services::{key_cursor, Ctx};

/// Where a key may be looked up.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Any key.
    All,
    /// Keys of this tenant only.
    Tenant(&'a str),
    /// Platform keys only.
    Platform,
    /// Keys of one sub-account of one tenant.
    SubAccount(&'a str, &'a str),
}

impl<'a> Scope<'a> {
    /// The scope of a tenant-route caller: its sub-account for a sub-account key, else the
    /// tenant acted on.
    pub fn of_caller(principal: &'a Principal, tenant_id: &'a str) -> Scope<'a> {
        match principal {
            Principal::TenantKey { sub_account_id: Some(sub), role: KeyRole::Data, .. } => {
                Scope::SubAccount(tenant_id, sub)
            }
            _ => Scope::Tenant(tenant_id),
        }
    }

    fn sees(self, record: &KeyRecord) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(t) => record.tenant_id.as_deref() == Some(t),
            Scope::Platform => record.tenant_id.is_none(),
            Scope::SubAccount(t, sub) => {
                record.tenant_id.as_deref() == Some(t) && record.sub_account_id.as_deref() == Some(sub)
            }
        }
    }
}

pub use tokenhub_projections::read::api_keys::StoredKey;
use tokenhub_projections::read::api_keys::{self as key_rows, KeyPage};

fn key_not_found() -> Failure {
    Failure::new(Code::ApiKeyNotFound, "api key not found")
}

/// The key `public_id` if `scope` may see it, else 404.
pub async fn load(pool: &PgPool, public_id: &str, scope: Scope<'_>) -> Outcome<StoredKey> {
    if !key_format::is_public_id(public_id) {
        return Err(key_not_found());
    }
    match key_rows::get(pool, public_id).await? {
        Some(key) if scope.sees(&key.record) => Ok(key),
        _ => Err(key_not_found()),
    }
}

/// Filters of a key listing.
#[derive(Debug, Default)]
pub struct KeyFilter {
    /// Tenant (admin listings).
    pub tenant_id: Option<String>,
    /// `active`, `disabled` or `revoked`.
    pub status: Option<String>,
    /// A key-bound tag `key=value`.
    pub tag: Option<String>,
    /// Only keys whose name contains this, in any case.
    pub q: Option<String>,
    /// The order: `created` (default), `newest`, `name`, `last_used`, `expires`.
    pub sort: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Cursor.
    pub cursor: Option<String>,
}

/// The longest `q` of a key listing.
pub const MAX_Q: usize = 100;

/// A page of keys visible in `scope`, in the filter's order, and the next cursor.
pub async fn list(
    pool: &PgPool,
    scope: Scope<'_>,
    filter: KeyFilter,
) -> Outcome<(Vec<StoredKey>, Option<String>)> {
    let limit = paging::page_size(filter.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let order = key_cursor::order(filter.sort.as_deref(), filter.cursor.as_deref())?;
    if let Some(q) = filter.q.as_deref() {
        if q.chars().count() > MAX_Q || q.chars().any(char::is_control) {
            return Err(Failure::new(
                Code::InvalidQuery,
                format!("q must be at most {MAX_Q} characters, without control characters"),
            ));
        }
    }
    if filter.status.as_deref().is_some_and(|s| !["active", "disabled", "revoked"].contains(&s)) {
        return Err(Failure::new(Code::InvalidQuery, "status must be active, disabled or revoked"));
    }
    let tag = match filter.tag.as_deref() {
        None => None,
        Some(t) => {
            Some(t.split_once('=').ok_or_else(|| Failure::new(Code::InvalidQuery, "tag must be key=value"))?)
        }
    };
    let (tenant_id, sub_account_id) = match scope {
        Scope::Tenant(t) => (Some(t), None),
        Scope::SubAccount(t, sub) => (Some(t), Some(sub)),
        _ => (filter.tenant_id.as_deref(), None),
    };
    let page = KeyPage {
        tenant_id,
        sub_account_id,
        platform_only: matches!(scope, Scope::Platform),
        status: filter.status.as_deref(),
        tag,
        name_contains: filter.q.as_deref().filter(|q| !q.is_empty()),
        order,
        limit,
    };
    let rows = key_rows::page(pool, &page).await?;
    let next_cursor = match rows.last() {
        Some(last) if rows.len() as i64 == limit => Some(key_cursor::after(&page.order, last)),
        _ => None,
    };
    Ok((rows.into_iter().map(|row| row.key).collect(), next_cursor))
}

/// Checks that `tenant_id` exists and can receive keys.
pub fn require_tenant(state: &Ctx, tenant_id: &str) -> Outcome<()> {
    match state.keys.tenant_status(tenant_id) {
        None => Err(Failure::new(Code::TenantNotFound, "tenant not found")),
        Some(TenantStatus::Deleted) => Err(Failure::new(Code::TenantDeleted, "tenant is deleted")),
        Some(_) => Ok(()),
    }
}

/// Refuses `adding` more keys when the tenant's plan would be exceeded. Read from the key
/// cache (which follows the log like the query tables): no query on the commands' path.
fn check_key_limit(state: &Ctx, tenant_id: &str, adding: i64) -> Outcome<()> {
    let Some(max) = state.keys.max_api_keys(tenant_id) else { return Ok(()) };
    if state.keys.live_keys(tenant_id) + adding > max {
        return Err(Failure::new(
            Code::ApiKeyLimitReached,
            format!("the tenant's plan allows {max} keys; revoke one or raise max_api_keys"),
        ));
    }
    Ok(())
}

/// The limits of sub-account `sub_account_id` of `tenant_id`; 422 `sub_account_not_found`
/// when it does not exist there or is deleted.
pub async fn parent_limits(pool: &PgPool, tenant_id: &str, sub_account_id: &str) -> Outcome<ParentLimits> {
    let row = tokenhub_projections::read::sub_accounts::get(pool, tenant_id, sub_account_id)
        .await?
        .filter(|s| s.status != "deleted")
        .ok_or_else(|| Failure::new(Code::UnknownSubAccount, "sub-account not found in this tenant"))?;
    Ok(ParentLimits { permissions: row.permissions.0, quota_limit: row.quota_limit })
}

/// Who `principal` is to the `ApiKey` aggregate: a sub-account key (with `keys:manage`, or
/// authorization would not have let it here) is confined to its own credential, read from
/// the key cache with its effective permissions; everyone else acts as an admin.
pub fn issuer_of(state: &Ctx, principal: &Principal) -> Outcome<Issuer> {
    let Principal::TenantKey {
        role: KeyRole::Data,
        sub_account_id: Some(sub),
        public_id,
        tenant_id,
        permissions,
    } = principal
    else {
        return Ok(Issuer::Admin);
    };
    let key = state
        .keys
        .get(public_id)
        .ok_or_else(|| Failure::new(Code::InvalidApiKey, "the API key is invalid"))?;
    let mut settings = key.to_record().settings;
    settings.permissions = permissions.clone();
    Ok(Issuer::SubAccountManager(Box::new(ManagerCredential {
        public_id: public_id.clone(),
        tenant_id: tenant_id.clone(),
        sub_account_id: sub.clone(),
        settings,
    })))
}

/// A key to issue.
#[derive(Debug)]
pub struct NewKey {
    /// Owner; for a sub-account manager that names no sub-account, its own is used.
    pub owner: KeyOwner,
    /// Role.
    pub role: KeyRole,
    /// Name.
    pub name: String,
    /// Settings as asked (the aggregate validates and confines them).
    pub settings: KeySettings,
}

/// Issues `new` for `principal`; returns the generated key (shown once) and the stored key.
pub async fn issue(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    new: NewKey,
    before_commit: impl AsyncFnOnce(&[(GeneratedKey, StoredKey)]) -> Outcome<()>,
) -> Outcome<(GeneratedKey, StoredKey)> {
    issue_many(state, principal, ctx, vec![new], before_commit).await?.pop().ok_or_else(key_not_found)
}

/// Issues every key of `batch` for `principal` in one transaction (all or none); each
/// generated key (shown once) with the stored key, in the batch's order.
/// `before_commit` sees the answer (the keys shown once with what is stored) once the
/// commands are decided and before they are stored: the caller keeps it with an idempotency
/// claim, so a retry after a crash at any moment gets exactly it.
pub async fn issue_many(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    batch: Vec<NewKey>,
    before_commit: impl AsyncFnOnce(&[(GeneratedKey, StoredKey)]) -> Outcome<()>,
) -> Outcome<Vec<(GeneratedKey, StoredKey)>> {
    let issuer = issuer_of(state, principal)?;
    let mut batch = batch;
    if let Issuer::SubAccountManager(m) = &issuer {
        // A sub-account manager's keys belong to its sub-account unless they name one.
        for new in &mut batch {
            if let KeyOwner::Tenant { sub_account_id: sub @ None, .. } = &mut new.owner {
                *sub = Some(m.sub_account_id.clone());
            }
        }
    }
    let mut per_tenant: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for new in &batch {
        if let Some(tenant_id) = new.owner.tenant_id() {
            require_tenant(state, tenant_id)?;
            *per_tenant.entry(tenant_id.to_string()).or_default() += 1;
        }
    }
    for (tenant_id, adding) in &per_tenant {
        check_key_limit(state, tenant_id, *adding)?;
    }
    let mut parents: std::collections::HashMap<(String, String), ParentLimits> =
        std::collections::HashMap::new();
    let mut commands = Vec::with_capacity(batch.len());
    let mut generated_keys = Vec::with_capacity(batch.len());
    let at = OffsetDateTime::now_utc();
    for new in batch {
        let parent = match &new.owner {
            KeyOwner::Tenant { tenant_id, sub_account_id: Some(sub) } => {
                let key = (tenant_id.clone(), sub.clone());
                if !parents.contains_key(&key) {
                    parents.insert(key.clone(), parent_limits(&state.pool, tenant_id, sub).await?);
                }
                parents.get(&key).cloned()
            }
            _ => None,
        };
        let generated = key_format::generate();
        let tenant = new.owner.tenant_id().map(str::to_string);
        let command = ApiKeyCommand::Issue {
            public_id: generated.public_id.clone(),
            owner: new.owner,
            role: new.role,
            name: new.name,
            secret_hash: state.hasher.hash_hex(&generated.full),
            settings: new.settings,
            parent,
            at,
            issuer: issuer.clone(),
        };
        let meta = CommandMetadata::new(principal, ctx, tenant.as_deref());
        commands.push((generated.public_id.clone(), command, meta));
        generated_keys.push(generated);
    }
    let (decided, stored) = crate::commands::Commands::decide_keys(commands).await?;
    // The answer is the projection's own fold of the key's events (what `api_keys` will hold
    // for it): no read back on the commands' path, and known before anything is stored.
    let answer = generated_keys
        .into_iter()
        .zip(decided)
        .map(|(generated, events)| {
            let record = record_of(&generated.public_id, events).ok_or_else(key_not_found)?;
            Ok((generated, StoredKey { record, last_used_at: None }))
        })
        .collect::<Outcome<Vec<_>>>()?;
    before_commit(&answer).await?;
    state.commands.persist_keys(stored).await?;
    state.readmodels.wait_for_head().await;
    if let Some((first, _)) = answer.first() {
        tracing::info!(public_id = %first.public_id, count = answer.len(), "api key issued");
    }
    Ok(answer)
}

/// The key record the `api_keys` projection makes of a new key's events.
fn record_of(public_id: &str, events: Vec<ApiKeyEvent>) -> Option<KeyRecord> {
    let mut record = None;
    for event in events {
        match change_for(public_id, KeyLookupEvent::Key(event), record) {
            Some(KeyLookupChange::Key(next)) => record = Some(*next),
            _ => return None,
        }
    }
    record
}

/// What to do to an existing key.
#[derive(Debug)]
pub enum KeyAction {
    /// Change settings.
    Update(KeyChanges),
    /// Stop it until enabled.
    Disable,
    /// Undo a disable.
    Enable,
    /// New secret; the old one works for `grace_seconds` (0: stops at once).
    Rotate {
        /// Grace period.
        grace_seconds: u32,
    },
    /// Terminal.
    Revoke,
}

/// Runs `action` on key `public_id` (visible in `scope`) for `principal`; returns the key
/// after, and the new full key of a rotation (shown once).
pub async fn act(
    state: &Ctx,
    principal: &Principal,
    ctx: &RequestMeta,
    public_id: &str,
    scope: Scope<'_>,
    action: KeyAction,
) -> Outcome<(StoredKey, Option<GeneratedKey>)> {
    let before = load(&state.pool, public_id, scope).await?;
    let issuer = issuer_of(state, principal)?;
    let at = OffsetDateTime::now_utc();
    let mut fresh = None;
    let command = match action {
        KeyAction::Update(changes) => {
            let parent = match (&before.record.tenant_id, &before.record.sub_account_id) {
                (Some(tenant), Some(sub)) => Some(parent_limits(&state.pool, tenant, sub).await?),
                _ => None,
            };
            ApiKeyCommand::Update { changes, parent, at, issuer }
        }
        KeyAction::Disable => ApiKeyCommand::Disable { at, issuer },
        KeyAction::Enable => ApiKeyCommand::Enable { at, issuer },
        KeyAction::Revoke => ApiKeyCommand::Revoke { reason: None, at, issuer },
        KeyAction::Rotate { grace_seconds } => {
            if before.record.status == KeyStatus::Revoked {
                return Err(Failure::new(Code::ApiKeyRevoked, "api key is revoked"));
            }
            // Same public id, new secret: a key string has the public id inside it.
            let generated = key_format::generate_for(public_id);
            let grace_until =
                (grace_seconds > 0).then(|| at + time::Duration::seconds(i64::from(grace_seconds)));
            let new_secret_hash = state.hasher.hash_hex(&generated.full);
            fresh = Some(generated);
            ApiKeyCommand::Rotate { new_secret_hash, grace_until, at, issuer }
        }
    };
    let meta = CommandMetadata::new(principal, ctx, before.record.tenant_id.as_deref());
    execute(&state.commands.api_keys, &before.record.public_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    Ok((load(&state.pool, &before.record.public_id, scope).await?, fresh))
}
