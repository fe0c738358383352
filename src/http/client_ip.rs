//! The client's address: the TCP peer, or — only when the peer is a configured trusted proxy
//! (`TRUSTED_PROXIES`) — the right-most address of `X-Forwarded-For` that is not itself a
//! trusted proxy. A client that sends its own `X-Forwarded-For` directly is not believed.
//!
//! The header is read from the right, hop by hop, and only through trusted proxies: an entry
//! that does not parse ends the walk and the request counts as coming from the last trusted
//! hop (a garbled entry must not let a forged address to its left through). IPv4-mapped IPv6
//! addresses (`::ffff:203.0.113.7`) are the IPv4 address they map, so allowlists of either
//! form match.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

/// `ip` with an IPv4-mapped IPv6 address turned into its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client address of a request, given the trusted proxies.
pub fn client_ip(parts: &Parts, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| canonical(a.ip()))?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else { return Some(client) };
        client = ip;
        if !is_trusted(&ip) {
            return Some(ip);
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;
    use crate::config::parse_trusted;

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut builder = Request::builder();
        for v in xff {
            builder = builder.header("x-forwarded-for", *v);
        }
        let (mut parts, _) = builder.body(()).unwrap_or_default().into_parts();
        let socket = if peer.contains(':') { format!("[{peer}]:1234") } else { format!("{peer}:1234") };
        let addr: SocketAddr = socket.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
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
        // A garbled entry ends the walk: the forged address to its left is not believed.
        assert_eq!(client_ip(&parts("10.0.0.2", &["6.6.6.6, garbage"]), &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(&parts("10.0.0.2", &["6.6.6.6, garbage, 10.0.0.9"]), &trusted), ip("10.0.0.9"));
        assert_eq!(client_ip(&parts("10.0.0.2", &["6.6.6.6", "garbage"]), &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(&parts("10.0.0.2", &["6.6.6.6,"]), &trusted), ip("10.0.0.2"), "an empty entry");
        assert!(parse_trusted("nope").is_err());
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let trusted = parse_trusted("10.0.0.0/8").unwrap_or_default();
        assert_eq!(client_ip(&parts("10.0.0.2", &["::ffff:198.51.100.7"]), &trusted), ip("198.51.100.7"));
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0u8; 4]))),
            IpAddr::from([10, 0, 0, 1])
        );
        assert_eq!(
            client_ip(&parts("::ffff:10.0.0.2", &["198.51.100.7"]), &trusted),
            ip("198.51.100.7"),
            "a mapped proxy is trusted"
        );
    }
}
