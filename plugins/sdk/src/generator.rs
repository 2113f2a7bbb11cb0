//! The [`Generator`] trait and the glue that exports it as the component's
//! `tresor:plugin/generator` interface.

use crate::bindings::generator::exports::tresor::plugin::generator::Guest;
use crate::bindings::generator::exports::tresor::plugin::static_credentials::Guest as StaticGuest;
use crate::config::refuse_unknown;
use crate::error::not_supported;
use crate::{Config, Error};

/// A freshly issued credential.
pub use crate::bindings::generator::exports::tresor::plugin::generator::Credential;
/// What the host asks for when it issues a credential.
pub use crate::bindings::generator::exports::tresor::plugin::generator::IssueRequest;
/// A role of the mount and its plugin-specific settings.
pub use crate::bindings::generator::exports::tresor::plugin::generator::Role;

/// Mints short-lived credentials (a database role, an API key) and revokes
/// them when their lease ends: the Rust side of a generator plugin.
///
/// The host owns the leases: it caps the TTL, records the lease before the
/// credential leaves, and calls [`revoke`](Generator::revoke) when the lease
/// ends, also after a restart. Roles come from the mount's configuration and
/// arrive with every call ([`Role::settings`] as a [`Config`] through
/// [`Role::config`]), so a generator keeps nothing but connections between
/// calls.
///
/// Implement it and export the type with
/// [`export_generator!`](crate::export_generator). Credentials are secret:
/// keep them out of error messages and log lines.
pub trait Generator: Sized + 'static {
    /// Short name of the plugin, used in error messages.
    const NAME: &'static str;

    /// Builds the generator from the mount's configuration; called once per
    /// fresh instance, before any other operation. Start with
    /// [`Config::check_keys`] listing every key the generator reads, so an
    /// unknown key (a typo) is refused.
    fn configure(config: Config) -> Result<Self, Error>;

    /// Checks a role's settings without issuing anything (called for every
    /// configured role when the mount starts). Refuse unknown settings with
    /// [`Role::check_settings`], malformed ones with `invalid-input` naming
    /// the key.
    fn check_role(&mut self, role: &Role) -> Result<(), Error>;

    /// Issues a credential for `request.role`, valid until
    /// `request.expires_at_ms`. Name what you create upstream from
    /// `request.issue_id` (and the other fields) deterministically, so that
    /// [`abandon`](Generator::abandon) can find it from the same request.
    fn issue(&mut self, request: IssueRequest) -> Result<Credential, Error>;

    /// Removes whatever [`issue`](Generator::issue) with this `request` may
    /// have created upstream: the host lost track of that call (it stopped
    /// before it recorded the lease, or the call failed part-way), so no one
    /// holds the credential. Succeed when nothing was created; the host
    /// retries a failure until it succeeds.
    fn abandon(&mut self, request: IssueRequest) -> Result<(), Error>;

    /// Extends a credential so it ends at `expires_at_ms`; returns the TTL
    /// granted in seconds. Default: `unsupported` (the lease is then not
    /// renewable; say so with `renewable: false` when issuing).
    fn renew(&mut self, role: &Role, revoke_handle: &str, ttl_seconds: u64, expires_at_ms: u64) -> Result<u64, Error> {
        let _ = (role, revoke_handle, ttl_seconds, expires_at_ms);
        Err(not_supported("renew", Self::NAME))
    }

    /// Revokes a credential now. Revoking an unknown or already revoked
    /// handle succeeds: the host retries failed revocations.
    fn revoke(&mut self, role: &Role, revoke_handle: &str) -> Result<(), Error>;

    /// Sets the password of the existing account `username` (a static
    /// role's) to `password`, by the role's settings. The host calls it
    /// again with the same arguments after a crash: it must succeed then
    /// too. Generators that can keep static accounts implement it.
    fn set_password(&mut self, role: &Role, username: &str, password: &str) -> Result<(), Error> {
        let _ = (role, username, password);
        Err(not_supported("set-password", Self::NAME))
    }
}

impl Role {
    /// The role's settings as a [`Config`], for [`Config::require`] and friends.
    pub fn config(&self) -> Config {
        Config::new(self.settings.clone())
    }

    /// Refuses any setting not in `accepted`, as [`Config::check_keys`]
    /// does for the mount's config: `invalid-input` naming the role, the
    /// first unknown setting, the accepted ones it is a near miss of and
    /// all the accepted ones, never a value. The host keeps `default_ttl`
    /// and `max_ttl` to itself: they never reach the plugin.
    pub fn check_settings(&self, accepted: &[&str]) -> Result<(), Error> {
        refuse_unknown(self.settings.iter().map(|(k, _)| k.as_str()), accepted, "setting")
            .map_err(|why| Error::invalid_input(format!("role `{}`: {why}; fix it in the mount's roles", self.name)))
    }
}

/// Where [`export_generator!`](crate::export_generator) keeps the configured
/// generator between calls. Implemented by the macro; not a public API.
#[doc(hidden)]
pub trait GeneratorSlot {
    /// The exported generator type.
    type Generator: Generator;

