//! The rotation scheduler: a task that runs every rotation whose due time
//! has come, and resumes those a stopped host left half done. It finds its
//! work in the state store, so a rotation that fell due while the host was
//! down runs at start. Of several hosts sharing a state store, the leader
//! of [`super::SCHEDULER_JOB`] runs it.

use std::sync::Weak;
use std::time::Duration;

use crate::access::Host;

/// How often the scheduler looks for due rotations.
const POLL: Duration = Duration::from_millis(200);

/// Rotations run per pass at most (the next pass takes the rest).
const BATCH: usize = 32;

/// Start the scheduler on the current tokio runtime; it holds the host only
/// while it works, and ends once the host is dropped.
pub(crate) fn start(host: Weak<Host>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            {
                let Some(host) = host.upgrade() else { return };
                match host.rotations.state().lead(super::SCHEDULER_JOB).await {
                    Ok(true) => run_due(&host).await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "rotation scheduler: cannot reach the state store; retrying"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// One pass: every rotation due now, one after the other.
async fn run_due(host: &Host) {
    let due = match host
        .rotations
        .state()
        .due_rotations(crate::secret::now_ms(), BATCH)
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "rotation scheduler: cannot read the state store; retrying");
            return;
        }
    };
    for record in due {
        if record.source == crate::access::static_roles::SOURCE_STATIC {
            // Already logged and recorded when it fails.
            if let Ok(Some(())) = host.rotate_static_due(&record).await {
                tracing::info!(static_role = %record.path, "static role rotated");
            }
            continue;
        }
        match host.rotate_due(&record).await {
            Ok(Some(receipt)) => {
                tracing::info!(secret = %receipt.path, version = %receipt.version, "scheduled rotation done")
            }
            Ok(None) => {} // rotated by someone else first
            // Already logged and recorded by the rotation (its retry is scheduled).
            Err(_) => {}
        }
    }
}
