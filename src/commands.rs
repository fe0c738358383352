//! The command side: one cqrs-es framework per aggregate over the Postgres event store, the
//! audit metadata every command carries ([`RequestMeta`], a plain struct), and the command
//! side's own error ([`CommandError`]; `src/http/error.rs` maps it to HTTP). No HTTP types here.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent};
use sqlx::PgPool;
use tokenhub_aggregates::api_key::{ApiKey, ApiKeyCommand, ApiKeyEvent};
use tokenhub_aggregates::role::{default_roles, role_id, Role, RoleCommand};
use tokenhub_aggregates::secret::Secret;
use tokenhub_aggregates::sub_account::SubAccount;
use tokenhub_aggregates::tenant::{Tenant, TenantCommand, TenantError};
use tokenhub_aggregates::user::User;
use tokenhub_aggregates::DomainError;

use crate::auth::Principal;
use crate::store::repository::TENANT_META_KEY;
use crate::store::PgEventRepository;

/// A cqrs-es framework for `A` over the event store (plain event-store mode, no snapshots).
pub type Framework<A> = CqrsFramework<A, PersistedEventStore<PgEventRepository, A>>;

fn framework<A: Aggregate>(repo: PgEventRepository, services: A::Services) -> Framework<A> {
    // Snapshot mode (see `store::repository`): a load reads the newest snapshot and the events
    // after it, so a command's cost does not grow with its aggregate's history.
    let store = PersistedEventStore::new_snapshot_store(repo, crate::store::repository::SNAPSHOT_EVERY);
    CqrsFramework::new(store, vec![], services)
}

/// The command frameworks, one per aggregate.
#[derive(Clone)]
pub struct Commands {
    repo: PgEventRepository,
    /// Tenants.
    pub tenants: Arc<Framework<Tenant>>,
    /// API keys.
    pub api_keys: Arc<Framework<ApiKey>>,
    /// Sub-accounts.
    pub sub_accounts: Arc<Framework<SubAccount>>,
    /// Roles.
    pub roles: Arc<Framework<Role>>,
    /// Secrets.
    pub secrets: Arc<Framework<Secret>>,
    /// People.
    pub users: Arc<Framework<User>>,
}

impl Commands {
    /// Frameworks over `pool`; the batches their writer commits also go to `committed` (the
    /// projection runner of this process).
    pub fn new(pool: PgPool, committed: Option<crate::store::group_commit::Committed>) -> Self {
        let repo = PgEventRepository::with_group_commit(pool, committed);
        Self {
            tenants: Arc::new(framework(repo.clone(), ())),
            api_keys: Arc::new(framework(repo.clone(), ())),
            sub_accounts: Arc::new(framework(repo.clone(), ())),
            roles: Arc::new(framework(repo.clone(), ())),
            secrets: Arc::new(framework(repo.clone(), ())),
            users: Arc::new(framework(repo.clone(), ())),
            repo,
        }
    }

    /// Creates a tenant, its first tenant-admin key and its default roles in one
    /// transaction: all exist, or none does.
    pub async fn create_tenant(
        &self,
        tenant_id: &str,
        tenant: TenantCommand,
        key_id: &str,
        key: ApiKeyCommand,
        metadata: CommandMetadata,
    ) -> Result<(), CommandError> {
        let meta = serde_json::to_value(&metadata.0).unwrap_or_default();
        let tenant_events = decide_new::<Tenant>(tenant).await.map_err(user_error)?;
        let mut serialized = serialize::<Tenant>(tenant_id, &tenant_events, &meta);
        let key_events = decide_new::<ApiKey>(key).await.map_err(user_error)?;
        serialized.extend(serialize::<ApiKey>(key_id, &key_events, &meta));
        let at = time::OffsetDateTime::now_utc();
        for (name, description, permissions) in default_roles() {
            let command = RoleCommand::Create {
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
                at,
            };
            let events = decide_new::<Role>(command).await.map_err(user_error)?;
            serialized.extend(serialize::<Role>(&role_id(tenant_id, name), &events, &meta));
        }
        self.repo
            .persist::<Tenant>(&serialized, None)
            .await
            .map_err(|e| CommandError::from(AggregateError::<TenantError>::from(e)))
    }
}