    /// Runs `f` on the slot holding the configured generator (`None` before
    /// `configure` succeeded).
    fn with_slot<R>(f: impl FnOnce(&mut Option<Self::Generator>) -> R) -> R;
}

fn with_generator<S: GeneratorSlot, R>(
    operation: &str,
    op: impl FnOnce(&mut S::Generator) -> Result<R, Error>,
) -> Result<R, Error> {
    S::with_slot(|slot| match slot {
        Some(generator) => op(generator),
        None => Err(Error::invalid_input(format!(
            "{operation} was called before the plugin was configured: call configure first"
        ))),
    })
}

impl<S: GeneratorSlot> StaticGuest for S {
    fn set_password(role: Role, username: String, password: String) -> Result<(), Error> {
        let password = zeroize::Zeroizing::new(password);
        with_generator::<S, _>("set-password", |g| g.set_password(&role, &username, &password))
    }
}

impl<S: GeneratorSlot> Guest for S {
    fn configure(config: Vec<(String, String)>) -> Result<(), Error> {
        let generator = S::Generator::configure(Config::new(config))?;
        S::with_slot(|slot| *slot = Some(generator));
        Ok(())
    }

    fn check_role(role: Role) -> Result<(), Error> {
        with_generator::<S, _>("check-role", |g| g.check_role(&role))
    }

    fn issue(request: IssueRequest) -> Result<Credential, Error> {
        with_generator::<S, _>("issue", |g| g.issue(request))
    }

    fn abandon(request: IssueRequest) -> Result<(), Error> {
        with_generator::<S, _>("abandon", |g| g.abandon(request))
    }

    fn renew(role: Role, revoke_handle: String, ttl_seconds: u64, expires_at_ms: u64) -> Result<u64, Error> {
        with_generator::<S, _>("renew", |g| g.renew(&role, &revoke_handle, ttl_seconds, expires_at_ms))
    }

    fn revoke(role: Role, revoke_handle: String) -> Result<(), Error> {
        with_generator::<S, _>("revoke", |g| g.revoke(&role, &revoke_handle))
    }
}

/// Exports a [`Generator`] as the component's `tresor:plugin/generator`
/// interface. Use it once, at the top level of the plugin crate:
///
/// ```no_run
/// use tresor_plugin_sdk::{export_generator, Config, Credential, Error, Generator, IssueRequest, Role};
///
/// /// Issues throw-away tokens for any role.
/// struct Demo;
///
/// impl Generator for Demo {
///     const NAME: &'static str = "demo";
///
///     fn configure(config: Config) -> Result<Self, Error> {
///         config.check_keys(&[])?; // takes no configuration
///         Ok(Demo)
///     }
///
///     fn check_role(&mut self, role: &Role) -> Result<(), Error> {
///         role.check_settings(&["scope"])
///     }
///
///     fn issue(&mut self, request: IssueRequest) -> Result<Credential, Error> {
///         Ok(Credential {
///             data: vec![("token".into(), "not-a-real-token".into())],
///             revoke_handle: format!("{}-{}", request.role.name, request.issue_id),
///             ttl_seconds: request.ttl_seconds,
///             revocable: true,
///             renewable: false,
///         })
///     }
///
///     fn abandon(&mut self, _request: IssueRequest) -> Result<(), Error> {
///         Ok(()) // nothing upstream to clean up
///     }
///
///     fn revoke(&mut self, _role: &Role, _revoke_handle: &str) -> Result<(), Error> {
///         Ok(())
///     }
/// }
///
/// export_generator!(Demo);
/// ```
#[macro_export]
macro_rules! export_generator {
    ($generator:ty) => {
        const _: () = {
            ::std::thread_local! {
                static GENERATOR: ::core::cell::RefCell<::core::option::Option<$generator>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct TresorGeneratorExport;

            impl $crate::__private::GeneratorSlot for TresorGeneratorExport {
                type Generator = $generator;

                fn with_slot<R>(f: impl FnOnce(&mut ::core::option::Option<$generator>) -> R) -> R {
                    GENERATOR.with(|slot| f(&mut slot.borrow_mut()))
                }
            }

            $crate::bindings::generator::export_generator_world!(
                TresorGeneratorExport with_types_in $crate::bindings::generator
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_settings_names_the_role_and_the_setting() {
        let role = Role {
            name: "readonly".into(),
            settings: vec![("creaton_statements".into(), "CREATE ROLE s3cr3t".into())],
        };
        match role.check_settings(&["creation_statements", "renew_statements"]) {
            Err(Error::InvalidInput(m)) => assert_eq!(
                m,
                "role `readonly`: unknown setting `creaton_statements` (did you mean `creation_statements`?): \
                 the settings this plugin accepts are creation_statements, renew_statements; \
                 fix it in the mount's roles"
            ),
            other => panic!("expected invalid-input, got {other:?}"),
        }
        assert!(role.check_settings(&["creaton_statements"]).is_ok());
    }
}
