//! Crash-test writer: starts a host from the config file given as the first
//! argument and writes forever, printing `ack <i> <version>` after each write
//! the host acknowledged. The crash test SIGKILLs it mid-loop.

use std::io::Write;

use tresor::{Config, Host, SecretBytes, WriteOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = std::env::args().nth(1).expect("usage: tresor-test-writer CONFIG");
    let host = Host::start(Config::from_file(path.as_ref()).expect("config"))
        .await
        .expect("host starts");
    let me = tresor_e2e::caller("writer", &["admins"]);
    let stdout = std::io::stdout();
    for i in 0u64.. {
        let value = SecretBytes::from(format!("value-{i}").as_str());
        host.write(&me, &format!("secret/crash/k{i}"), &value, &WriteOptions::default())
            .await
            .expect("write");
        let version = host
            .write(&me, "secret/crash/hot", &value, &WriteOptions::default())
            .await
            .expect("write");
        let mut out = stdout.lock();
        writeln!(out, "ack {i} {version}").unwrap();
        out.flush().unwrap();
    }
}
