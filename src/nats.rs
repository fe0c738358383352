//! NATS connection and the JetStream streams (events, usage).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Where events go on NATS.
#[derive(Debug, Clone)]
pub struct EventsStreamConfig {
    /// Stream name, e.g. `TOKENHUB_EVENTS`.
    pub stream: String,
    /// Subject prefix, e.g. `tokenhub`; events go to `<prefix>.events.>`.
    pub subject_prefix: String,
    /// Replicas of the stream in a JetStream cluster (`NATS_STREAM_REPLICAS`).
    pub replicas: usize,
}

impl EventsStreamConfig {
    /// The subject filter of the stream.
    pub fn subjects(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    /// The subject of one event: `<prefix>.events.<tenant>.<aggregate>.<event>`.
    pub fn subject(&self, tenant_id: Option<&str>, aggregate_type: &str, event_type: &str) -> String {
        let event = event_type.rsplit('.').next().unwrap_or(event_type);
        format!(
            "{}.events.{}.{}.{}",
            self.subject_prefix,
            tenant_id.unwrap_or("_platform"),
            aggregate_type,
            event
        )
    }
}

/// How long JetStream remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Connects; the client keeps retrying in the background when the server is down, so the
/// service starts (and commands work) during a NATS outage. With `tls_ca` (`NATS_TLS_CA_FILE`)
/// the connection requires TLS and a server certificate from that CA.
pub async fn connect(
    urls: &str,
    tls_ca: Option<&std::path::Path>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    options(tls_ca)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .name("tokenhub")
        .connect(servers(urls)?)
        .await
}

/// Connection options: TLS with `tls_ca` as the only trusted CA, when given.
pub fn options(tls_ca: Option<&std::path::Path>) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new();
    match tls_ca {
        Some(ca) => options.add_root_certificates(ca.to_path_buf()).require_tls(true),
        None => options,
    }
}

/// The servers of `NATS_URL`: one URL, or several separated by commas (the nodes of a
/// cluster; the client connects to any that answers and fails over to the others).
pub fn servers(urls: &str) -> Result<Vec<async_nats::ServerAddr>, async_nats::ConnectError> {
    let parsed: Result<Vec<async_nats::ServerAddr>, _> =
        urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::parse).collect();
    match parsed {
        Ok(list) if !list.is_empty() => Ok(list),
        Ok(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "NATS_URL names no server").into())
        }
        Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("NATS_URL: {e}")).into()),
    }
}

/// Creates the events stream when missing and returns it.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<stream::Stream, async_nats::Error> {
    ensure_stream(js, &config.stream, config.subjects(), config.replicas, "TokenHub domain events").await
}

/// An existing stream of that name does not take our subjects (e.g. another deployment's or
/// another subject prefix's): publishing would fail and consuming would read nothing.
#[derive(Debug, thiserror::Error)]
#[error("JetStream stream {name} exists with subjects {found:?}, not {wanted}: give this deployment another stream name (or delete that stream)")]
pub struct ForeignStream {
    /// The stream.
    pub name: String,
    /// Its subjects.
    pub found: Vec<String>,
    /// Ours.
    pub wanted: String,
}

/// Creates a stream of CloudEvents when missing (file storage, limits retention, the
/// de-duplication window) and returns it; refuses an existing stream without our subjects.
async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: String,
    replicas: usize,
    what: &str,
) -> Result<stream::Stream, async_nats::Error> {
    let config = stream::Config {
        name: name.to_string(),
        subjects: vec![subjects.clone()],
        num_replicas: replicas.max(1),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some(format!("{what} (CloudEvents 1.0, structured JSON)")),
        ..Default::default()
    };
    // Instances started together race to create it: the loser's create fails because the
    // winner's now exists, and a second look finds it.
    let mut stream = match js.get_or_create_stream(config.clone()).await {
        Ok(stream) => stream,
        Err(first) => {
            tracing::info!(stream = name, error = %first, "stream creation raced; looking again");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            js.get_or_create_stream(config).await?
        }
    };
    let existing = stream.info().await?.config.clone();
    if !existing.subjects.contains(&subjects) {
        return Err(Box::new(ForeignStream {
            name: name.to_string(),
            found: existing.subjects,
            wanted: subjects,
        }));
    }
    // A stream created with fewer (or more) replicas than configured is changed in place:
    // JetStream moves its data; a single server refuses more than one, which is reported.
    if existing.num_replicas != replicas.max(1) {
        let wanted = stream::Config { num_replicas: replicas.max(1), ..existing };
        match js.update_stream(wanted).await {
            Ok(_) => tracing::info!(stream = name, replicas, "stream replicas changed"),
            Err(e) => {
                tracing::warn!(stream = name, replicas, error = %e, "cannot change the stream's replicas")
            }
        }
    }
    Ok(stream)
}

/// Where usage records go on NATS.
#[derive(Debug, Clone)]
pub struct UsageStreamConfig {
    /// Stream name, e.g. `TOKENHUB_USAGE`.
    pub stream: String,
    /// Subject prefix, shared with the events stream; records go to `<prefix>.usage.<tenant>`.
    pub subject_prefix: String,
    /// Durable consumer that builds the rollups.
    pub consumer: String,
    /// Replicas of the stream in a JetStream cluster (`NATS_STREAM_REPLICAS`).
    pub replicas: usize,
}

impl UsageStreamConfig {
    /// The subject filter of the stream.
    pub fn subjects(&self) -> String {
        format!("{}.usage.>", self.subject_prefix)
    }

    /// The subject of a tenant's records.
    pub fn subject(&self, tenant_id: &str) -> String {
        format!("{}.usage.{}", self.subject_prefix, tenant_id)
    }
}

/// Creates the usage stream when missing and returns it.
pub async fn ensure_usage_stream(
    js: &jetstream::Context,
    config: &UsageStreamConfig,
) -> Result<stream::Stream, async_nats::Error> {
    ensure_stream(js, &config.stream, config.subjects(), config.replicas, "TokenHub usage records").await
}

/// The checkpoint name of the relay that publishes the log to events stream `stream`.
pub fn relay_checkpoint(stream: &str) -> String {
    format!("nats_relay:{stream}")
}
