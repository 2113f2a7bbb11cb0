//! Dynamic secrets: the leases of credentials that generator plugins issue.
//!
//! A lease is recorded in the host [state store](crate::state) **before**
//! its credential leaves the host; if it cannot be recorded, the credential
//! is revoked at once and the caller gets an error, so no credential exists
//! upstream without a lease here. Leases renew up to their role's maximum,
//! revoke on request, by prefix, or with the token they were issued to, and
//! the [sweeper](sweeper) revokes them when they end, also after a restart,
//! retrying failed revocations with backoff.
//!
//! This module holds the lease logic; every operation is entered through
//! the access path (`Host::issue`, `Host::renew`, `Host::revoke`, ...), which
//! authorizes and audits it first.

pub mod sweeper;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::Instrument as _;

use crate::error::Error;
use crate::locks::PathLocks;
use crate::runtime::{GenRole, IssueRequest, MountPool};
use crate::secret::SecretBytes;
use crate::state::{LeaseRecord, LeaseState, StateError, StateStore};

/// A role of a generator mount, with the TTLs the host enforces.
#[derive(Clone, Debug)]
pub struct Role {
    /// TTL when the request names none, seconds.
    pub default_ttl: u64,
    /// Longest TTL (issue and renewals), seconds; already capped by the server's maximum.
    pub max_ttl: u64,
    /// Name and plugin settings, as the plugin sees them.
    pub plugin_role: GenRole,
}

/// A generator mount: its plugin's instances and its roles.
pub(crate) struct GeneratorMount {
    pub(crate) plugin: String,
    /// The plugin's sha256 and language, for the catalog.
    pub(crate) info: crate::catalog::PluginInfo,
    pub(crate) pool: Arc<MountPool>,
    pub(crate) roles: BTreeMap<String, Role>,
    /// Static roles: existing accounts whose password the host rotates.
    pub(crate) static_roles: BTreeMap<String, StaticRole>,
}

/// A static role of a generator mount, as configured (see
/// [`crate::config::StaticRoleConfig`]).
#[derive(Clone, Debug)]
pub struct StaticRole {
    /// The accounts, used in turn (one or two).
    pub usernames: Vec<String>,
    /// How often the password changes, ms.
    pub period_ms: u64,
    /// Characters of each new password.
    pub password_length: usize,
    /// Name and plugin settings, as the plugin sees them.
    pub plugin_role: GenRole,
}

/// How the sweeper retries failed revocations, and the server's TTL limits.
#[derive(Clone, Copy, Debug)]
pub struct LeasePolicy {
    /// Server-wide default TTL, seconds.
    pub default_ttl: u64,
    /// Server-wide maximum TTL, seconds.
    pub max_ttl: u64,
    /// How often the sweeper looks for work.
    pub sweep_interval: Duration,
    /// First retry delay; doubles per failed attempt.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts before a lease is kept as irrevocable.
    pub max_attempts: u32,
}

