//! Dynamic secrets through the access path: issue, renew, revoke, look up
//! and list leases. Each operation is decided by Cedar on the lease's role
//! (`Tresor::Role::"<mount>/<role>"`, or the mount for a prefix that spans
//! roles), with the requested TTL and the lease id in the context, and
//! audited with the lease id — never the credential. The lease logic itself
//! is in [`crate::lease`].

use tracing::Instrument;

use super::{Caller, Guard, Host, Target};
use crate::error::Error;
use crate::lease::{IssuedLease, LeaseId};
use crate::policy::{Action, RequestContext, Resource};
use crate::state::LeaseRecord;

/// What a prefix of lease ids names: one role, or a whole mount.
struct Scope<'a> {
    mount: &'a str,
    role: Option<&'a str>,
    /// The prefix inside the mount, for the audit record.
    rest: &'a str,
}

fn scope(prefix: &str) -> Result<Scope<'_>, Error> {
    let (mount, rest) = prefix.split_once('/').unwrap_or((prefix, ""));
    if !crate::config::is_mount_name(mount) {
        return Err(Error::InvalidInput(format!(
            "`{}` is not a lease prefix; lease ids look like `<mount>/creds/<role>/<id>`",
            prefix.chars().take(200).collect::<String>()
        )));
    }
    let role = rest
        .strip_prefix("creds/")
        .and_then(|r| r.split_once('/'))
        .map(|(role, _)| role)
        .filter(|r| crate::config::is_mount_name(r));
    Ok(Scope { mount, role, rest })
}

