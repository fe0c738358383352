//! Where a webhook may go. The URL is checked when the configuration is saved
//! ([`check_config`], which also resolves host names) and again at every attempt: the host is
//! resolved by [`CheckedResolver`], every address it resolves to must be globally reachable by
//! the IANA special-purpose registries (`tokenhub_aggregates::special_addresses`: no loopback,
//! private, link-local, shared, benchmarking, documentation, multicast or metadata address, in
//! any IPv6 form that carries one) unless the operator allows internal targets, and the connection goes to exactly those checked addresses — a second lookup
//! (DNS rebinding) never happens. Redirects are not followed and proxies are not used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokenhub_aggregates::tenant::config::{is_internal_address, webhook_url_problem};

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The URL itself is not acceptable.
    #[error("{0}")]
    Url(&'static str),
    /// The host resolves to an internal address.
    #[error("{host} resolves to {addr}, an internal address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows it)")]
    Internal {
        /// The host name.
        host: String,
        /// The address found.
        addr: IpAddr,
    },
    /// The host does not resolve.
    #[error("{0} does not resolve")]
    Unresolved(String),
}

/// Resolves `host` (a name) and checks every address; `Ok` holds them all.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(TargetError::Unresolved(host.to_string())),
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolved(host.to_string()));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| is_internal_address(a.ip())) {
            return Err(TargetError::Internal { host: host.to_string(), addr: bad.ip() });
        }
    }
    Ok(addrs)
}

/// Checks a URL before an attempt: its form, and an address literal's range (names are
/// checked by the resolver as the connection is made).
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, TargetError> {
    if let Some(problem) = webhook_url_problem(raw, allow_private) {
        return Err(TargetError::Url(problem));
    }
    url::Url::parse(raw).map_err(|_| TargetError::Url("must be an absolute URL"))
}

/// Save-time check of a configuration's webhook URLs whose host is a name: `(index, problem)`
/// for each that resolves to an internal address. A name that does not resolve (yet) is
/// accepted here; every attempt resolves it again.
pub async fn check_config(config: &serde_json::Value, allow_private: bool) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    if allow_private {
        return problems;
    }
    for (i, endpoint) in super::endpoints_of(config).iter().enumerate() {
        let Ok(url) = url::Url::parse(&endpoint.url) else { continue };
        let Some(url::Host::Domain(host)) = url.host() else { continue };
        let port = url.port_or_known_default().unwrap_or(443);
        if let Err(e @ TargetError::Internal { .. }) = resolve_checked(host, port, false).await {
            problems.push((i, e.to_string()));
        }
    }
    problems
}

/// The resolver the delivery client connects through.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client builder with the outbound rules of webhooks: checked resolution (no
/// internal address unless `allow_private`), no redirects, no proxy. The gateway's upstreams
/// obey the same rules through their own client (`crate::gateway::upstream`).
pub fn checked_client(allow_private: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// The HTTP client for deliveries: [`checked_client`] with a timeout.
pub fn client(allow_private: bool, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    checked_client(allow_private)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("TokenHub-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_are_resolved_and_checked() {
        assert!(matches!(resolve_checked("localhost", 80, false).await, Err(TargetError::Internal { .. })));
        assert!(resolve_checked("localhost", 80, true).await.is_ok());
        assert!(matches!(
            resolve_checked("does-not-exist.invalid", 80, false).await,
            Err(TargetError::Unresolved(_))
        ));
        for raw in ["http://127.0.0.1/h", "https://10.0.0.1/h", "https://169.254.169.254/latest/meta-data"] {
            assert!(check_url(raw, false).is_err(), "{raw}");
        }
        assert!(check_url("http://127.0.0.1:9/h", true).is_ok());
    }
}
