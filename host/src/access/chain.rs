//! Fallback chains: a mount that asks other mounts in order (`chain =
//! ["azure", "dpapi", "env"]`), as deployments that have only some of their
//! backends on each machine need.
//!
//! Each member access goes through the access path as itself: authorized
//! by Cedar on the member's resource and audited there. A read answers with
//! the first member that has the secret (the answer's `served_by` names
//! it); a member that cannot be asked (unavailable, or its plugin failing)
//! is skipped with a warning, and if no member had the secret while one
//! could not be asked, the answer is `unavailable`, never `not-found`: that
//! member might hold it. A refusal by policy stops the chain. A LIST is the
//! union of the members' answers; a write goes to the first writable member.

use super::{Caller, Host, Op, Reply};
use crate::error::Error;
use crate::secret::Capabilities;

impl Host {
    /// One access to the chain `name` (members in order).
    pub(super) async fn access_chain(
        &self,
        caller: &Caller,
        name: &str,
        members: &[String],
        rel: &str,
        op: Op<'_>,
    ) -> Result<Reply, Error> {
        match op {
            Op::Read { version } => self.chain_read(caller, name, members, rel, version).await,
            Op::List => self.chain_list(caller, members, rel).await,
            Op::Write { .. } => {
                let Some(first) = members.iter().find(|m| self.mount_caps(m).writable) else {
                    return Err(Error::Unsupported(format!(
                        "no member of the chain `{name}` ({}) takes writes",
                        members.join(", ")
                    )));
                };
                Box::pin(self.access(caller, &format!("{first}/{rel}"), op)).await
            }
            _ => Err(Error::Unsupported(format!(
                "the chain `{name}` serves reads, lists and writes; delete or change versions at its member mounts ({})",
                members.join(", ")
            ))),
        }
    }

    async fn chain_read(
        &self,
        caller: &Caller,
        name: &str,
        members: &[String],
        rel: &str,
        version: Option<&str>,
    ) -> Result<Reply, Error> {
        let mut unreachable = Vec::new();
        for member in members {
            let target = format!("{member}/{rel}");
            match Box::pin(self.access(caller, &target, Op::Read { version })).await {
                Ok(reply) => return Ok(reply),
                Err(Error::NotFound(_)) => {}
                Err(e @ (Error::Unavailable(_) | Error::Plugin { .. })) => {
                    tracing::warn!(chain = name, member = member.as_str(), error = %e, "chain member could not be asked; trying the next");
                    unreachable.push(member.as_str());
                }
                Err(e) => return Err(e),
            }
        }
        if unreachable.is_empty() {
            Err(Error::NotFound(format!(
                "`{rel}` is in none of the members of the chain `{name}` ({})",
                members.join(", ")
            )))
        } else {
            Err(Error::Unavailable(format!(
                "`{rel}` was not found in the members of the chain `{name}` that answered, and {} could not be asked: it may be there; retry when it is back",
                unreachable.join(", ")
            )))
        }
    }

    async fn chain_list(&self, caller: &Caller, members: &[String], rel: &str) -> Result<Reply, Error> {
        let mut all = std::collections::BTreeSet::new();
        for member in members.iter().filter(|m| self.mount_caps(m).listable) {
            match Box::pin(self.access(caller, &format!("{member}/{rel}"), Op::List)).await {
                Ok(Reply::Paths(paths)) => all.extend(paths),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e @ (Error::Unavailable(_) | Error::Plugin { .. })) => {
                    tracing::warn!(member = member.as_str(), error = %e, "chain member could not be listed; its entries are missing");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::Paths(all.into_iter().collect()))
    }

    fn mount_caps(&self, name: &str) -> Capabilities {
        self.table().capabilities(name)
    }
}
