//! Which hosts share a state store: each reports itself every
//! [`REPORT_INTERVAL`] (its id, name, start and the singleton jobs it
//! leads), and a host that has not reported for [`LIVE_WITHIN`] is not live.

use std::time::Duration;

use super::{Member, StateStore};

/// How often a host reports itself.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A host that reported within this is live.
pub const LIVE_WITHIN: Duration = Duration::from_secs(5);

/// Reports older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// This host, freshly started: a random id, the machine's name and the pid.
pub fn this_host(started_ms: u64) -> Member {
    let mut id = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    let machine = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    Member {
        id: hex::encode(id),
        name: format!("{machine} (pid {})", std::process::id()),
        started_ms,
        last_seen_ms: started_ms,
        jobs: Vec::new(),
    }
}

/// Report `me` every [`REPORT_INTERVAL`] until the task is aborted.
pub(crate) fn keep_reporting(store: StateStore, mut me: Member) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = crate::lease::now_ms();
            me.last_seen_ms = now;
            me.jobs = store.led_jobs();
            let forget = now.saturating_sub(FORGET_AFTER.as_millis() as u64);
            if let Err(e) = store.heartbeat(&me, forget).await {
                tracing::warn!(error = %e, "cannot report this host to the state store; retrying");
            }
            tokio::time::sleep(REPORT_INTERVAL).await;
        }
    })
}

/// The live hosts of `store` at `now_ms`.
pub async fn live(store: &StateStore, now_ms: u64) -> Result<Vec<Member>, super::StateError> {
    store
        .members(now_ms.saturating_sub(LIVE_WITHIN.as_millis() as u64))
        .await
}
