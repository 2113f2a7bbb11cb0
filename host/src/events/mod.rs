//! Change events: every successful write, delete, destroy, undelete and
//! settings change of a stored secret is an event, published after the
//! access path audited it. An event names what changed (type, mount, path,
//! version), when, by whom and in which request; it never holds a value.
//!
//! Embedders subscribe with [`Host::subscribe`]; each event reaches a
//! subscriber only when Cedar lets the subscriber `read` the secret it is
//! about, decided when the event is delivered (so a policy change applies to
//! the next event).
//!
//! ```no_run
//! # async fn demo(host: &tresor::Host, me: &tresor::Caller) {
//! let mut events = host.subscribe(me, "secret/apps/");
//! while let Ok(event) = events.next().await {
//!     println!("{} {}/{} version {:?}", event.event_type, event.mount, event.path, event.version);
//! }
//! # }
//! ```
//!
//! Delivery to a subscriber is best effort: one that falls more than
//! [`CAPACITY`] events behind is told how many it missed
//! ([`EventsError::Lagged`]). Delivery to [webhooks] is at least once,
//! from an outbox in the host state store.

pub mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::access::{Caller, Host};
use crate::policy::{Action, PolicyEngine, RequestContext, Resource};

/// How many events a subscriber may fall behind before it misses some.
pub const CAPACITY: usize = 4096;

/// What happened to a secret. The names are Vault's event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventType {
    /// A new version was written (`kv-v2/data-write`).
    #[serde(rename = "kv-v2/data-write")]
    Write,
    /// The secret and all its versions were deleted (`kv-v2/delete`).
    #[serde(rename = "kv-v2/delete")]
    Delete,
    /// Versions were soft-deleted (`kv-v2/data-delete`).
    #[serde(rename = "kv-v2/data-delete")]
    DeleteVersions,
    /// Versions were destroyed for good (`kv-v2/destroy`).
    #[serde(rename = "kv-v2/destroy")]
    Destroy,
    /// Soft-deleted versions were restored (`kv-v2/undelete`).
    #[serde(rename = "kv-v2/undelete")]
    Undelete,
    /// The secret's (or the mount's) version settings changed (`kv-v2/metadata-write`).
    #[serde(rename = "kv-v2/metadata-write")]
    SettingsWrite,
    /// A rotation made a pending value (`rotation/started`).
    #[serde(rename = "rotation/started")]
    RotationStarted,
    /// Sent to a rule's check webhook only: accept the pending value
    /// (readable as version `pending`) by answering 2xx (`rotation/check`).
    #[serde(rename = "rotation/check")]
    RotationCheck,
    /// The pending value became current (`rotation/succeeded`).
    #[serde(rename = "rotation/succeeded")]
    RotationSucceeded,
    /// A rotation failed; the current value is unchanged (`rotation/failed`).
    #[serde(rename = "rotation/failed")]
    RotationFailed,
    /// The secret's latest version expires within `[expiry] warn_before`
    /// (`expiry/near`).
    #[serde(rename = "expiry/near")]
    NearExpiry,
    /// The secret's latest version has expired (`expiry/expired`).
    #[serde(rename = "expiry/expired")]
    Expired,
    /// A lease ended and the sweeper revoked its credential
    /// (`lease/expired`; `versions` holds the lease id).
    #[serde(rename = "lease/expired")]
    LeaseExpired,
}

impl EventType {
    /// Vault's name of the type (`kv-v2/data-write`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Write => "kv-v2/data-write",
            EventType::Delete => "kv-v2/delete",
            EventType::DeleteVersions => "kv-v2/data-delete",
            EventType::Destroy => "kv-v2/destroy",
            EventType::Undelete => "kv-v2/undelete",
            EventType::SettingsWrite => "kv-v2/metadata-write",
            EventType::RotationStarted => "rotation/started",
            EventType::RotationCheck => "rotation/check",
            EventType::RotationSucceeded => "rotation/succeeded",
            EventType::RotationFailed => "rotation/failed",
            EventType::NearExpiry => "expiry/near",
            EventType::Expired => "expiry/expired",
            EventType::LeaseExpired => "lease/expired",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change. Never holds a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unique on this host (for de-duplication): `<host member id>-<sequence>`.
    pub id: String,
    /// What happened.
    pub event_type: EventType,
    /// The mount.
    pub mount: String,
    /// The secret's path in the mount (empty for the mount's own settings).
    pub path: String,
    /// The version written, or the versions deleted, destroyed or restored.
    pub versions: Vec<String>,
    /// The version written (a write's `versions[0]`), for convenience.
    pub version: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The request that made the change, as the audit log names it.
    pub request_id: String,
    /// Who made it.
    pub principal: String,
}

impl Event {
    /// The event as Vault sends it (over the websocket, and to webhooks):
    /// a CloudEvents envelope, JSON.
    pub fn envelope(&self) -> serde_json::Value {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.time_ms);
        serde_json::json!({
            "id": self.id,
            "source": "tresor",
            "specversion": "1.0",
            "type": self.event_type.as_str(),
            "datacontenttype": "application/cloudevents",
            "time": crate::audit::format_rfc3339_millis(time),
            "data": {
                "event": {
                    "id": self.id,
                    "metadata": {
                        "path": format!("{}/{}", self.mount, self.path),
                        "mount": self.mount,
                        "versions": self.versions,
                        "current_version": self.version,
                        "request_id": self.request_id,
                        "principal": self.principal,
                    },
                },
                "event_type": self.event_type.as_str(),
                "plugin_info": { "mount_path": format!("{}/", self.mount), "plugin": "kv" },
            },
        })
    }
}