impl Host {
    /// Issue a dynamic credential from `<mount>/<role>` (`db/readonly`) for
    /// `ttl_seconds` (`None`: the role's default; capped by its maximum).
    /// The lease is recorded before the credential is returned; the answer
    /// holds the credential's fields and its lease.
    pub async fn issue(
        &self,
        caller: &Caller,
        role_path: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<IssuedLease, Error> {
        let (mount_name, role_name) = role_path.split_once('/').unwrap_or((role_path, ""));
        let role_name = role_name.strip_prefix("creds/").unwrap_or(role_name);
        let (mount, role) = self.leases.role(mount_name, role_name)?;
        let path = format!("creds/{role_name}");
        let target = Target {
            mount: mount_name,
            path: &path,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Issue, target);
        let resource = Resource::Role {
            mount: mount_name.to_string(),
            role: role_name.to_string(),
            plugin: mount.plugin.clone(),
        };
        let mut ctx = caller.context(None);
        ctx.ttl_seconds = ttl_seconds.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        guard.authorize(&resource, &ctx)?;
        let (ttl, warning) = self.leases.ttl_for(&role, ttl_seconds);
        let result = self
            .leases
            .issue(
                mount_name,
                role_name,
                ttl,
                &caller.principal.name,
                caller.token_accessor.as_deref(),
            )
            .instrument(guard.span().clone())
            .await
            .map(|mut issued| {
                issued.warnings.extend(warning);
                issued
            });
        if let Ok(issued) = &result {
            guard.lease(&issued.lease.id);
        }
        guard.finish(result)
    }

    /// Renew lease `lease_id` for `increment_seconds` from now (`None`: the
    /// role's default TTL), up to the lease's maximum. Returns the lease and
    /// a warning when the maximum capped it.
    pub async fn renew(
        &self,
        caller: &Caller,
        lease_id: &str,
        increment_seconds: Option<u64>,
    ) -> Result<(LeaseRecord, Option<String>), Error> {
        let mut guard = self.lease_guard(caller, Action::Renew, lease_id, increment_seconds)?;
        let result = self
            .leases
            .renew(lease_id, increment_seconds)
            .instrument(guard.span().clone())
            .await;
        guard.lease(lease_id);
        guard.finish(result)
    }

    /// Revoke lease `lease_id`: the credential is revoked upstream and the
    /// lease forgotten. With `sync = false` the revocation is queued for the
    /// sweeper and this returns at once. Revoking an unknown lease succeeds.
    pub async fn revoke(&self, caller: &Caller, lease_id: &str, sync: bool) -> Result<(), Error> {
        let guard = self.lease_guard(caller, Action::Revoke, lease_id, None)?;
        let result = self
            .leases
            .revoke(lease_id, sync)
            .instrument(guard.span().clone())
            .await;
        guard.finish(result)
    }

    /// Look up lease `lease_id` (action `read` on its role).
    pub async fn lookup_lease(&self, caller: &Caller, lease_id: &str) -> Result<LeaseRecord, Error> {
        let guard = self.lease_guard(caller, Action::Read, lease_id, None)?;
        let result = self.leases.lookup(lease_id).await;
        guard.finish(result)
    }

    /// The leases whose id starts with `prefix` (action `list` on the role,
    /// or on the mount when the prefix spans roles).
    pub async fn list_leases(&self, caller: &Caller, prefix: &str) -> Result<Vec<LeaseRecord>, Error> {
        if prefix.is_empty() {
            // Every mount: only what the caller may list on each.
            let mut out = Vec::new();
            for name in self.leases.mount_names() {
                match Box::pin(self.list_leases(caller, &format!("{name}/"))).await {
                    Ok(v) => out.extend(v),
                    Err(Error::Denied { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(out);
        }
        let guard = self.prefix_guard(caller, Action::List, prefix)?;
        let result = self.leases.list(prefix).await;
        guard.finish(result)
    }

    /// Revoke every lease whose id starts with `prefix`
    /// (`db/creds/readonly/`). With `force`, leases whose upstream
    /// revocation fails are forgotten anyway (action `admin` instead of
    /// `revoke`); the answer then lists the ids that were forgotten without
    /// being revoked upstream.
    pub async fn revoke_prefix(&self, caller: &Caller, prefix: &str, force: bool) -> Result<Vec<String>, Error> {
        let action = if force { Action::Admin } else { Action::Revoke };
        let guard = self.prefix_guard(caller, action, prefix)?;
        let result = async {
            let mut forgotten = Vec::new();
            for lease in self.leases.list(prefix).await? {
                match self.leases.revoke(&lease.id, true).await {
                    Ok(()) => {}
                    Err(e) if force => {
                        tracing::warn!(lease = %lease.id, error = %e, "force-revoke: forgetting a lease whose upstream revocation failed");
                        self.leases.forget(&lease.id).await?;
                        forgotten.push(lease.id);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(forgotten)
        }
        .instrument(guard.span().clone())
        .await;
        guard.finish(result)
    }

    /// Revoke the leases issued with the token of `accessor` (called when
    /// that token is revoked): recorded as decided by `builtin:token-revoked`.
    pub async fn revoke_token_leases(&self, caller: &Caller, accessor: &str) -> Result<usize, Error> {
        let leases = self
            .leases
            .state()
            .leases_of_token(accessor)
            .await
            .map_err(|e| Error::StateUnavailable(e.to_string()))?;
        let count = leases.len();
        for lease in leases {
            let path = format!("creds/{}", lease.role);
            let plugin = self
                .leases
                .mount(&lease.mount)
                .map(|m| m.plugin.clone())
                .unwrap_or_default();
            let target = Target {
                mount: &lease.mount,
                path: &path,
                plugin: &plugin,
            };
            let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Revoke, target);
            guard.lease(&lease.id);
            guard.allow_builtin("builtin:token-revoked")?;
            // A failed revocation is left to the sweeper's retries.
            let result = self
                .leases
                .revoke(&lease.id, true)
                .instrument(guard.span().clone())
                .await;
            let result = match result {
                Err(_) => self.leases.revoke(&lease.id, false).await,
                ok => ok,
            };
            guard.finish(result)?;
        }
        Ok(count)
    }

    /// Open the guard of an operation on one lease and let Cedar decide it
    /// on the lease's role.
    fn lease_guard<'h>(
        &'h self,
        caller: &'h Caller,
        action: Action,
        lease_id: &str,
        ttl: Option<u64>,
    ) -> Result<Guard<'h>, Error> {
        let id = LeaseId::parse(lease_id).ok_or_else(|| {
            Error::InvalidInput(format!(
                "`{}` is not a lease id; lease ids look like `<mount>/creds/<role>/<id>`",
                lease_id.chars().take(200).collect::<String>()
            ))
        })?;
        let mount = self.leases.mount(id.mount)?;
        let path = format!("creds/{}", id.role);
        let target = Target {
            mount: id.mount,
            path: &path,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, action, target);
        guard.lease(lease_id);
        let resource = Resource::Role {
            mount: id.mount.to_string(),
            role: id.role.to_string(),
            plugin: mount.plugin.clone(),
        };
        let mut ctx = caller.context(None);
        ctx.lease_id = Some(lease_id.to_string());
        ctx.ttl_seconds = ttl.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        guard.authorize(&resource, &ctx)?;
        Ok(guard)
    }

    /// Open the guard of an operation on a prefix of lease ids: decided on
    /// the role when the prefix names one, else on the mount.
    fn prefix_guard<'h>(&'h self, caller: &'h Caller, action: Action, prefix: &str) -> Result<Guard<'h>, Error> {
        let scope = scope(prefix)?;
        let mount = self.leases.mount(scope.mount)?;
        let target = Target {
            mount: scope.mount,
            path: scope.rest,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, action, target);
        let resource = match scope.role {
            Some(role) => Resource::Role {
                mount: scope.mount.to_string(),
                role: role.to_string(),
                plugin: mount.plugin.clone(),
            },
            None => Resource::Mount {
                mount: scope.mount.to_string(),
                plugin: mount.plugin.clone(),
            },
        };
        let ctx: RequestContext = caller.context(None);
        guard.authorize(&resource, &ctx)?;
        Ok(guard)
    }

    /// Whether `name` is a generator mount (dynamic secrets).
    pub fn is_generator_mount(&self, name: &str) -> bool {
        self.leases.mounts.load().contains_key(name)
    }
}
