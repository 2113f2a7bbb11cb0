//! Crash safety: SIGKILL a process in the middle of a write loop; after a
//! restart every acknowledged write is readable and the store opens cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tresor::{Config, Host};
use tresor_e2e::*;

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), TEST_POLICIES).unwrap();
    let config_path = dir.path().join("tresor.toml");
    std::fs::write(&config_path, config_text(dir.path(), "")).unwrap();

    // `hot` keeps every version (more than Vault's default of 10), so each
    // acknowledged one can be read back.
    {
        let host = Host::start(Config::from_file(&config_path).unwrap()).await.unwrap();
        let keep_all = tresor::SecretSettings {
            max_versions: 100_000,
            ..Default::default()
        };
        host.set_secret_settings(&caller("root", &["admins"]), "secret/crash/hot", &keep_all)
            .await
            .unwrap();
    }
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-test-writer"))
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start writer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it write for a while, then kill it without warning.
        let started = Instant::now();
        let mut this_round = 0;
        while started.elapsed() < Duration::from_secs(20) && this_round < 150 + round * 37 {
            match lines.next() {
                Some(Ok(line)) => {
                    let mut parts = line.split_whitespace().skip(1);
                    let i: u64 = parts.next().unwrap().parse().unwrap();
                    acked.push((i, parts.next().unwrap().to_string()));
                    this_round += 1;
                }
                _ => break,
            }
        }
        child.kill().expect("SIGKILL the writer");
        // Acks already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            let mut parts = line.split_whitespace().skip(1);
            let i: u64 = parts.next().unwrap().parse().unwrap();
            acked.push((i, parts.next().unwrap().to_string()));
        }
        child.wait().unwrap();
        assert!(this_round > 0, "round {round}: the writer acknowledged nothing");
    }

    // Restart on the same state: the store opens cleanly and every ack holds.
    let host = Host::start(Config::from_file(&config_path).unwrap())
        .await
        .expect("store reopens after SIGKILL");
    let me = caller("auditor", &["admins"]);
    for (i, hot_version) in &acked {
        let k = host
            .read(&me, &format!("secret/crash/k{i}"), None)
            .await
            .unwrap_or_else(|e| panic!("acked write k{i} lost: {e}"));
        let want = format!("value-{i}");
        assert_eq!(k.value.expose(), want.as_bytes());
        let hot = host
            .read(&me, "secret/crash/hot", Some(hot_version))
            .await
            .unwrap_or_else(|e| panic!("acked version {hot_version} of hot lost: {e}"));
        assert_eq!(hot.value.expose(), want.as_bytes(), "version {hot_version} of hot");
    }
    let versions = host.versions(&me, "secret/crash/hot").await.unwrap();
    assert!(
        versions.len() >= acked.len(),
        "{} versions for {} acked writes",
        versions.len(),
        acked.len()
    );
    // The audit log chain is intact across the kills (a torn last line, if any, is reported but not a break of earlier entries).
    drop(host);
    let report = tresor::audit::verify(&dir.path().join("audit.log")).unwrap();
    assert!(report.entries > acked.len() as u64);
}
