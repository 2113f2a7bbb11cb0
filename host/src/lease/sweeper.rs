//! The lease sweeper: a task that revokes leases when they end and retries
//! revocations that failed, with backoff. It finds its work in the state
//! store, so after a restart it revokes at once every lease that ended while
//! the host was down.
//!
//! Of several hosts sharing one state store (PostgreSQL), one sweeps: the
//! one that leads the [`SWEEPER_JOB`] (see [`crate::state::StateStore::lead`]);
//! when it stops, another takes over within a sweep interval.
//!
//! It also finishes what a host that stopped mid-issue left: an `issuing`
//! lease still there long after its call's deadline was never handed out,
//! so the plugin is asked to `abandon` what that issue may have created.
//!
//! Each revocation it makes is audited like any access (principal
//! `tresor:lease-sweeper`, action `revoke`), decided by the built-in rule
//! `builtin:lease-expiry` (or `builtin:abandoned-issue`) rather than by
//! Cedar: an ended lease must be revoked whatever the policies say. Each
//! ended lease it revokes is a `lease/expired` event.

use std::sync::{Arc, Weak};

use tracing::Instrument;

use super::{now_ms, Leases};
use crate::access::{Caller, FrontDoor, Guard, Target};
use crate::audit::AuditLog;
use crate::events::{Change, EventBus, EventType};
use crate::policy::{Action, PolicyEngine, Principal};
use crate::state::LeaseState;

/// The singleton job the sweeper is, among hosts sharing a state store.
pub const SWEEPER_JOB: &str = "lease-sweeper";

/// Leases handled per sweep at most (the next sweep takes the rest).
const BATCH: usize = 128;

/// Start the sweeper on the current tokio runtime. It holds the host's
/// parts only while it sweeps: once the host is dropped (its audit log
/// closed and unlocked at once), the sweeper ends.
pub(crate) fn start(
    leases: &Arc<Leases>,
    policy: &Arc<PolicyEngine>,
    audit: &Arc<AuditLog>,
    events: &Arc<EventBus>,
) -> tokio::task::JoinHandle<()> {
    let (leases, policy, audit): (Weak<Leases>, Weak<PolicyEngine>, Weak<AuditLog>) =
        (Arc::downgrade(leases), Arc::downgrade(policy), Arc::downgrade(audit));
    let events = Arc::downgrade(events);
    tokio::spawn(async move {
        let caller = sweeper_caller();
        loop {
            let interval = {
                let (Some(leases), Some(policy), Some(audit), Some(events)) =
                    (leases.upgrade(), policy.upgrade(), audit.upgrade(), events.upgrade())
                else {
                    return;
                };
                // Of the hosts sharing a state store, one sweeps.
                match leases.state().lead(SWEEPER_JOB).await {
                    Ok(true) => sweep(&leases, &policy, &audit, &events, &caller).await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "lease sweeper: cannot reach the state store; retrying"),
                }
                leases.policy().sweep_interval
            };
            tokio::time::sleep(interval).await;
        }
    })
}

/// Who the sweeper's revocations are recorded as.
fn sweeper_caller() -> Caller {
    Caller {
        principal: Principal {
            name: "tresor:lease-sweeper".into(),
            groups: Vec::new(),
            attributes: Default::default(),
        },
        source: "local".into(),
        mtls: false,
        front_door: FrontDoor::Host,
        request_id: None,
        token_accessor: None,
    }
}

/// One pass: every lease due now.
pub(crate) async fn sweep(
    leases: &Leases,
    policy: &PolicyEngine,
    audit: &AuditLog,
    events: &EventBus,
    caller: &Caller,
) {
    let due = match leases.state().due_leases(now_ms(), BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "lease sweeper: cannot read the state store; retrying");
            return;
        }
    };
    for lease in due {
        let plugin = leases
            .mount(&lease.mount)
            .map(|m| m.plugin.clone())
            .unwrap_or_else(|_| "unknown".into());
        let path = format!("creds/{}", lease.role);
        let target = Target {
            mount: &lease.mount,
            path: &path,
            plugin: &plugin,
        };
        let mut guard = Guard::open(policy, audit, caller, Action::Revoke, target);
        guard.lease(&lease.id);
        // An intent left by a host that stopped mid-issue is abandoned
        // under its own rule, so the audit log tells the two apart.
        let rule = match lease.state {
            LeaseState::Issuing => "builtin:abandoned-issue",
            _ => "builtin:lease-expiry",
        };
        if let Err(e) = guard.allow_builtin(rule) {
            tracing::warn!(error = %e, "lease sweeper: the audit log is unavailable; revocations wait for it");
            return;
        }
        let result = leases.expire(&lease.id).instrument(guard.span().clone()).await;
        if let Err(e) = &result {
            tracing::warn!(lease = %lease.id, error = %e, "lease revocation failed; it will be retried");
        }
        let request_id = guard.request_id().to_string();
        let expired = result.is_ok() && lease.state != LeaseState::Issuing;
        let _ = guard.finish(result);
        if expired {
            events
                .publish(Change {
                    event_type: EventType::LeaseExpired,
                    mount: &lease.mount,
                    path: &path,
                    versions: vec![lease.id.clone()],
                    request_id: &request_id,
                    principal: &caller.principal.name,
                })
                .await;
        }
    }
}