/// The host's event bus: subscribers and webhooks.
pub(crate) struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
    source: String,
    seq: AtomicU64,
    webhooks: Arc<webhooks::Webhooks>,
    delivery: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for EventBus {
    fn drop(&mut self) {
        let delivery = self.delivery.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = delivery {
            task.abort();
        }
    }
}

/// What the access path tells the bus about one change.
pub(crate) struct Change<'a> {
    pub event_type: EventType,
    pub mount: &'a str,
    pub path: &'a str,
    pub versions: Vec<String>,
    pub request_id: &'a str,
    pub principal: &'a str,
}

impl EventBus {
    /// A bus whose event ids start with `source` (this host's member id),
    /// queuing the events of `webhooks` in `state`. Delivery starts with
    /// [`start_delivery`](Self::start_delivery).
    pub(crate) fn new(
        source: &str,
        webhooks: &[crate::config::WebhookConfig],
        state: crate::state::StateStore,
    ) -> Result<EventBus, crate::error::StartupError> {
        Ok(EventBus {
            sender: broadcast::channel(CAPACITY).0,
            source: source.to_string(),
            seq: AtomicU64::new(0),
            webhooks: Arc::new(webhooks::Webhooks::new(webhooks, state)?),
            delivery: Default::default(),
        })
    }

    /// Start delivering to the webhooks (a no-op without any).
    pub(crate) fn start_delivery(&self) {
        *self.delivery.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.webhooks.start();
    }

    /// The configured webhooks' names.
    pub(crate) fn webhook_names(&self) -> Vec<String> {
        self.webhooks.names()
    }

    /// Ask the webhook `name` whether it accepts a rotation's pending value:
    /// one signed POST of a `rotation/check` event now (not queued; no
    /// retry), `Ok` when it answers 2xx. Subscribers do not see the event.
    pub(crate) async fn check(&self, name: &str, change: Change<'_>) -> Result<(), String> {
        let event = self.make(change);
        self.webhooks.check(name, &event).await
    }

    /// Publish a change that has happened and been audited: to subscribers
    /// at once, and into the webhook outbox (durably, before this returns,
    /// so the caller answers only once no restart can lose the event).
    pub(crate) async fn publish(&self, change: Change<'_>) {
        let event = self.announce(change);
        if let Err(e) = self.webhooks.enqueue(&event).await {
            tracing::error!(event = %event.id, error = %e,
                "a change event could not be queued for the webhooks; they will miss it");
        }
    }

    fn announce(&self, change: Change<'_>) -> Arc<Event> {
        let event = Arc::new(self.make(change));
        // No subscriber is not an error: nobody listens yet.
        let _ = self.sender.send(event.clone());
        event
    }

    fn make(&self, change: Change<'_>) -> Event {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let version = (change.event_type == EventType::Write)
            .then(|| change.versions.first().cloned())
            .flatten();
        let event = Event {
            id: format!("{}-{seq}", self.source),
            event_type: change.event_type,
            mount: change.mount.to_string(),
            path: change.path.to_string(),
            versions: change.versions,
            version,
            time_ms: crate::lease::now_ms(),
            request_id: change.request_id.to_string(),
            principal: change.principal.to_string(),
        };
        event
    }
}

/// Why [`Subscription::next`] returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// The subscriber fell behind and missed this many events; the next
    /// call goes on with the oldest event still kept.
    #[error("the subscriber fell behind and missed {0} events; read faster or re-read the secrets it cares about")]
    Lagged(u64),
    /// The host stopped.
    #[error("the host stopped; there are no more events")]
    Closed,
}

/// A subscription of one caller to the events under one prefix.
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<Event>>,
    policy: Arc<PolicyEngine>,
    caller: Caller,
    /// `mount/` or `mount/some/prefix`, or empty for every mount.
    prefix: String,
}

impl Subscription {
    /// The next event the caller may see: under the prefix, and about a
    /// secret Cedar lets the caller `read`.
    pub async fn next(&mut self) -> Result<Arc<Event>, EventsError> {
        loop {
            let event = match self.receiver.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(EventsError::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return Err(EventsError::Closed),
            };
            if self.wants(&event) {
                return Ok(event);
            }
        }
    }

    fn wants(&self, event: &Event) -> bool {
        let full = format!("{}/{}", event.mount, event.path);
        if !full.starts_with(&self.prefix) {
            return false;
        }
        let resource = Resource::Secret {
            mount: event.mount.clone(),
            path: event.path.clone(),
            plugin: String::new(),
            tags: Default::default(),
        };
        let ctx = RequestContext::now(
            self.caller.source.clone(),
            self.caller.mtls,
            self.caller.front_door.as_str(),
        );
        self.policy
            .authorize(&self.caller.principal, Action::Read, &resource, &ctx)
            .allowed
    }
}

impl Host {
    /// Subscribe `caller` to the change events under `prefix` (`secret/`,
    /// `secret/apps/`, or `""` for every mount) from now on. Each event is
    /// delivered only if Cedar lets the caller `read` its secret (decided
    /// on the secret's path; policies on tags see none here).
    pub fn subscribe(&self, caller: &Caller, prefix: &str) -> Subscription {
        Subscription {
            receiver: self.events.sender.subscribe(),
            policy: self.policy.clone(),
            caller: caller.clone(),
            prefix: prefix.to_string(),
        }
    }
}