impl Commands {
    /// Issues new keys in one transaction: all are stored, or none is. `keys` are (public id,
    /// the issue command, its metadata); when there are several, a refusal names the key's
    /// index. Each key's events, in the order of `keys`.
    pub async fn issue_keys_together(
        &self,
        keys: Vec<(String, ApiKeyCommand, CommandMetadata)>,
    ) -> Result<Vec<Vec<ApiKeyEvent>>, CommandError> {
        let (decided, serialized) = Self::decide_keys(keys).await?;
        self.persist_keys(serialized).await?;
        Ok(decided)
    }

    /// The first half of [`Commands::issue_keys_together`]: each key's events, decided, and
    /// what [`Commands::persist_keys`] stores (nothing is stored yet).
    pub async fn decide_keys(
        keys: Vec<(String, ApiKeyCommand, CommandMetadata)>,
    ) -> Result<(Vec<Vec<ApiKeyEvent>>, DecidedKeys), CommandError> {
        let mut serialized = Vec::with_capacity(keys.len());
        let mut decided = Vec::with_capacity(keys.len());
        let several = keys.len() > 1;
        for (n, (id, command, metadata)) in keys.into_iter().enumerate() {
            let meta = serde_json::to_value(&metadata.0).unwrap_or_default();
            let events = decide_new::<ApiKey>(command).await.map_err(|e| match user_error(e) {
                CommandError::Refused { code, message } if several => {
                    CommandError::Refused { code, message: format!("keys[{n}]: {message}") }
                }
                other => other,
            })?;
            serialized.extend(serialize::<ApiKey>(&id, &events, &meta));
            decided.push(events);
        }
        Ok((decided, DecidedKeys(serialized)))
    }

    /// The second half: stores keys [`Commands::decide_keys`] decided, in one transaction.
    pub async fn persist_keys(&self, keys: DecidedKeys) -> Result<(), CommandError> {
        self.repo.persist::<ApiKey>(&keys.0, None).await.map_err(|e| {
            CommandError::from(AggregateError::<tokenhub_aggregates::api_key::ApiKeyError>::from(e))
        })
    }
}

/// Keys decided and serialised, not yet stored.
pub struct DecidedKeys(Vec<SerializedEvent>);

fn user_error<E: DomainError>(e: E) -> CommandError {
    CommandError::from(AggregateError::UserError(e))
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The aggregate refused it: a domain code (one of the code table's) and a message.
    #[error("{}: {message}", code.as_str())]
    Refused {
        /// The domain code, e.g. [`Code::TenantDeleted`](crate::error::Code::TenantDeleted).
        code: crate::error::Code,
        /// What the caller is told.
        message: String,
    },
    /// A concurrent command changed the aggregate first.
    #[error("the aggregate was changed by a concurrent command")]
    Conflict,
    /// The event store could not be reached.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A bug: events that do not deserialize, an unexpected failure.
    #[error("unexpected: {0}")]
    Internal(String),
}

impl<E: DomainError> From<AggregateError<E>> for CommandError {
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => Self::Refused { code: e.code(), message: e.to_string() },
            AggregateError::AggregateConflict => Self::Conflict,
            AggregateError::DatabaseConnectionError(e) => Self::Unavailable(e.to_string()),
            AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

/// Where a command's request came from (the HTTP layer fills it in).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The request id.
    pub request_id: String,
    /// The client address.
    pub source_ip: String,
    /// The `User-Agent`, cut to 256 characters.
    pub user_agent: String,
    /// The person behind the request (a session's user): (user id, e-mail).
    pub user: Option<(String, String)>,
}

/// The events `command` gives on a new aggregate (a create), decided and not stored: a create
/// whose answer must be kept before it is stored (an idempotent create) reads its answer from
/// these, then runs the same command through [`execute`].
pub async fn decide_create<A: Aggregate<Services = ()>>(
    command: A::Command,
) -> Result<Vec<A::Event>, CommandError>
where
    A::Error: DomainError,
{
    decide_new::<A>(command).await.map_err(user_error)
}

/// Runs `command` on a new (event-less) aggregate and returns its events, without storing.
async fn decide_new<A: Aggregate<Services = ()>>(command: A::Command) -> Result<Vec<A::Event>, A::Error> {
    let mut aggregate = A::default();
    let sink = EventSink::<A>::default();
    aggregate.handle(command, &(), &sink).await?;
    Ok(sink.collect().await)
}

fn serialize<A: Aggregate>(id: &str, events: &[A::Event], meta: &serde_json::Value) -> Vec<SerializedEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| SerializedEvent {
            aggregate_id: id.to_string(),
            sequence: i + 1,
            aggregate_type: A::TYPE.to_string(),
            event_type: e.event_type(),
            event_version: e.event_version(),
            payload: serde_json::to_value(e).unwrap_or_default(),
            metadata: meta.clone(),
        })
        .collect()
}

