//! The expiry watch: a task that sends the near-expiry and expired events
//! when their time comes, from the expiries in the state store, so an
//! expiry that passed while the host was down is announced at start. Of
//! several hosts sharing a store, the leader of [`JOB`] runs it.

use std::sync::Weak;
use std::time::Duration;

use crate::access::Host;

/// The singleton job's name (`tresor operator members`).
pub const JOB: &str = "expiry-watch";
/// How often the watch looks for due expiries.
const POLL: Duration = Duration::from_millis(250);
/// Expiries handled per pass at most (the next pass takes the rest).
const BATCH: usize = 64;

/// Start the watch on the current tokio runtime; it holds the host only
/// while it works, and ends once the host is dropped.
pub fn start(host: Weak<Host>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            {
                let Some(host) = host.upgrade() else { return };
                match host.state().lead(JOB).await {
                    Ok(true) => host.announce_due_expiries(BATCH).await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "expiry watch: cannot reach the state store; retrying"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
}
