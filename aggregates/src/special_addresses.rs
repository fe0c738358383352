//! Which addresses an outbound call (a webhook, a gateway's upstream) may reach: those the
//! IANA special-purpose address registries call globally reachable, and no other.
//!
//! The tables below are the registries' rows (IPv4: RFC 6890 registry, IPv6: its twin, as
//! published in 2024), each with its "Globally Reachable" column; the most specific row
//! containing an address decides. On top of the registries:
//! - multicast and the IPv4 "limited broadcast" are never targets;
//! - IPv6 outside global unicast (`2000::/3`) is refused (this also covers the deprecated
//!   site-local `fec0::/10` and IPv4-compatible `::a.b.c.d`), except the NAT64 prefix;
//! - an address that carries an IPv4 address inside it (IPv4-mapped `::ffff:0:0/96`, NAT64
//!   `64:ff9b::/96`) is judged by that IPv4 address; 6to4 (`2002::/16`) and Teredo
//!   (`2001::/32`), which the registry marks "N/A", are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// IANA IPv4 Special-Purpose Address Registry: (block, globally reachable).
const V4: &[(&str, bool)] = &[
    ("0.0.0.0/8", false),
    ("0.0.0.0/32", false),
    ("10.0.0.0/8", false),
    ("100.64.0.0/10", false),
    ("127.0.0.0/8", false),
    ("169.254.0.0/16", false),
    ("172.16.0.0/12", false),
    ("192.0.0.0/24", false),
    ("192.0.0.0/29", false),
    ("192.0.0.8/32", false),
    ("192.0.0.9/32", true),
    ("192.0.0.10/32", true),
    ("192.0.0.170/32", false),
    ("192.0.0.171/32", false),
    ("192.0.2.0/24", false),
    ("192.31.196.0/24", true),
    ("192.52.193.0/24", true),
    ("192.88.99.0/24", false),
    ("192.168.0.0/16", false),
    ("192.175.48.0/24", true),
    ("198.18.0.0/15", false),
    ("198.51.100.0/24", false),
    ("203.0.113.0/24", false),
    ("240.0.0.0/4", false),
    ("255.255.255.255/32", false),
];

/// IANA IPv6 Special-Purpose Address Registry: (block, globally reachable). "N/A" rows
/// (Teredo, 6to4) are refused.
const V6: &[(&str, bool)] = &[
    ("::1/128", false),
    ("::/128", false),
    ("::ffff:0:0/96", false),
    ("64:ff9b::/96", true),
    ("64:ff9b:1::/48", false),
    ("100::/64", false),
    ("100:0:0:1::/64", false),
    ("2001::/23", false),
    ("2001::/32", false),
    ("2001:1::1/128", true),
    ("2001:1::2/128", true),
    ("2001:1::3/128", true),
    ("2001:2::/48", false),
    ("2001:3::/32", true),
    ("2001:4:112::/48", true),
    ("2001:10::/28", false),
    ("2001:20::/28", true),
    ("2001:30::/28", true),
    ("2001:db8::/32", false),
    ("2002::/16", false),
    ("2620:4f:8000::/48", true),
    ("3fff::/20", false),
    ("5f00::/16", false),
    ("fc00::/7", false),
    ("fe80::/10", false),
];

/// The most specific registry row holding `ip`: `Some(globally reachable)`, `None` when the
/// address is in no special-purpose block.
fn v4_row(ip: Ipv4Addr) -> Option<bool> {
    V4.iter()
        .filter_map(|(net, global)| Some((net.parse::<Ipv4Net>().ok()?, *global)))
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, global)| global)
}

fn v6_row(ip: Ipv6Addr) -> Option<(Ipv6Net, bool)> {
    V6.iter()
        .filter_map(|(net, global)| Some((net.parse::<Ipv6Net>().ok()?, *global)))
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
}

/// True when `ip` is globally reachable by the IANA registries (see the module docs).
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_multicast() && v4_row(v4).unwrap_or(true),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64 (`64:ff9b::/96`): where the translator would send it.
                let [.., a, b] = segments;
                let embedded = Ipv4Addr::from((u32::from(a) << 16) | u32::from(b));
                return is_global(IpAddr::V4(embedded));
            }
            let global_unicast = (segments[0] & 0xe000) == 0x2000;
            global_unicast && v6_row(v6).is_none_or(|(_, global)| global)
        }
    }
}

/// True when `ip` is not globally reachable: loopback, private, link-local, shared,
/// documentation, benchmarking, reserved, multicast, translation forms of those…
pub fn is_internal_address(ip: IpAddr) -> bool {
    !is_global(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(s: &str) -> Option<bool> {
        s.parse().ok().map(is_internal_address)
    }

    #[test]
    fn every_registry_row_parses() {
        assert!(V4.iter().all(|(n, _)| n.parse::<Ipv4Net>().is_ok()));
        assert!(V6.iter().all(|(n, _)| n.parse::<Ipv6Net>().is_ok()));
    }

    #[test]
    fn what_the_registries_refuse_is_refused_in_every_form() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.88.99.1",
            // IPv6 and the forms that carry IPv4 inside.
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:0808:0808::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fec0::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "100::1",
            "2001:2::1",
            "5f00::1",
        ] {
            assert_eq!(internal(s), Some(true), "{s} must be refused");
        }
    }

    #[test]
    fn globally_reachable_addresses_pass() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "192.0.0.9",
            "192.0.0.10",
            "198.20.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
            "2001:1::1",
            "2620:4f:8000::1",
        ] {
            assert_eq!(internal(s), Some(false), "{s} must pass");
        }
    }
}