/// Audit metadata stored with every event of a command: who, from where, which request, when.
#[derive(Debug, Clone)]
pub struct CommandMetadata(HashMap<String, String>);

impl CommandMetadata {
    /// Metadata for a command by `principal` in the request `ctx`, concerning `tenant_id`. A
    /// session's person (`ctx.user`) is the actor rather than the principal of its role.
    pub fn new(principal: &Principal, ctx: &RequestMeta, tenant_id: Option<&str>) -> Self {
        match &ctx.user {
            Some((user_id, email)) => {
                Self::with_actor("user", user_id.clone(), Some(email.as_str()), ctx, tenant_id)
            }
            None => {
                let (kind, id) = principal.actor();
                Self::with_actor(kind, id, None, ctx, tenant_id)
            }
        }
    }

    /// Metadata for a command a person causes themselves, with no principal yet (accepting
    /// an invite, signing in).
    pub fn person(user_id: &str, email: &str, ctx: &RequestMeta, tenant_id: Option<&str>) -> Self {
        Self::with_actor("user", user_id.to_string(), Some(email), ctx, tenant_id)
    }

    /// Metadata for a command the server itself issues (e.g. the webhook worker disabling an
    /// endpoint): actor kind `system`, actor id naming the part of the server.
    pub fn system(actor_id: &str, tenant_id: Option<&str>) -> Self {
        Self::with_actor("system", actor_id.to_string(), None, &RequestMeta::default(), tenant_id)
    }

    fn with_actor(
        kind: &str,
        id: String,
        email: Option<&str>,
        ctx: &RequestMeta,
        tenant_id: Option<&str>,
    ) -> Self {
        let mut map = HashMap::from([
            ("actor_kind".to_string(), kind.to_string()),
            ("actor_id".to_string(), id),
            ("request_id".to_string(), ctx.request_id.clone()),
            ("source_ip".to_string(), ctx.source_ip.clone()),
            ("user_agent".to_string(), ctx.user_agent.clone()),
            ("time".to_string(), crate::time_fmt::rfc3339(time::OffsetDateTime::now_utc())),
        ]);
        if let Some(email) = email {
            map.insert("actor_email".to_string(), email.to_string());
        }
        if let Some(tenant_id) = tenant_id {
            map.insert(TENANT_META_KEY.to_string(), tenant_id.to_string());
        }
        Self(map)
    }
}

/// How many times [`execute_retrying`] tries.
pub const RETRIES: u32 = 16;

/// Runs `command` like [`execute`], retrying (up to [`RETRIES`] times, after a short random
/// pause that grows with each try, so that racers spread out) when a concurrent write to the
/// same aggregate won: for commands whose only preconditions are re-checked on the reloaded
/// aggregate (recording a reveal, saving a whole configuration), so concurrent callers all
/// succeed, one after the other, instead of all but one getting 409.
pub async fn execute_retrying<A>(
    framework: &Framework<A>,
    id: &str,
    command: impl Fn() -> A::Command,
    metadata: CommandMetadata,
) -> Result<(), CommandError>
where
    A: Aggregate,
    A::Error: DomainError,
{
    let mut attempt = 0;
    loop {
        match framework.execute_with_metadata(id, command(), metadata.0.clone()).await {
            Err(AggregateError::AggregateConflict) if attempt < RETRIES => {
                attempt += 1;
                let pause = rand::random_range(0..=2 * u64::from(attempt.min(8)));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other.map_err(CommandError::from),
        }
    }
}

/// Runs `command` on aggregate `id`.
pub async fn execute<A>(
    framework: &Framework<A>,
    id: &str,
    command: A::Command,
    metadata: CommandMetadata,
) -> Result<(), CommandError>
where
    A: Aggregate,
    A::Error: DomainError,
{
    framework.execute_with_metadata(id, command, metadata.0).await.map_err(CommandError::from)
}

impl From<CommandError> for crate::error::Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Refused { code, message } => crate::error::Failure::new(code, message),
            CommandError::Conflict => crate::error::Failure::new(
                crate::error::Code::AggregateConflict,
                "the resource was changed by a concurrent request; retry",
            ),
            CommandError::Unavailable(e) => crate::error::Failure::unavailable(&e),
            CommandError::Internal(e) => crate::error::Failure::internal(&e),
        }
    }
}
