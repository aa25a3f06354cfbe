//! The SSRF guard: which addresses a connection to a *client-supplied* origin may reach.
//!
//! Web Push endpoints come from browsers, so from anyone who can register a device. A string
//! check of the host is not enough: a name on the allowlist can be made to resolve to
//! `127.0.0.1`, to the cloud's metadata service (`169.254.169.254`) or to an internal host.
//! So the pool checks again **at connect time, after DNS**: every resolved address must be
//! public, and the connection goes to the vetted address itself (no second resolution that a
//! DNS rebinding could answer differently).
//!
//! Refused: loopback, unspecified, RFC 1918 private, CGNAT `100.64/10`, link-local
//! (`169.254/16` with the metadata address, `fe80::/10`), unique-local `fc00::/7`,
//! broadcast, multicast, the documentation and benchmarking ranges, and the IPv4-mapped and
//! -compatible IPv6 forms of all of those, NAT64 and Teredo, and 6to4 addresses that embed
//! one of them. An explicit allowlist of socket addresses (or bare
//! IPs) lifts the refusal: tests allow the simulator's `127.0.0.1:<port>`, nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Why an address may not be connected to: the range it falls in (the error names it so an
/// operator sees at once what was refused, and why).
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // ::ffff:a.b.c.d and the deprecated ::a.b.c.d reach the IPv4 host: judge that one.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4).map(|_| "IPv4-mapped non-public address");
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = if ip.is_unspecified() || a == 0 {
        "unspecified (0.0.0.0/8)"
    } else if ip.is_loopback() {
        "loopback (127.0.0.0/8)"
    } else if ip.is_private() {
        "private (RFC 1918)"
    } else if a == 169 && b == 254 {
        "link-local or cloud metadata (169.254.0.0/16)"
    } else if a == 100 && (64..128).contains(&b) {
        "carrier-grade NAT (100.64.0.0/10)"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() || a >= 240 {
        "multicast or reserved (224.0.0.0/3)"
    } else if a == 192 && b == 0 && (c == 0 || c == 2) {
        "IETF protocol assignments or documentation (192.0.0.0/24, 192.0.2.0/24)"
    } else if a == 198 && (b == 18 || b == 19) {
        "benchmarking (198.18.0.0/15)"
    } else if (a == 198 && b == 51 && c == 100) || (a == 203 && b == 0 && c == 113) {
        "documentation (TEST-NET-2/3)"
    } else {
        return None;
    };
    Some(reason)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let reason = if ip.is_unspecified() {
        "unspecified (::)"
    } else if ip.is_loopback() {
        "loopback (::1)"
    } else if segments[0] & 0xfe00 == 0xfc00 {
        "unique-local (fc00::/7)"
    } else if segments[0] & 0xffc0 == 0xfe80 {
        "link-local (fe80::/10)"
    } else if segments[0] & 0xff00 == 0xff00 {
        "multicast (ff00::/8)"
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        "documentation (2001:db8::/32)"
    } else if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d (IPv4-compatible, deprecated): never a public push service.
        "IPv4-compatible address (::/96)"
    } else if segments[0] == 0x64 && segments[1] == 0xff9b {
        // NAT64 can translate to any IPv4 address, private ones included.
        "NAT64 (64:ff9b::/96)"
    } else if segments[0] == 0x2001 && segments[1] == 0 {
        // Teredo tunnels to an embedded (obfuscated) IPv4 address: never a push service.
        "Teredo (2001::/32)"
    } else if segments[0] == 0x2002
        && forbidden_v4(Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        ))
        .is_some()
    {
        "6to4 with a non-public IPv4 address (2002::/16)"
    } else {
        return None;
    };
    Some(reason)
}

/// Why a connection was refused before it was made.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// A resolved (or literal) address is in a refused range.
    #[error("{host} resolves to {address}, a {range} address: refused (SSRF guard)")]
    Forbidden {
        /// The host as named.
        host: String,
        /// The offending address.
        address: IpAddr,
        /// Its range.
        range: &'static str,
    },
    /// Resolution failed.
    #[error("{host}: name resolution failed: {message}")]
    Resolve {
        /// The host as named.
        host: String,
        /// Why.
        message: String,
    },
    /// Resolution took longer than allowed.
    #[error("{host}: name resolution timed out")]
    Timeout {
        /// The host as named.
        host: String,
    },
    /// The name resolved to nothing.
    #[error("{host}: name resolved to no address")]
    NoAddress {
        /// The host as named.
        host: String,
    },
}

/// The connect-time check for client-supplied origins; cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressGuard {
    /// Addresses allowed although in a refused range: an exact `ip:port`, or an `ip` (any
    /// port). Only tests and deliberate set-ups (a push service on a private network) fill it.
    allowed: Vec<(IpAddr, Option<u16>)>,
}

impl AddressGuard {
    /// A guard that allows the listed addresses (`ip`, `ip:port` or `[v6]:port`); every
    /// entry that cannot be parsed is returned as an error, all at once.
    pub fn new(allowed: &[String]) -> Result<AddressGuard, Vec<String>> {
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for entry in allowed {
            match parse_allowed(entry) {
                Some(allowed) => parsed.push(allowed),
                None => errors.push(format!(
                    "{entry:?} is not an IP address or ip:port socket address"
                )),
            }
        }
        if errors.is_empty() {
            Ok(AddressGuard { allowed: parsed })
        } else {
            Err(errors)
        }
    }

