//! Webhook delivery (issue 14): the tenant configuration's `webhooks: [{url, events,
//! secret_ref}]`, delivered.
//!
//! - [`dispatch`] reads the event log by position, like the relay (one leader, a checkpoint,
//!   resumes after a crash, never skips) and records one delivery per event and matching
//!   endpoint, with the endpoints the tenant's configuration named *at that position*, so a
//!   replay of the log gives the same deliveries.
//! - [`notices`] raises the derived notices (`api_key.expiring`, `quota.threshold`,
//!   `rate_limit.exceeded`), each once per id.
//! - [`sender`] attempts them, in order per endpoint (the next waits for the previous to be
//!   delivered or given up), endpoints in parallel (bounded per tenant), with exponential
//!   back-off and jitter, for `WEBHOOK_RETRY_HOURS`; every attempt is recorded.
//! - [`sign`] signs by the Standard Webhooks spec; [`target`] resolves and checks every
//!   address before connecting to it (no DNS rebinding, no redirects, no proxy).

pub mod dispatch;
pub mod notices;
pub mod sender;
pub mod sign;
pub mod store;
pub mod target;

use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How deliveries behave (from the configuration).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Let webhooks reach loopback, private and other internal addresses.
    pub allow_private: bool,
    /// First retry after this; doubling from there (with ±20 % jitter), at most an hour.
    pub retry_base: Duration,
    /// Retries stop this long after a delivery was created: it is then `failed`.
    pub retry_for: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts in flight per tenant.
    pub tenant_concurrency: usize,
    /// How often the derived notices are looked for.
    pub notice_interval: Duration,
}

impl WebhookSettings {
    /// The settings of `config`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            allow_private: config.webhook_allow_private_targets,
            retry_base: Duration::from_millis(config.webhook_retry_base_ms),
            retry_for: Duration::from_secs(config.webhook_retry_for_seconds),
            disable_after: Duration::from_secs(config.webhook_disable_after_seconds),
            timeout: Duration::from_millis(config.webhook_timeout_ms),
            tenant_concurrency: config.webhook_tenant_concurrency as usize,
            notice_interval: Duration::from_millis(config.webhook_notice_interval_ms),
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_base: Duration::from_secs(5),
            retry_for: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(3 * 24 * 3600),
            timeout: Duration::from_secs(10),
            tenant_concurrency: 4,
            notice_interval: Duration::from_secs(10),
        }
    }
}

/// One configured endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to POST.
    pub url: String,
    /// Event types (`"*"` for all, `"api_key.*"` for a family).
    #[serde(default)]
    pub events: Vec<String>,
    /// The tenant secret holding the signing secret (`whsec_…`).
    #[serde(default)]
    pub secret_ref: Option<String>,
}

impl Endpoint {
    /// True when this endpoint asked for `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|p| {
            p == "*"
                || p == event_type
                || p.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
        })
    }
}

/// The endpoints of a configuration document (none when it has no valid `webhooks`).
pub fn endpoints_of(config: &serde_json::Value) -> Vec<Endpoint> {
    config
        .get("webhooks")
        .and_then(|w| serde_json::from_value::<Vec<Endpoint>>(w.clone()).ok())
        .unwrap_or_default()
}

fn short_hash(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    crate::crypto::hex(&h.finalize())[..len].to_string()
}

/// The endpoint's id: stable for a tenant and URL.
pub fn endpoint_id(tenant_id: &str, url: &str) -> String {
    format!("whe_{}", short_hash(&[tenant_id, url], 24))
}

/// The delivery's id, sent as `webhook-id`: stable for an event (or notice) and endpoint.
pub fn delivery_id(source_id: &str, endpoint_id: &str) -> String {
    format!("msg_{}", short_hash(&[source_id, endpoint_id], 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_patterns() {
        let e = |events: &[&str]| Endpoint {
            url: "https://h".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            secret_ref: None,
        };
        assert!(e(&["*"]).wants("api_key.revoked"));
        assert!(e(&["api_key.revoked"]).wants("api_key.revoked"));
        assert!(!e(&["api_key.revoked"]).wants("api_key.issued"));
        assert!(e(&["api_key.*"]).wants("api_key.issued"));
        assert!(!e(&["api_key.*"]).wants("api_keys.issued"));
        assert!(!e(&["api*"]).wants("api_key.issued"));
        assert!(!e(&[]).wants("tenant.created"));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(endpoint_id("t", "u"), endpoint_id("t", "u"));
        assert_ne!(endpoint_id("t", "u"), endpoint_id("t2", "u"));
        assert_ne!(delivery_id("a", "b"), delivery_id("a", "c"));
        assert!(delivery_id("a", "b").starts_with("msg_"));
    }
}
