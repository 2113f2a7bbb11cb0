//! Opening the TCP connection to the server, inside the sandbox through the
//! mount's `grants.sockets` (`wasi:sockets`), natively through the OS.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use tresor_plugin_sdk::Error;

use crate::url::address;

/// Connects to `host:port`, trying each of its addresses for at most
/// `timeout` (measured only when the mount grants a clock; without one, the
/// host's call deadline bounds it). Fails with `unavailable` naming the
/// address and the grant the mount needs.
pub fn open(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let address = address(host, port);
    let targets: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::unavailable(format!(
                "cannot resolve the PostgreSQL host `{host}`: {e}: check connection_url, and that the mount's \
                 sockets grant names the host as the URL does"
            ))
        })?
        .collect();
    let mut last = None;
    for target in &targets {
        match TcpStream::connect_timeout(target, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "the host has no address".to_owned(), |e| e.to_string());
    Err(Error::unavailable(format!(
        "cannot connect to PostgreSQL at {address}: {why}: check that the server runs there and that \
         the mount grants sockets = [\"{address}\"]"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_names_the_address_and_the_grant() {
        // Bind a port, then free it: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        match open("127.0.0.1", port, Duration::from_secs(2)) {
            Err(Error::Unavailable(m)) => {
                assert!(m.contains(&format!("sockets = [\"127.0.0.1:{port}\"]")), "{m}");
            }
            other => panic!("expected unavailable, got {:?}", other.map(|_| ())),
        }
    }
}
