//! Crash-test leaser: starts a host from the config file given as the first
//! argument, issues one `db/ro` credential (the role `$TRESOR_LEASER_ROLE`
//! names, when set) per TTL argument (seconds), prints
//! `lease <id> <username> <password>` after each (test output on a pipe, the
//! only place the password goes), then waits forever. The lease crash test
//! SIGKILLs it with the leases outstanding.

use std::io::Write;

use tresor::{Config, Host};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: tresor-test-leaser CONFIG TTL...");
    let host = Host::start(Config::from_file(path.as_ref()).expect("config"))
        .await
        .expect("host starts");
    let me = tresor_e2e::caller("crash", &["admins"]);
    let role = std::env::var("TRESOR_LEASER_ROLE").unwrap_or_else(|_| "db/ro".into());
    let stdout = std::io::stdout();
    for ttl in args {
        let ttl: u64 = ttl.parse().expect("TTL in seconds");
        let issued = host.issue(&me, &role, Some(ttl)).await.expect("issue");
        let field = |name: &str| {
            issued
                .data
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v.expose()).into_owned())
                .expect("credential field")
        };
        let mut out = stdout.lock();
        writeln!(
            out,
            "lease {} {} {}",
            issued.lease.id,
            field("username"),
            field("password")
        )
        .unwrap();
        out.flush().unwrap();
    }
    std::future::pending::<()>().await;
}
