//! The command side: one cqrs-es framework per aggregate over the Postgres event store, and
//! the audit metadata every command carries.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework};
use sqlx::PgPool;
use tokenhub_aggregates::tenant::Tenant;
use tokenhub_aggregates::DomainError;

use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::store::repository::TENANT_META_KEY;
use crate::store::PgEventRepository;

/// A cqrs-es framework for `A` over the event store (plain event-store mode, no snapshots).
pub type Framework<A> = CqrsFramework<A, PersistedEventStore<PgEventRepository, A>>;

fn framework<A: Aggregate>(repo: PgEventRepository, services: A::Services) -> Framework<A> {
    CqrsFramework::new(PersistedEventStore::new_event_store(repo), vec![], services)
}

/// The command frameworks, one per aggregate.
#[derive(Clone)]
pub struct Commands {
    /// Tenants.
    pub tenants: Arc<Framework<Tenant>>,
}

impl Commands {
    /// Frameworks over `pool`.
    pub fn new(pool: PgPool) -> Self {
        let repo = PgEventRepository::new(pool);
        Self { tenants: Arc::new(framework(repo, ())) }
    }
}

/// Audit metadata stored with every event of a command: who, from where, which request, when.
#[derive(Debug, Clone)]
pub struct CommandMetadata(HashMap<String, String>);

impl CommandMetadata {
    /// Metadata for a command by `principal` in the request `ctx`, concerning `tenant_id`.
    pub fn new(principal: &Principal, ctx: &RequestContext, tenant_id: Option<&str>) -> Self {
        let (kind, id) = principal.actor();
        let mut map = HashMap::from([
            ("actor_kind".to_string(), kind.to_string()),
            ("actor_id".to_string(), id),
            ("request_id".to_string(), ctx.request_id.clone()),
            ("source_ip".to_string(), ctx.source_ip.clone()),
            ("user_agent".to_string(), ctx.user_agent.clone()),
            ("time".to_string(), crate::time_fmt::rfc3339(time::OffsetDateTime::now_utc())),
        ]);
        if let Some(tenant_id) = tenant_id {
            map.insert(TENANT_META_KEY.to_string(), tenant_id.to_string());
        }
        Self(map)
    }

    /// Metadata for a command issued by the server itself (CLI, background jobs).
    pub fn system(reason: &str, tenant_id: Option<&str>) -> Self {
        let ctx = RequestContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            source_ip: String::new(),
            user_agent: format!("tokenhub/{}", env!("CARGO_PKG_VERSION")),
        };
        let mut meta = Self::new(&Principal::SuperAdmin, &ctx, tenant_id);
        meta.0.insert("actor_kind".into(), "system".into());
        meta.0.insert("actor_id".into(), reason.into());
        meta
    }
}

/// Runs `command` on aggregate `id` and maps refusals to API errors.
pub async fn execute<A>(
    framework: &Framework<A>,
    id: &str,
    command: A::Command,
    metadata: CommandMetadata,
) -> Result<(), ApiError>
where
    A: Aggregate,
    A::Error: DomainError,
{
    framework.execute_with_metadata(id, command, metadata.0).await.map_err(ApiError::from)
}