    /// Whether `address` was explicitly allowed.
    fn is_allowed(&self, address: SocketAddr) -> bool {
        let ip = canonical(address.ip());
        self.allowed
            .iter()
            .any(|(allowed, port)| *allowed == ip && port.is_none_or(|p| p == address.port()))
    }

    /// Checks one address: `host` only names it in the error.
    pub fn vet(&self, host: &str, address: SocketAddr) -> Result<(), GuardError> {
        if self.is_allowed(address) {
            return Ok(());
        }
        match forbidden_range(address.ip()) {
            Some(range) => Err(GuardError::Forbidden {
                host: host.to_owned(),
                address: address.ip(),
                range,
            }),
            None => Ok(()),
        }
    }

    /// Resolves `host` (a name or an IP literal, brackets allowed) at `port` within
    /// `timeout` and vets **every** address: one bad address refuses the whole name, since
    /// an attacker controls which of them a later lookup would return first. Returns the
    /// vetted addresses, to connect to as they are.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, GuardError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            let lookup = tokio::net::lookup_host((bare, port));
            match tokio::time::timeout(timeout, lookup).await {
                Err(_) => {
                    return Err(GuardError::Timeout {
                        host: host.to_owned(),
                    });
                }
                Ok(Err(error)) => {
                    return Err(GuardError::Resolve {
                        host: host.to_owned(),
                        message: error.to_string(),
                    });
                }
                Ok(Ok(found)) => found.collect(),
            }
        };
        if addresses.is_empty() {
            return Err(GuardError::NoAddress {
                host: host.to_owned(),
            });
        }
        for address in &addresses {
            self.vet(host, *address)?;
        }
        Ok(addresses)
    }
}

impl AddressGuard {
    /// Vets the host of a client-supplied `https://` URL (default port 443) the way a
    /// connection to it would be vetted. IP literals are judged without any lookup.
    pub async fn vet_url(&self, url: &str, timeout: Duration) -> Result<(), GuardError> {
        let uri: http::Uri = url.parse().map_err(|_| GuardError::Resolve {
            host: url.to_owned(),
            message: "not a URI".into(),
        })?;
        let Some(authority) = uri.authority() else {
            return Err(GuardError::NoAddress {
                host: url.to_owned(),
            });
        };
        let port = authority.port_u16().unwrap_or(443);
        self.resolve(authority.host(), port, timeout)
            .await
            .map(drop)
    }
}

/// `::ffff:a.b.c.d` compares as `a.b.c.d`, so an allowance of `127.0.0.1` covers both forms.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_allowed(entry: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some((canonical(socket.ip()), Some(socket.port())));
    }
    let bare = entry.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| (canonical(ip), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        forbidden_range(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "142.250.74.42",
            "100.128.0.1",
            "100.63.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "8.8.8.8",
            "2a00:1450:4001:82b::200a",
            "::ffff:142.250.74.42",
            "2002:8efa:4a2a::1",
        ] {
            assert!(!refused(ip), "{ip} must pass");
        }
    }

    #[test]
    fn an_allowance_is_exact() {
        let guard = AddressGuard::new(&["127.0.0.1:8443".into(), "10.1.2.3".into()]).unwrap();
        let ok = |a: &str| guard.vet("h", a.parse().unwrap()).is_ok();
        assert!(ok("127.0.0.1:8443"));
        assert!(ok("[::ffff:127.0.0.1]:8443"));
        assert!(
            !ok("127.0.0.1:8444"),
            "another port on loopback stays refused"
        );
        assert!(!ok("[::1]:8443"), "::1 is not 127.0.0.1");
        assert!(ok("10.1.2.3:443") && ok("10.1.2.3:9"));
        assert!(!ok("10.1.2.4:443"));
        let error = AddressGuard::new(&["localhost:1".into(), "x".into()]).unwrap_err();
        assert_eq!(error.len(), 2, "{error:?}");
    }

    #[tokio::test]
    async fn every_resolved_address_is_vetted() {
        let guard = AddressGuard::default();
        let timeout = Duration::from_secs(2);
        // localhost resolves to loopback (and maybe ::1): refused, naming the range.
        let error = guard.resolve("localhost", 443, timeout).await.unwrap_err();
        assert!(
            matches!(error, GuardError::Forbidden { .. }),
            "localhost: {error}"
        );
        assert!(error.to_string().contains("loopback"), "{error}");
        for literal in ["10.0.0.1", "169.254.169.254", "[::1]", "::1"] {
            let error = guard.resolve(literal, 443, timeout).await.unwrap_err();
            assert!(matches!(error, GuardError::Forbidden { .. }), "{literal}");
        }
        let public = guard.resolve("8.8.8.8", 443, timeout).await.unwrap();
        assert_eq!(public, vec!["8.8.8.8:443".parse().unwrap()]);
        // localhost may also resolve to ::1: allowing only 127.0.0.1 does not let it through
        // unless every address is allowed.
        let allowing = AddressGuard::new(&["127.0.0.1".into(), "::1".into()]).unwrap();
        let vetted = allowing.resolve("localhost", 443, timeout).await.unwrap();
        assert!(vetted.iter().all(|a| a.ip().is_loopback()));
    }
}
