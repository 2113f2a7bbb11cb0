//! Expiry, entered through the access path (see [`crate::expiry`]): what a
//! write records, what a read checks, what the watch announces, and the
//! list of secrets about to expire.

use super::{Caller, Host, Mount, Reply, WriteReceipt};
use crate::error::Error;
use crate::events::{Change, EventType};
use crate::expiry;
use crate::policy::Decision;
use crate::state::ExpiryRecord;

/// Who the watch's events are recorded as.
const WATCH_PRINCIPAL: &str = "tresor:expiry-watch";

impl Host {
    /// After a write: record when the new version expires, or forget the
    /// expiry of one that does not.
    pub(super) async fn record_expiry(&self, mount: &Mount, rel: &str, written: &WriteReceipt) {
        let full = format!("{}/{rel}", mount.name);
        let state = self.state();
        let result = match expiry::expires_ms(&written.metadata) {
            Ok(Some(at)) => {
                let record = expiry::record(&full, &written.version, at, self.expiry_warn_ms);
                state.put_expiry(&record).await
            }
            // Checked before the write; nothing to record.
            Ok(None) | Err(_) => self.forget_expiry_of(&full).await,
        };
        if let Err(e) = result {
            tracing::error!(secret = %full, error = %e, "could not record the secret's expiry in the state store");
        }
    }

    /// After a delete: the secret has no expiry any more.
    pub(super) async fn forget_expiry(&self, mount: &Mount, rel: &str) {
        let full = format!("{}/{rel}", mount.name);
        if let Err(e) = self.forget_expiry_of(&full).await {
            tracing::error!(secret = %full, error = %e, "could not forget the secret's expiry in the state store");
        }
    }

    async fn forget_expiry_of(&self, full: &str) -> Result<(), crate::state::StateError> {
        // A read first: most secrets never had an expiry, and a read costs
        // the embedded store no synced commit.
        if self.state().list_expiries(full).await?.iter().any(|e| e.path == full) {
            self.state().delete_expiry(full).await?;
        }
        Ok(())
    }

    /// A read's result, refused when the version it returns has expired and
    /// the decision came from no `@allow_expired` permit.
    pub(super) fn unless_expired(
        mount: &Mount,
        rel: &str,
        decision: &Decision,
        result: Result<Reply, Error>,
    ) -> Result<Reply, Error> {
        let Ok(Reply::Secret(secret)) = &result else {
            return result;
        };
        match expiry::expires_ms(&secret.metadata) {
            Ok(Some(at)) if at <= crate::lease::now_ms() && !decision.allows_expired => Err(expiry::expired_error(
                &format!("{}/{rel}", mount.name),
                &secret.version,
                at,
            )),
            _ => result,
        }
    }

    /// One pass of the expiry watch: send what is due, log it, and make
    /// an expired secret's rotation due when a policy covers it.
    pub(crate) async fn announce_due_expiries(&self, batch: usize) {
        let state = self.state();
        let now = crate::lease::now_ms();
        let due = match state.due_expiries(now, batch).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "expiry watch: cannot read the state store; retrying");
                return;
            }
        };
        for mut record in due {
            let expired = record.expires_ms <= now;
            let event_type = if expired {
                record.expired_ms = Some(now);
                record.warned_ms.get_or_insert(now);
                tracing::warn!(secret = %record.path, version = %record.version, "a secret expired; reads of it are refused");
                EventType::Expired
            } else {
                record.warned_ms = Some(now);
                tracing::warn!(
                    secret = %record.path,
                    version = %record.version,
                    expires_in_s = (record.expires_ms - now) / 1000,
                    "a secret expires soon"
                );
                EventType::NearExpiry
            };
            record.next_check_ms = expiry::next_check(&record, self.expiry_warn_ms);
            // Recorded first: an event may be sent twice (at-least-once,
            // with an id to de-duplicate), never lost.
            if let Err(e) = state.put_expiry(&record).await {
                tracing::warn!(error = %e, "expiry watch: cannot record its progress; retrying");
                return;
            }
            self.publish_expiry(&record, event_type).await;
            if expired {
                self.rotate_expired(&record, now).await;
            }
        }
    }

    async fn publish_expiry(&self, record: &ExpiryRecord, event_type: EventType) {
        let (mount, rel) = record.path.split_once('/').unwrap_or((record.path.as_str(), ""));
        let request_id = format!("expiry-{}-{}", record.path, record.expires_ms);
        self.events
            .publish(Change {
                event_type,
                mount,
                path: rel,
                versions: vec![record.version.clone()],
                request_id: &request_id,
                principal: WATCH_PRINCIPAL,
            })
            .await;
    }

    async fn rotate_expired(&self, record: &ExpiryRecord, now: u64) {
        let table = self.table();
        let tags = match table.resolve(&record.path, false) {
            Ok((mount, rel)) => self.latest_metadata(mount, rel).await.unwrap_or_default(),
            Err(_) => return,
        };
        match self.rotations.due_now(&record.path, &tags, now).await {
            Ok(true) => tracing::info!(secret = %record.path, "the expired secret is rotated now"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(secret = %record.path, error = %e, "could not start the expired secret's rotation")
            }
        }
    }

    /// The secrets under `prefix` (`mount/path...`; empty: all) whose
    /// latest version expires within `within_ms` from now, or already has,
    /// soonest first. Authorized as action `admin` on `Mount::"sys"`.
    pub async fn expiring(&self, caller: &Caller, prefix: &str, within_ms: u64) -> Result<Vec<ExpiryRecord>, Error> {
        let state = self.state().clone();
        let prefix = prefix.to_string();
        self.admin(caller, "sys", "expiring/read", || async move {
            let until = crate::lease::now_ms().saturating_add(within_ms);
            let all = state
                .list_expiries(&prefix)
                .await
                .map_err(|e| Error::StateUnavailable(e.to_string()))?;
            Ok(all.into_iter().filter(|e| e.expires_ms <= until).collect())
        })
        .await
    }
}
