//! The client's address: the TCP peer, or — only when the peer is a configured trusted proxy
//! (`TRUSTED_PROXIES`) — the right-most address of `X-Forwarded-For` that is not itself a
//! trusted proxy. A client that sends its own `X-Forwarded-For` directly is not believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The client address of a request, given the trusted proxies.
pub fn client_ip(parts: &Parts, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer))
}

/// Parses `TRUSTED_PROXIES`: comma-separated CIDRs or addresses.
pub fn parse_trusted(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: '{s}' is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut builder = Request::builder();
        for v in xff {
            builder = builder.header("x-forwarded-for", *v);
        }
        let (mut parts, _) = builder.body(()).unwrap_or_default().into_parts();
        let addr: SocketAddr =
            format!("{peer}:1234").parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        parts.extensions.insert(ConnectInfo(addr));
        parts
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn untrusted_peers_cannot_spoof_their_address() {
        let trusted = parse_trusted("10.0.0.0/8").unwrap_or_default();
        assert_eq!(client_ip(&parts("203.0.113.9", &["1.2.3.4"]), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(&parts("203.0.113.9", &[]), &[]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_pass_the_right_most_untrusted_address() {
        let trusted = parse_trusted("10.0.0.0/8, 192.168.1.1").unwrap_or_default();
        assert_eq!(client_ip(&parts("10.0.0.2", &["198.51.100.7"]), &trusted), ip("198.51.100.7"));
        // The client prepended a forged address; the proxies appended the real one.
        assert_eq!(
            client_ip(&parts("10.0.0.2", &["1.1.1.1, 198.51.100.7, 192.168.1.1"]), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(&parts("10.0.0.2", &["garbage"]), &trusted), ip("10.0.0.2"));
        assert!(parse_trusted("nope").is_err());
    }
}
