//! Outbound TCP for plugins (`wasi:sockets`), allowed only to the
//! `host:port` addresses the mount grants (`grants.sockets`). Everything else
//! is refused by wasmtime's address check before a connection is made:
//! listening, UDP, other ports, other hosts. Name lookup stays off unless a
//! granted entry is a name, and then a looked-up address is still only
//! reachable if it is one of the granted names' addresses.
//!
//! A refused connect fails inside the plugin (the guest sees "access
//! denied") and is recorded as a warning event in the access span.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

/// A mount's outbound TCP grant.
#[derive(Clone, Debug, Default)]
pub struct SocketGrant {
    /// The granted entries as written, for messages.
    entries: Vec<String>,
    /// Every address a granted entry stands for.
    allowed: Arc<BTreeSet<SocketAddr>>,
    /// Some entry is a name, so the plugin may look names up.
    names: bool,
}

impl SocketGrant {
    /// A grant for `entries` (`host:port`, the host an IP address or a name).
    /// Names are resolved now, when the mount starts; a name that does not
    /// resolve is refused.
    pub fn new(entries: &[String]) -> Result<SocketGrant, String> {
        let mut allowed = BTreeSet::new();
        let mut names = false;
        for entry in entries {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| format!("sockets grant `{entry}` must be `host:port` (e.g. `127.0.0.1:5432`)"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("sockets grant `{entry}` must end in a numeric port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(format!("sockets grant `{entry}` has no host"));
            }
            match host.parse::<IpAddr>() {
                Ok(ip) => {
                    allowed.insert(SocketAddr::new(ip, port));
                }
                Err(_) => {
                    names = true;
                    let resolved = (host, port)
                        .to_socket_addrs()
                        .map_err(|e| format!("sockets grant `{entry}`: cannot resolve `{host}`: {e}"))?;
                    allowed.extend(resolved);
                }
            }
        }
        Ok(SocketGrant {
            entries: entries.to_vec(),
            allowed: Arc::new(allowed),
            names,
        })
    }

    /// True when nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Set up a WASI context for this grant: TCP connects to the granted
    /// addresses only; no UDP, no listening.
    pub fn apply(&self, b: &mut WasiCtxBuilder, mount: &str) {
        b.allow_udp(false);
        b.allow_ip_name_lookup(self.names);
        b.allow_tcp(!self.is_empty());
        let allowed = self.allowed.clone();
        let granted = self.entries.join(", ");
        let mount: Arc<str> = mount.into();
        b.socket_addr_check(move |addr, usage| {
            let ok = match usage {
                SocketAddrUse::TcpConnect => allowed.contains(&addr),
                // A connect binds implicitly to an ephemeral port, which
                // wasmtime checks as a bind of the unspecified address.
                // Listening is refused on its own (`TcpListen`).
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0 && !allowed.is_empty(),
                _ => false,
            };
            if !ok {
                tracing::warn!(
                    target: "tresor::sandbox",
                    mount = &*mount,
                    address = %addr,
                    usage = ?usage,
                    "plugin socket use refused: not in the mount's sockets grant [{granted}]"
                );
            }
            Box::pin(async move { ok })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_refuses_bad_entries() {
        let g = SocketGrant::new(&["127.0.0.1:5432".into(), "[::1]:6432".into()]).unwrap();
        assert!(g.allowed.contains(&"127.0.0.1:5432".parse().unwrap()));
        assert!(g.allowed.contains(&"[::1]:6432".parse().unwrap()));
        assert!(!g.allowed.contains(&"127.0.0.1:5433".parse().unwrap()));
        assert!(!g.names);
        let e = SocketGrant::new(&["127.0.0.1".into()]).unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let e = SocketGrant::new(&["127.0.0.1:http".into()]).unwrap_err();
        assert!(e.contains("numeric port"), "{e}");
    }

    #[test]
    fn a_name_enables_lookup_of_its_addresses_only() {
        let g = SocketGrant::new(&["localhost:5432".into()]).unwrap();
        assert!(g.names);
        assert!(g.allowed.iter().all(|a| a.port() == 5432 && a.ip().is_loopback()));
    }
}
