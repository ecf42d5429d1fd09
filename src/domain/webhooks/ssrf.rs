//! The guard against server-side request forgery through customer URLs.
//!
//! wagate sends webhooks only to public addresses. A URL is checked when it
//! is registered (a clear error at once) and again on every attempt, where
//! it counts: the delivery client resolves the host itself, drops every
//! address this module refuses and connects only to the addresses it kept,
//! so a DNS answer cannot change between the check and the connection. IP
//! literals in any spelling (`2130706433`, `0x7f000001`, `0177.0.0.1`,
//! `[::ffff:127.0.0.1]`) are normalised by the URL parser and checked the
//! same way. Redirects are never followed.
//!
//! Refused always: loopback and private ranges unless the operator allows
//! them, and in every case link-local (which holds the cloud metadata address
//! 169.254.169.254), CGNAT, `0.0.0.0/8`, multicast, broadcast, documentation,
//! benchmarking and reserved ranges, 6to4, Teredo, NAT64 and the IPv6
//! metadata address `fd00:ec2::254`. IPv4-mapped and IPv4-compatible IPv6
//! addresses are judged as the IPv4 address they carry.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// What an address is, for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// RFC 1918 and IPv6 unique-local: allowed with `WAGATE_WEBHOOKS_ALLOW_PRIVATE`.
    Private,
    /// 127.0.0.0/8 and ::1: allowed with `WAGATE_WEBHOOKS_ALLOW_PRIVATE`.
    Loopback,
    /// Never allowed (metadata, link-local, CGNAT, reserved, ...).
    Forbidden,
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether wagate may connect to `ip`.
pub fn is_allowed(ip: IpAddr, allow_private: bool) -> bool {
    match classify(ip) {
        AddressClass::Public => true,
        AddressClass::Private | AddressClass::Loopback => allow_private,
        AddressClass::Forbidden => false,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    const FORBIDDEN: [([u8; 4], u32); 13] = [
        ([0, 0, 0, 0], 8),       // "this network"; 0.0.0.0 reaches localhost
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata 169.254.169.254
        ([100, 64, 0, 0], 10),   // CGNAT (also Alibaba's metadata 100.100.100.200)
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([198, 18, 0, 0], 15),   // benchmarking
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
        ([192, 31, 196, 0], 24), // AS112
        ([192, 175, 48, 0], 24), // AS112 direct delegation
    ];
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if FORBIDDEN.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        return AddressClass::Forbidden;
    }
    if ip.is_private() {
        return AddressClass::Private;
    }
    AddressClass::Public
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated) carry an IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    const METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    if ip == METADATA {
        return AddressClass::Forbidden;
    }
    const FORBIDDEN: [([u16; 8], u32); 13] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),      // unspecified, IPv4-compatible
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),  // multicast
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), // Teredo
        ([0x0064, 0xff9b, 0, 0, 0, 0, 0, 0], 96), // NAT64
        ([0x0064, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64
        ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // SRv6 SIDs
        ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48), // benchmarking
    ];
    if FORBIDDEN.iter().any(|(net, p)| in_v6(ip, *net, *p)) {
        return AddressClass::Forbidden;
    }
    if in_v6(ip, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) {
        return AddressClass::Private;
    }
    AddressClass::Public
}

/// Why a URL is refused, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Parses a customer URL: absolute, http or https, a host, no credentials.
pub fn parse_url(raw: &str) -> Result<Url, Refused> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(Refused("url must be at most 2048 characters".into()));
    }
    let url =
        Url::parse(raw).map_err(|_| Refused("url must be an absolute http or https URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused("url must be an absolute http or https URL".into()));
    }
    if url.host().is_none() {
        return Err(Refused("url must have a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused(
            "url must not contain a user name or password".into(),
        ));
    }
    Ok(url)
}

/// The check of a URL whose host is an IP literal (no DNS involved); a
/// host name passes here and is checked on its resolved addresses.
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err(Refused("url must have a host".into())),
    };
    if is_allowed(ip, allow_private) {
        Ok(())
    } else {
        Err(Refused(refusal(ip)))
    }
}

