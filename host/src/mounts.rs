//! The live mount table: which mount serves which path. It is replaced
//! whole when the configuration is reloaded (see [`crate::reload`]). An
//! access takes a snapshot when it starts and keeps it until it ends, so
//! calls in flight finish on the instances they started on; a replaced
//! mount's instances are dropped when the last of those calls is done.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::access::Mount;
use crate::error::Error;
use crate::path;
use crate::secret::Capabilities;

/// The provider mounts and fallback chains in effect.
#[derive(Default)]
pub(crate) struct MountTable {
    /// Provider mounts by name.
    pub(crate) providers: BTreeMap<String, Arc<Mount>>,
    /// Fallback chains: mount name → the provider mounts it asks, in order.
    pub(crate) chains: BTreeMap<String, Vec<String>>,
}

impl MountTable {
    /// A table with the same mounts as `other`, to change and swap in.
    pub(crate) fn clone_of(other: &MountTable) -> MountTable {
        MountTable {
            providers: other.providers.clone(),
            chains: other.chains.clone(),
        }
    }

    /// The provider mount of `target` and the path inside it, checked (a
    /// prefix when `prefix`, e.g. for LIST).
    pub(crate) fn resolve<'t>(&self, target: &'t str, prefix: bool) -> Result<(&Mount, &'t str), Error> {
        let (mount_name, rel) = path::split(target);
        let mount = self.provider(mount_name, target)?;
        if prefix {
            path::check_prefix(rel)?;
        } else {
            path::check(rel)?;
        }
        Ok((mount, rel))
    }

    /// The provider mount `name`; `asked` is what the caller asked for, for the error.
    pub(crate) fn provider(&self, name: &str, asked: &str) -> Result<&Mount, Error> {
        self.providers
            .get(name)
            .map(Arc::as_ref)
            .ok_or_else(|| Error::UnknownMount {
                path: asked.chars().take(200).collect(),
                mounts: self.providers.keys().cloned().collect(),
            })
    }

    /// What the provider mount `name` supports (nothing when there is none).
    pub(crate) fn capabilities(&self, name: &str) -> Capabilities {
        self.providers
            .get(name)
            .map(|m| m.pool.capabilities())
            .unwrap_or(Capabilities {
                writable: false,
                versioned: false,
                check_and_set: false,
                deletable: false,
                listable: false,
                soft_delete: false,
            })
    }

    /// What a chain can do: read always; list and write when a member can.
    pub(crate) fn chain_capabilities(&self, name: &str) -> Capabilities {
        let members = self.chains.get(name).map(Vec::as_slice).unwrap_or_default();
        let any = |f: fn(&Capabilities) -> bool| members.iter().any(|m| f(&self.capabilities(m)));
        Capabilities {
            writable: any(|c| c.writable),
            versioned: false,
            check_and_set: false,
            deletable: false,
            listable: any(|c| c.listable),
            soft_delete: false,
        }
    }
}
