//! The `tokenhub` command line: `serve`, `migrate`, `projections rebuild`,
//! `master-key rotate`, `kek`, `users create`, `events tail|republish`, `usage tail`, `audit`, `openapi`,
//! `probe`.

use std::io::Write;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::app::{connect_and_migrate, load_pepper, App, StartError};
use crate::audit::AuditFilter;
use crate::auth::master::{generate_master_key, stored_hmac};
use crate::config::Config;
use crate::store::settings;

/// TokenHub control plane.
#[derive(Parser)]
#[command(name = "tokenhub", version, about)]
pub struct Cli {
    /// Settings (environment variables or flags).
    #[command(flatten)]
    pub config: Config,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server and the background readers (migrations run first).
    Serve,
    /// Run the OpenAI-compatible gateway on `GATEWAY_LISTEN_ADDR` (no admin routes): it
    /// follows the log like another instance and forwards data keys' requests to providers.
    Gateway,
    /// Apply database migrations and exit.
    Migrate,
    /// Query-table maintenance.
    Projections {
        /// What to do.
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// Master key maintenance.
    MasterKey {
        /// What to do.
        #[command(subcommand)]
        action: MasterKeyAction,
    },
    /// People: invite the first super admin (the master key stays the break-glass credential).
    Users {
        /// What to do.
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Key-encryption key maintenance.
    Kek {
        /// What to do.
        #[command(subcommand)]
        action: KekAction,
    },
    /// Print the events on NATS (the JetStream events stream), one line each.
    Events {
        /// What to do.
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Usage records on NATS.
    Usage {
        /// What to do.
        #[command(subcommand)]
        action: UsageAction,
    },
    /// The audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Exit 0 when `url` answers 2xx within two seconds, else 1: a container health check for
    /// images without a shell or curl (`tokenhub probe http://127.0.0.1:8080/readyz`).
    Probe {
        /// What to ask.
        #[arg(default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
    /// Print the OpenAPI document (of the gateway with --gateway).
    Openapi {
        /// The gateway's document (`openapi/gateway.json`) instead of the server's.
        #[arg(long)]
        gateway: bool,
    },
}

/// `kek` actions.
#[derive(Subcommand)]
pub enum KekAction {
    /// Print a new random KEK (base64) to put in TOKENHUB_KEK.
    Generate,
    /// Re-wrap every tenant data key under the current KEK (TOKENHUB_KEK), opening the old
    /// wrappings with TOKENHUB_KEK_PREVIOUS. Safe while servers run with both set.
    Rotate,
}

/// `events` actions.
#[derive(Subcommand)]
pub enum EventsAction {
    /// Print the stream's messages (subject, Nats-Msg-Id, CloudEvent) from the start, or the
    /// last N; with --follow keep printing new ones.
    Tail {
        /// Only the last N messages.
        #[arg(long)]
        last: Option<u64>,
        /// Keep waiting for new messages.
        #[arg(long)]
        follow: bool,
    },
    /// Repair the events stream from the log: publish every event the stream lacks (after a
    /// purge, or a replica that lost data), as the relay would; idempotent. Progress on stderr.
    Republish {
        /// Only count what is missing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `usage` actions.
#[derive(Subcommand)]
pub enum UsageAction {
    /// The example billing subscriber: read the usage stream (NATS_USAGE_STREAM) through a
    /// durable consumer and print per-tenant totals; with --follow keep printing them.
    Tail {
        /// The durable consumer's name (a new name starts from the stream's first record).
        #[arg(long, default_value = "tokenhub-usage-tail")]
        consumer: String,
        /// Keep waiting for new records.
        #[arg(long)]
        follow: bool,
        /// Print each new record too (its CloudEvent: key, sub-account, model, tags, tokens,
        /// status, latency), one JSON line, before the totals.
        #[arg(long)]
        records: bool,
    },
}

/// `audit` actions.
#[derive(Subcommand)]
pub enum AuditAction {
    /// Export audit records as NDJSON, in constant memory, with a progress line on stderr.
    Export {
        /// Only this tenant.
        #[arg(long)]
        tenant_id: Option<String>,
        /// Only this aggregate type.
        #[arg(long)]
        aggregate_type: Option<String>,
        /// Only this aggregate id.
        #[arg(long)]
        aggregate_id: Option<String>,
        /// Only this event type.
        #[arg(long)]
        event_type: Option<String>,
        /// Only events by this actor id.
        #[arg(long)]
        actor_id: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        from: Option<time::OffsetDateTime>,
        /// Only events before this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        to: Option<time::OffsetDateTime>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Recompute the hash chain of the whole log; exits 1 and names the first broken position
    /// when it is broken.
    Verify,
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| e.to_string())
}

/// `users` actions.
#[derive(Subcommand)]
pub enum UsersAction {
    /// Invite a person; prints the one-time invite link (72 h).
    Create {
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Role: super_admin, finance_admin, auditor, tenant_admin, tenant_finance, tenant_viewer.
        #[arg(long)]
        role: String,
        /// The tenant, for tenant roles.
        #[arg(long)]
        tenant_id: Option<String>,
    },
}

/// `projections` actions.
#[derive(Subcommand)]
pub enum ProjectionsAction {
    /// Rebuild query tables from the event log (all, or the one named).
    Rebuild {
        /// `tenants` or `api_keys`; all when omitted.
        name: Option<String>,
    },
}

/// `master-key` actions.
#[derive(Subcommand)]
pub enum MasterKeyAction {
    /// Generate a new master key, store its argon2id hash, print it once.
    Rotate,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), StartError> {
    let config = cli.config;
    match cli.command {
        Command::Serve => serve(&config).await,
        Command::Gateway => gateway(&config).await,
        Command::Migrate => {
            connect_and_migrate(&config).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Projections { action: ProjectionsAction::Rebuild { name } } => rebuild(&config, name).await,
        Command::MasterKey { action: MasterKeyAction::Rotate } => rotate_master_key(&config).await,
        Command::Audit { action } => audit(&config, action).await,
        Command::Kek { action } => kek(&config, action).await,
        Command::Users { action: UsersAction::Create { email, role, tenant_id } } => {
            create_user(&config, &email, &role, tenant_id).await
        }
        Command::Events { action: EventsAction::Tail { last, follow } } => {
            tail_events(&config, last, follow).await
        }
        Command::Events { action: EventsAction::Republish { dry_run } } => {
            let pool = connect_and_migrate(&config).await?;
            let js = jetstream(&config).await?;
            let started = Instant::now();
            let mut progress = |done: i64, of: i64| {
                eprintln!(
                    "events republish: {done} of {of} positions checked ({} s)",
                    started.elapsed().as_secs()
                );
            };
            let report = crate::relay::republish::republish(
                &pool,
                &js,
                &config.events_stream(),
                dry_run,
                &mut progress,
            )
            .await
            .map_err(|e| nats_error(&e))?;
            let verb = if dry_run { "missing (dry run)" } else { "republished" };
            writeln!(
                std::io::stdout().lock(),
                "log: {} events; stream held {}; {verb}: {}",
                report.in_log,
                report.in_stream,
                if dry_run { report.in_log - report.in_stream } else { report.republished }
            )?;
            Ok(())
        }
        Command::Usage { action: UsageAction::Tail { consumer, follow, records } } => {
            let js = jetstream(&config).await?;
            let mut out = std::io::stdout().lock();
            crate::usage::tail::tail_printing(
                &js,
                &config.nats_usage_stream,
                &consumer,
                follow,
                records,
                &mut out,
            )
            .await
            .map_err(|e| nats_error(&e))?;
            Ok(())
        }
        Command::Probe { url } => {
            crate::app::install_crypto_provider();
            let answer = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build() {
                Ok(client) => client.get(&url).send().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(res) if res.status().is_success() => Ok(()),
                Ok(res) => Err(StartError::Config(format!("{url} answered {}", res.status()))),
                Err(e) => Err(StartError::Config(format!("{url}: {e}"))),
            }
        }
        Command::Openapi { gateway } => {
            let document = if gateway {
                crate::gateway::openapi::document_json()
            } else {
                crate::http::openapi::document_json()
            };
            std::io::stdout().write_all(document.as_bytes())?;
            Ok(())
        }
    }
}

async fn create_user(
    config: &Config,
    email: &str,
    role: &str,
    tenant_id: Option<String>,
) -> Result<(), StartError> {
    use tokenhub_aggregates::user::Membership;
    let membership = match tenant_id {
        None => Membership::Platform { role: role.to_string() },
        Some(tenant_id) => Membership::Tenant { tenant_id, role: role.to_string() },
    };
    // The services' context and the followers it reads through; no server, no worker.
    let app = App::build_as(config, crate::app::Role::Tool).await?;
    let ctx = crate::commands::RequestMeta {
        request_id: "cli".into(),
        user_agent: "tokenhub users create".into(),
        ..Default::default()
    };
    let invited = crate::services::users::invite(
        &app.state,
        &crate::auth::Principal::SuperAdmin,
        &ctx,
        email,
        membership,
    )
    .await;
    app.shutdown.cancel();
    app.drain().await;
    let invite = invited.map_err(|e| StartError::Config(format!("{}: {}", e.code.as_str(), e.message)))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "user {} invited; give them this link (single use, until {}):\n{}\naccept it with: curl -X POST {}/accept -H 'Content-Type: application/json' -d '{{\"password\": \"…\"}}'",
        invite.user_id,
        crate::time_fmt::rfc3339(invite.invite_expires_at),
        invite.invite_url,
        invite.invite_url
    )?;
    Ok(())
}

async fn gateway(config: &Config) -> Result<(), StartError> {
    let platform = crate::gateway::providers::platform_from_env(&config.gateway_providers)
        .map_err(StartError::Config)?;
    let app = App::build_as(config, crate::app::Role::Gateway).await?;
    let gateway = crate::gateway::Gateway::new(
        app.state.clone(),
        platform,
        config.gateway_allow_private_upstreams,
        std::time::Duration::from_millis(config.gateway_upstream_timeout_ms),
    )
    .map_err(|e| StartError::Config(format!("gateway client: {e}")))?;
    let listener = tokio::net::TcpListener::bind(config.gateway_listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, tls = app.tls.is_some(), "gateway listening");
    let token = app.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    let limits = app.state.limits.clone();
    let served = crate::app::serve_router(
        crate::gateway::router(gateway.clone()),
        limits.max_connections,
        limits.header_read_timeout,
        app.tls.clone(),
        app.shutdown.clone(),
        listener,
    )
    .await;
    // The requests have ended: their usage records go out before the process does.
    if !gateway.flush_usage(USAGE_FLUSH_AT_SHUTDOWN).await {
        tracing::error!(
            within_s = USAGE_FLUSH_AT_SHUTDOWN.as_secs(),
            "usage records not published before shutdown (NATS unavailable); they are lost"
        );
    }
    app.drain().await;
    served
}

/// How long a stopping gateway waits for its last usage records to be published.
const USAGE_FLUSH_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve(config: &Config) -> Result<(), StartError> {
    let app = App::build(config).await?;
    if let Some(key) = &app.generated_master_key {
        show_generated_master_key(config, key)?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, tls = app.tls.is_some(), "listening");
    let token = app.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    let served = app.serve(listener).await;
    app.drain().await;
    served
}

/// Shows a generated master key once: on the terminal when stderr is one; otherwise (a
/// service manager, a container log) it is written to `MASTER_KEY_FILE` with mode 0600 and
/// only that file's path is logged, so the key never lands in a log collector.
fn show_generated_master_key(config: &Config, key: &str) -> Result<(), StartError> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  No master key was configured, so one was generated. It is shown only now:\n\n    {key}\n\n  \
             Only its HMAC is stored. Replace it with `tokenhub master-key rotate`.\n"
        );
        return Ok(());
    }
    let path = &config.master_key_file;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{key}\n").as_bytes())?;
    tracing::warn!(file = %path.display(),
        "no master key was configured: generated one and wrote it to this file (mode 0600); read it, store it safely, then delete the file");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints a progress line at most twice a second (and the last one), so logs stay small.
struct Throttle(std::sync::Mutex<Option<Instant>>);

impl Throttle {
    fn new() -> Self {
        Self(std::sync::Mutex::new(None))
    }

    fn ready(&self, last: bool) -> bool {
        let Ok(mut at) = self.0.lock() else { return true };
        let due = last || at.is_none_or(|t| t.elapsed().as_millis() >= 500);
        if due {
            *at = Some(Instant::now());
        }
        due
    }
}

async fn rebuild(config: &Config, name: Option<String>) -> Result<(), StartError> {
    let pool = connect_and_migrate(config).await?;
    let projections = tokenhub_projections::select(name.as_deref())?;
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    eprintln!("rebuild {}: one pass over the log, one transaction", names.join(", "));
    let started = Instant::now();
    let throttle = Throttle::new();
    let progress = |_: &str, position: i64, head: i64| {
        if throttle.ready(position >= head) {
            let rate = position as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let pct = if head > 0 { position * 100 / head } else { 100 };
            eprintln!("rebuild: {position}/{head} events ({pct}%), {rate:.0} events/s");
        }
    };
    let reached = tokenhub_projections::rebuild_all(&pool, &projections, &progress).await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "rebuild: done at position {reached} in {secs:.2}s ({:.0} events/s)",
        reached as f64 / secs.max(1e-3)
    );
    Ok(())
}

async fn rotate_master_key(config: &Config) -> Result<(), StartError> {
    let pool = connect_and_migrate(config).await?;
    let hasher =
        crate::auth::hashing::KeyHasher::new(&load_pepper(&pool, config.key_pepper.as_deref()).await?);
    let key = generate_master_key();
    settings::put(&pool, settings::MASTER_KEY_HASH, &stored_hmac(&hasher, &key)).await?;
    if config.master_api_key.is_some() || config.master_api_key_hash.is_some() {
        eprintln!(
            "warning: MASTER_API_KEY or MASTER_API_KEY_HASH is set and takes precedence over the stored key"
        );
    }
    eprintln!("New master key (shown once; running servers pick it up within 5 s):\n\n    {key}\n");
    Ok(())
}

async fn audit(config: &Config, action: AuditAction) -> Result<(), StartError> {
    // Read-only: never creates or migrates a database, and an empty log is an error.
    let pool = crate::store::connect_existing(&config.database_url, 2).await?;
    if tokenhub_projections::log::head_position(&pool).await? == 0 {
        return Err(StartError::Config(
            "the event log is empty: nothing to export or verify (is DATABASE_URL the right database?)"
                .into(),
        ));
    }
    match action {
        AuditAction::Export {
            tenant_id,
            aggregate_type,
            aggregate_id,
            event_type,
            actor_id,
            from,
            to,
            output,
        } => {
            let filter = AuditFilter {
                tenant_id,
                aggregate_type,
                aggregate_id,
                event_type,
                actor_id,
                actor_email: None,
                from,
                to,
                limit: None,
                cursor: None,
                order: None,
            };
            let head = tokenhub_projections::log::head_position(&pool).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let started = Instant::now();
            let throttle = Throttle::new();
            let mut stream = std::pin::pin!(crate::audit::export::ndjson_stream(pool.clone(), filter));
            let (mut lines, mut bytes) = (0u64, 0u64);
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                let chunk = chunk?;
                lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                bytes += chunk.len() as u64;
                out.write_all(&chunk)?;
                if throttle.ready(false) {
                    let rate = lines as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    let mib = bytes as f64 / 1048576.0;
                    eprintln!(
                        "audit export: {lines} events ({mib:.1} MiB), {rate:.0} events/s, log head {head}"
                    );
                }
            }
            out.flush()?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "audit export: done, {lines} events in {secs:.2}s ({:.0} events/s)",
                lines as f64 / secs.max(1e-3)
            );
            Ok(())
        }
        AuditAction::Verify => {
            let started = Instant::now();
            let throttle = Throttle::new();
            let progress = |checked: i64, head: i64| {
                if throttle.ready(checked >= head) {
                    eprintln!("audit verify: {checked}/{head} events");
                }
            };
            let report = crate::audit::verify_chain(&pool, &progress).await?;
            match &report.first_break {
                None => {
                    eprintln!(
                        "audit verify: chain intact, {} events in {:.2}s",
                        report.checked,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(())
                }
                Some(b) => Err(StartError::AuditChain(format!(
                    "audit chain broken at position {} ({}); {} events before it are intact",
                    b.position, b.reason, report.checked
                ))),
            }
        }
    }
}

fn nats_error(e: &dyn std::fmt::Display) -> StartError {
    StartError::Config(format!("nats: {e}"))
}

/// A JetStream context on `NATS_URL`, for the commands that read a stream.
async fn jetstream(config: &Config) -> Result<async_nats::jetstream::Context, StartError> {
    // No retry in the background: a command that reads a stream fails at once when NATS is away.
    let servers = crate::nats::servers(&config.nats_url).map_err(|e| nats_error(&e))?;
    let client = crate::nats::options(config.nats_tls_ca_file.as_deref())
        .connect(servers)
        .await
        .map_err(|e| nats_error(&e))?;
    Ok(async_nats::jetstream::new(client))
}

async fn tail_events(config: &Config, last: Option<u64>, follow: bool) -> Result<(), StartError> {
    use async_nats::jetstream::consumer::{pull, DeliverPolicy};
    use futures::StreamExt;

    let js = jetstream(config).await?;
    let mut stream = js.get_stream(&config.nats_events_stream).await.map_err(|e| nats_error(&e))?;
    let last_seq = stream.info().await.map_err(|e| nats_error(&e))?.state.last_sequence;
    let deliver_policy = match last {
        Some(n) => DeliverPolicy::ByStartSequence { start_sequence: last_seq.saturating_sub(n) + 1 },
        None => DeliverPolicy::All,
    };
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error(&e))?;
    let mut out = std::io::stdout().lock();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(std::time::Duration::from_secs(1))
            .messages()
            .await
            .map_err(|e| nats_error(&e))?;
        let mut got = 0;
        while let Some(Ok(message)) = batch.next().await {
            got += 1;
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            writeln!(
                out,
                "{} Nats-Msg-Id={id} {}",
                message.subject,
                String::from_utf8_lossy(&message.payload)
            )?;
        }
        out.flush()?;
        if got == 0 && !follow {
            return Ok(());
        }
    }
}