/// A credential just issued, with its lease. The credential's fields are
/// secret: zeroized on drop, never printed.
pub struct IssuedLease {
    /// The lease as recorded.
    pub lease: LeaseRecord,
    /// The credential's fields (`username`, `password`, `access_key`, ...).
    pub data: Vec<(String, SecretBytes)>,
    /// Things the caller should know (a TTL that was capped, ...).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for IssuedLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLease")
            .field("lease", &self.lease.id)
            .field("fields", &self.data.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A lease id taken apart: `<mount>/creds/<role>/<suffix>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseId<'a> {
    /// The generator mount.
    pub mount: &'a str,
    /// The role.
    pub role: &'a str,
}

impl<'a> LeaseId<'a> {
    /// Parse a lease id; `None` when it is not in Tresor's shape.
    pub fn parse(id: &'a str) -> Option<LeaseId<'a>> {
        let mut parts = id.splitn(4, '/');
        let (mount, creds, role, suffix) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let ok = |s: &str| crate::config::is_mount_name(s);
        (creds == "creds" && ok(mount) && ok(role) && !suffix.is_empty() && suffix.len() <= 64)
            .then_some(LeaseId { mount, role })
    }
}

/// Generator mounts by name.
pub(crate) type GeneratorTable = BTreeMap<String, Arc<GeneratorMount>>;

/// The lease engine: generator mounts, the state store and the TTL rules.
pub struct Leases {
    /// The generator mounts in effect (replaced whole on reload; an
    /// operation keeps the mount it started with).
    pub(crate) mounts: arc_swap::ArcSwap<GeneratorTable>,
    state: StateStore,
    policy: LeasePolicy,
    /// One operation at a time per lease (renew, revoke and the sweeper).
    locks: PathLocks,
}

/// The time now, ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long past its call's deadline an `issuing` lease is taken as
/// abandoned by a host that stopped mid-issue. Generous, so that hosts
/// sharing a state store with clocks a little apart never abandon an issue
/// another host is still making.
const ABANDON_AFTER_DEADLINE: Duration = Duration::from_secs(30);

/// The request an `issue` of `lease` was (or is being) made with: `abandon`
/// gets exactly it again, so the plugin finds what it named after it.
fn issue_request<'a>(role: &'a GenRole, lease: &'a LeaseRecord) -> IssueRequest<'a> {
    IssueRequest {
        role,
        ttl_seconds: lease.expires_ms.saturating_sub(lease.issued_ms) / 1000,
        now_ms: lease.issued_ms,
        expires_at_ms: lease.expires_ms,
        display_name: &lease.principal,
        issue_id: lease.id.rsplit('/').next().unwrap_or_default(),
    }
}

fn state_err(e: StateError) -> Error {
    Error::StateUnavailable(e.to_string())
}

/// 24 random characters from `[A-Za-z0-9]`, for lease ids (unique across
/// hosts without coordination).
fn random_suffix() -> Result<String, Error> {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    let rng = ring::rand::SystemRandom::new();
    while out.len() < 24 {
        let mut b = [0u8; 32];
        rng.fill(&mut b)
            .map_err(|_| Error::Internal("the system random generator failed".into()))?;
        // 248 = 4 * 62: rejection keeps the choice uniform.
        out.extend(
            b.iter()
                .filter(|&&x| x < 248)
                .map(|&x| ALPHABET[(x % 62) as usize] as char),
        );
    }
    out.truncate(24);
    Ok(out)
}

impl Leases {
    /// A lease engine over `mounts`, keeping its leases in `state`.
    pub(crate) fn new(mounts: GeneratorTable, state: StateStore, policy: LeasePolicy) -> Leases {
        Leases {
            mounts: arc_swap::ArcSwap::from_pointee(mounts),
            state,
            policy,
            locks: PathLocks::new(1024),
        }
    }

    /// The retry and TTL rules in effect.
    pub fn policy(&self) -> LeasePolicy {
        self.policy
    }

    /// The state store the leases live in.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The generator mount `name`.
    pub(crate) fn mount(&self, name: &str) -> Result<Arc<GeneratorMount>, Error> {
        let mounts = self.mounts.load();
        mounts.get(name).cloned().ok_or_else(|| Error::UnknownMount {
            path: name.chars().take(200).collect(),
            mounts: mounts.keys().cloned().collect(),
        })
    }

    /// The names of the generator mounts in effect.
    pub(crate) fn mount_names(&self) -> Vec<String> {
        self.mounts.load().keys().cloned().collect()
    }

    /// The role `role` of generator mount `mount`.
    pub(crate) fn role(&self, mount: &str, role: &str) -> Result<(Arc<GeneratorMount>, Role), Error> {
        let m = self.mount(mount)?;
        let r = m.roles.get(role).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "mount `{mount}` has no role `{role}`; its roles are {:?} (configure roles under [mount.roles.<name>])",
                m.roles.keys().collect::<Vec<_>>()
            ))
        })?;
        Ok((m, r))
    }

    /// The TTL a request for `requested` seconds gets on `role` (0: the
    /// default), and a warning when it was capped.
    pub fn ttl_for(&self, role: &Role, requested: Option<u64>) -> (u64, Option<String>) {
        let max = role.max_ttl.min(self.policy.max_ttl);
        match requested.filter(|&t| t > 0) {
            None => (role.default_ttl.min(max), None),
            Some(t) if t > max => (
                max,
                Some(format!(
                    "TTL of {t}s exceeded the role's max_ttl of {max}s; the lease gets {max}s"
                )),
            ),
            Some(t) => (t, None),
        }
    }

    /// Issue a credential on `mount`/`role` for `ttl` seconds (already
    /// decided by [`ttl_for`](Self::ttl_for)) and record its lease durably
    /// before returning it.
    ///
    /// The issue runs to its end in a task of its own: a caller that goes
    /// away meanwhile (an HTTP client that disconnects) cannot stop it
    /// between the plugin's `issue` and the lease's record, which would
    /// leave a credential upstream that no lease knows of. The lease it
    /// records then ends with its TTL, or with a revoke by prefix.
    pub(crate) async fn issue(
        self: &Arc<Self>,
        mount: &str,
        role: &str,
        ttl: u64,
        principal: &str,
        token_accessor: Option<&str>,
    ) -> Result<IssuedLease, Error> {
        let me = self.clone();
        let (mount, role, principal) = (mount.to_string(), role.to_string(), principal.to_string());
        let token_accessor = token_accessor.map(str::to_string);
        let task = tokio::spawn(
            async move {
                me.issue_to_the_end(&mount, &role, ttl, &principal, token_accessor.as_deref())
                    .await
            }
            .in_current_span(),
        );
        task.await
            .map_err(|e| Error::Internal(format!("the issue stopped unexpectedly: {e}")))?
    }

    async fn issue_to_the_end(
        &self,
        mount: &str,
        role: &str,
        ttl: u64,
        principal: &str,
        token_accessor: Option<&str>,
    ) -> Result<IssuedLease, Error> {
        let (m, r) = self.role(mount, role)?;
        let issue_id = random_suffix()?;
        let id = format!("{mount}/creds/{role}/{issue_id}");
        // One operation at a time on this lease: the sweeper waits for the
        // issue to finish before it looks at the intent.
        let _turn = self.locks.lock(&id).await;
        // An instance first: the intent's grace below counts from a call
        // that starts now, not from a wait for a free instance.
        let mut instance = m.pool.checkout().await?;
        let now = now_ms();
        let grace = m.pool.call_timeout() + ABANDON_AFTER_DEADLINE;
        let intent = LeaseRecord {
            id,
            mount: mount.to_string(),
            role: role.to_string(),
            principal: principal.to_string(),
            token_accessor: token_accessor.map(str::to_string),
            revoke_handle: String::new(),
            issued_ms: now,
            renewed_ms: 0,
            expires_ms: now + ttl * 1000,
            max_expires_ms: now + r.max_ttl.min(self.policy.max_ttl) * 1000,
            renewable: false,
            revocable: true,
            state: LeaseState::Issuing,
            attempts: 0,
            next_attempt_ms: now + grace.as_millis() as u64,
            last_error: None,
        };
        // The intent is durable before anything exists upstream: a host that
        // stops from here on leaves it for the sweeper to abandon.
        self.state.put_lease(intent.clone()).await.map_err(state_err)?;
        let request = issue_request(&r.plugin_role, &intent);
        let credential = match instance.issue(request).await {
            Ok(credential) => credential,
            Err(e) => {
                drop(instance);
                self.abandon_now(&m, &r.plugin_role, &intent).await;
                return Err(e);
            }
        };
        drop(instance);
        let granted = match credential.ttl_seconds {
            0 => ttl,
            t => t.min(ttl),
        };
        let lease = LeaseRecord {
            revoke_handle: credential.revoke_handle.clone(),
            expires_ms: now + granted * 1000,
            renewable: credential.renewable,
            revocable: credential.revocable,
            state: LeaseState::Active,
            next_attempt_ms: 0,
            ..intent.clone()
        };
        if let Err(e) = self.state.put_lease(lease.clone()).await {
            // No lease, no credential: take it back before answering. If
            // that fails too, the intent stays for the sweeper.
            let undo = match credential.revocable {
                true => {
                    m.pool
                        .checkout()
                        .await?
                        .revoke(&r.plugin_role, &credential.revoke_handle)
                        .await
                }
                false => Ok(()),
            };
            if let Err(undo) = undo {
                tracing::warn!(mount, role, lease = %intent.id, error = %undo,
                    "a credential whose lease could not be recorded could not be revoked yet; the sweeper abandons it");
            }
            return Err(state_err(e));
        }
        Ok(IssuedLease {
            lease,
            data: credential.data,
            warnings: Vec::new(),
        })
    }

    /// After a failed `issue`: let the plugin undo whatever the call did
    /// part-way and forget the intent; when that fails, the intent stays
    /// and the sweeper retries it.
    async fn abandon_now(&self, m: &Arc<GeneratorMount>, role: &GenRole, intent: &LeaseRecord) {
        let undone = match m.pool.checkout().await {
            Ok(mut instance) => instance.abandon(issue_request(role, intent)).await,
            Err(e) => Err(e),
        };
        let forgotten = match undone {
            Ok(()) => self.state.delete_lease(&intent.id).await.map_err(state_err).map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = forgotten {
            tracing::warn!(lease = %intent.id, error = %e,
                "a failed issue could not be undone upstream yet; the sweeper retries it");
        }
    }

    /// The lease `id`, or `not-found`.
    pub async fn lookup(&self, id: &str) -> Result<LeaseRecord, Error> {
        self.state.get_lease(id).await.map_err(state_err)?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "lease `{}` not found: it expired, was revoked, or never existed",
                printable(id)
            ))
        })
    }

    /// Leases whose id starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<LeaseRecord>, Error> {
        self.state.list_leases(prefix).await.map_err(state_err)
    }

    /// Extend lease `id` by `increment` seconds from now (`None`: the role's
    /// default), capped at its maximum. Returns the lease and a warning when
    /// the cap applied.
    pub(crate) async fn renew(&self, id: &str, increment: Option<u64>) -> Result<(LeaseRecord, Option<String>), Error> {
        let _turn = self.locks.lock(id).await;
        let mut lease = self.lookup(id).await?;
        if lease.state != LeaseState::Active {
            return Err(Error::InvalidInput(format!(
                "lease `{id}` is {} and cannot be renewed",
                lease.state.as_str()
            )));
        }
        if !lease.renewable {
            return Err(Error::InvalidInput(format!("lease `{id}` is not renewable")));
        }
        let now = now_ms();
        if lease.expires_ms <= now {
            return Err(Error::InvalidInput(format!(
                "lease `{id}` has expired and cannot be renewed"
            )));
        }
        let (m, r) = self.role(&lease.mount, &lease.role)?;
        let increment = increment.filter(|&i| i > 0).unwrap_or(r.default_ttl);
        let wanted = now + increment * 1000;
        let expires = wanted.min(lease.max_expires_ms);
        let warning = (expires < wanted).then(|| {
            format!(
                "TTL of {increment}s exceeded the lease's maximum; it ends at its max_ttl, in {}s",
                (expires - now) / 1000
            )
        });
        let ttl = (expires - now) / 1000;
        m.pool
            .checkout()
            .await?
            .renew(&r.plugin_role, &lease.revoke_handle, ttl, expires)
            .await?;
        lease.expires_ms = expires;
        lease.renewed_ms = now;
        self.state.put_lease(lease.clone()).await.map_err(state_err)?;
        Ok((lease, warning))
    }

    /// Revoke lease `id` upstream now and forget it. With `sync = false`,
    /// only mark it for the sweeper (it is revoked within a sweep interval).
    pub(crate) async fn revoke(&self, id: &str, sync: bool) -> Result<(), Error> {
        let _turn = self.locks.lock(id).await;
        let Some(mut lease) = self.state.get_lease(id).await.map_err(state_err)? else {
            // Revocation is idempotent, as in Vault.
            return Ok(());
        };
        if !sync {
            // An unfinished issue stays one: the sweeper abandons it.
            if lease.state != LeaseState::Issuing {
                lease.state = LeaseState::RevocationPending;
            }
            lease.next_attempt_ms = 0;
            return self.state.put_lease(lease).await.map_err(state_err);
        }
        self.revoke_upstream(&lease).await?;
        self.state.delete_lease(id).await.map_err(state_err).map(|_| ())
    }

    /// Forget lease `id` without revoking it upstream (force-revoke). Returns
    /// the record that was dropped.
    pub(crate) async fn forget(&self, id: &str) -> Result<Option<LeaseRecord>, Error> {
        let _turn = self.locks.lock(id).await;
        let lease = self.state.get_lease(id).await.map_err(state_err)?;
        self.state.delete_lease(id).await.map_err(state_err)?;
        Ok(lease)
    }

    /// Revoke the credential behind `lease` upstream (non-revocable
    /// credentials just lapse); for an `issuing` lease, abandon what its
    /// issue may have created.
    async fn revoke_upstream(&self, lease: &LeaseRecord) -> Result<(), Error> {
        if !lease.revocable {
            return Ok(());
        }
        let m = self.mount(&lease.mount)?;
        // A role removed from the configuration is revoked with the plugin's defaults.
        let role = m
            .roles
            .get(&lease.role)
            .map(|r| r.plugin_role.clone())
            .unwrap_or_else(|| GenRole {
                name: lease.role.clone(),
                settings: Vec::new(),
            });
        let mut instance = m.pool.checkout().await?;
        match lease.state {
            LeaseState::Issuing => instance.abandon(issue_request(&role, lease)).await,
            _ => instance.revoke(&role, &lease.revoke_handle).await,
        }
    }

    /// The sweeper's work on one due lease: revoke it and forget it, or
    /// after a failure schedule a retry (or give up: irrevocable). Returns
    /// the outcome for the audit record.
    pub(crate) async fn expire(&self, id: &str) -> Result<(), Error> {
        let _turn = self.locks.lock(id).await;
        let Some(mut lease) = self.state.get_lease(id).await.map_err(state_err)? else {
            return Ok(());
        };
        let now = now_ms();
        let due = match lease.state {
            LeaseState::Active => lease.expires_ms <= now,
            LeaseState::RevocationPending | LeaseState::Issuing => lease.next_attempt_ms <= now,
            LeaseState::Irrevocable => false,
        };
        if !due {
            return Ok(());
        }
        match self.revoke_upstream(&lease).await {
            Ok(()) => self.state.delete_lease(id).await.map_err(state_err).map(|_| ()),
            Err(e) => {
                lease.attempts += 1;
                lease.last_error = Some(e.to_string());
                let delay = crate::retry::backoff(lease.attempts, self.policy.retry_initial, self.policy.retry_max);
                if lease.state == LeaseState::Issuing {
                    // No handle to give up on: abandoning is retried until
                    // it succeeds, at the longest retry delay at most.
                    lease.next_attempt_ms = now + delay.as_millis() as u64;
                } else if lease.attempts >= self.policy.max_attempts {
                    lease.state = LeaseState::Irrevocable;
                } else {
                    lease.state = LeaseState::RevocationPending;
                    lease.next_attempt_ms = now + delay.as_millis() as u64;
                }
                self.state.put_lease(lease).await.map_err(state_err)?;
                Err(e)
            }
        }
    }
}

/// An id cut to a printable length for messages.
fn printable(id: &str) -> String {
    id.chars().take(200).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_parse() {
        assert_eq!(
            LeaseId::parse("db/creds/ro/AbC123"),
            Some(LeaseId {
                mount: "db",
                role: "ro"
            })
        );
        assert_eq!(LeaseId::parse("db/creds/ro/"), None);
        assert_eq!(LeaseId::parse("db/roles/ro/x"), None);
        assert_eq!(LeaseId::parse("d b/creds/ro/x"), None);
        assert_eq!(LeaseId::parse("db/creds"), None);
    }

    #[test]
    fn random_suffixes_are_alphanumeric_and_differ() {
        let a = random_suffix().unwrap();
        let b = random_suffix().unwrap();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