/// Keeps the addresses wagate may connect to.
pub fn filter(addrs: impl IntoIterator<Item = IpAddr>, allow_private: bool) -> Vec<IpAddr> {
    addrs
        .into_iter()
        .filter(|ip| is_allowed(*ip, allow_private))
        .collect()
}

pub fn refusal(ip: IpAddr) -> String {
    let what = match classify(ip) {
        AddressClass::Loopback => "a loopback",
        AddressClass::Private => "a private",
        _ => "a non-public (link-local, metadata, reserved or special-purpose)",
    };
    format!("url points to {what} address ({ip}); webhooks go only to public addresses")
}

/// Resolves a URL's host name and checks the addresses: refused when every
/// address is refused. A name that does not resolve (yet) passes; the
/// delivery will retry and log the failure.
pub async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), Refused> {
    let Some(Host::Domain(name)) = url.host() else {
        return check_literal(url, allow_private);
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::net::lookup_host((name, port));
    let Ok(Ok(found)) = tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await
    else {
        return Ok(());
    };
    let addrs: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    match addrs.first() {
        Some(first) if filter(addrs.iter().copied(), allow_private).is_empty() => {
            Err(Refused(refusal(*first)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn classifies_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "93.184.216.34",
        ] {
            assert_eq!(classify(ip(public)), AddressClass::Public, "{public}");
        }
        for lo in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(classify(ip(lo)), AddressClass::Loopback, "{lo}");
        }
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "fd12:3456::1",
            "::ffff:10.1.2.3",
        ] {
            assert_eq!(classify(ip(private)), AddressClass::Private, "{private}");
        }
        for forbidden in [
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "100.64.0.1",
            "100.100.100.200",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::127.0.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "64:ff9b::7f00:1",
            "2001:0:4136:e378::1",
        ] {
            assert_eq!(
                classify(ip(forbidden)),
                AddressClass::Forbidden,
                "{forbidden}"
            );
        }
    }

    #[test]
    fn private_and_loopback_only_with_the_operator_setting() {
        assert!(!is_allowed(ip("127.0.0.1"), false));
        assert!(is_allowed(ip("127.0.0.1"), true));
        assert!(is_allowed(ip("192.168.0.10"), true));
        assert!(is_allowed(ip("::1"), true));
        // Metadata, link-local and 0.0.0.0 stay refused.
        for never in [
            "169.254.169.254",
            "fd00:ec2::254",
            "0.0.0.0",
            "100.64.1.1",
            "fe80::1",
        ] {
            assert!(!is_allowed(ip(never), true), "{never}");
        }
    }

    #[test]
    fn odd_ipv4_spellings_are_literals_and_refused() {
        for raw in [
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://127.1/hook",
            "http://0x7f.1/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://[::1]:8080/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "https://0/",
        ] {
            let url = parse_url(raw).expect(raw);
            assert!(
                matches!(url.host(), Some(Host::Ipv4(_) | Host::Ipv6(_))),
                "{raw} parses as a literal"
            );
            assert!(check_literal(&url, false).is_err(), "{raw}");
        }
        let url = parse_url("http://2130706433:9000/x").expect("url");
        assert!(check_literal(&url, true).is_ok());
        assert!(check_literal(&parse_url("https://93.184.216.34/").expect("url"), false).is_ok());
        assert!(check_literal(&parse_url("https://example.com/").expect("url"), false).is_ok());
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        for bad in [
            "",
            "example.com/hook",
            "/hook",
            "ftp://example.com/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url("https://yourapp.com/webhooks/whatsapp").is_ok());
        assert!(parse_url(" http://example.com:8080/x?y=1 ").is_ok());
    }

    #[tokio::test]
    async fn resolved_names_are_checked() {
        let url = parse_url("http://localhost:9/").expect("url");
        assert!(check_resolved(&url, false).await.is_err());
        assert!(check_resolved(&url, true).await.is_ok());
        // A name that does not resolve passes registration.
        let url = parse_url("https://does-not-exist.invalid/").expect("url");
        assert!(check_resolved(&url, false).await.is_ok());
    }
}