async fn kek(config: &Config, action: KekAction) -> Result<(), StartError> {
    match action {
        KekAction::Generate => {
            use base64::Engine;
            let key = crate::crypto::SecretKey::generate();
            let line = base64::engine::general_purpose::STANDARD.encode(key.expose());
            writeln!(std::io::stdout().lock(), "{line}")?;
            eprintln!(
                "new KEK {} (shown once): set it as TOKENHUB_KEK and the old one in TOKENHUB_KEK_PREVIOUS",
                key.id
            );
            Ok(())
        }
        KekAction::Rotate => {
            let pool = connect_and_migrate(config).await?;
            let (keks, _) = crate::crypto::load_keks(
                config.kek.as_deref(),
                &config.kek_file,
                config.kek_previous.as_deref(),
            )
            .map_err(|e| StartError::Kek(e.to_string()))?;
            let throttle = Throttle::new();
            let progress = |done: u64, total: u64| {
                if throttle.ready(done >= total) {
                    eprintln!("kek rotate: {done}/{total} data keys re-wrapped");
                }
            };
            let done = crate::crypto::data_keys::rewrap_all(&pool, &keks, &progress)
                .await
                .map_err(|e| StartError::Kek(e.to_string()))?;
            crate::crypto::data_keys::record_kek(&pool, &keks.current.id)
                .await
                .map_err(|e| StartError::Kek(e.to_string()))?;
            eprintln!(
                "kek rotate: done, {done} data keys now under KEK {}; TOKENHUB_KEK_PREVIOUS can be removed",
                keks.current.id
            );
            Ok(())
        }
    }
}
