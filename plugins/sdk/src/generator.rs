//! The [`Generator`] trait and the glue that exports it as the component's
//! `tresor:plugin/generator` interface.

use crate::bindings::generator::exports::tresor::plugin::generator::Guest;
use crate::error::not_supported;
use crate::{Config, Error};

/// A freshly issued credential and its lease.
pub use crate::bindings::generator::exports::tresor::plugin::generator::Credential;
/// A role a generator can issue credentials for.
pub use crate::bindings::generator::exports::tresor::plugin::generator::Role;

/// Mints short-lived credentials (a database role, an API token) and revokes
/// them when their lease ends: the Rust side of a generator plugin.
///
/// Implement it and export the type with
/// [`export_generator!`](crate::export_generator). Credentials are secret:
/// keep them out of error messages and log lines.
pub trait Generator: Sized + 'static {
    /// Short name of the plugin, used in error messages.
    const NAME: &'static str;

    /// Builds the generator from the mount's configuration; called once per
    /// fresh instance, before any other operation.
    fn configure(config: Config) -> Result<Self, Error>;

    /// The roles this generator can issue.
    fn roles(&mut self) -> Result<Vec<Role>, Error>;

    /// Issues a credential for `role` that expires after `ttl_seconds`
    /// (capped by the role's maximum).
    fn issue(&mut self, role: &str, ttl_seconds: u64) -> Result<Credential, Error>;

    /// Extends a credential's lifetime and returns the TTL granted.
    fn renew(&mut self, revoke_handle: &str, ttl_seconds: u64) -> Result<u64, Error> {
        let _ = (revoke_handle, ttl_seconds);
        Err(not_supported("renew", Self::NAME))
    }

    /// Revokes a credential now. Revoking an unknown or already revoked
    /// handle succeeds.
    fn revoke(&mut self, revoke_handle: &str) -> Result<(), Error>;
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

impl<S: GeneratorSlot> Guest for S {
    fn configure(config: Vec<(String, String)>) -> Result<(), Error> {
        let generator = S::Generator::configure(Config::new(config))?;
        S::with_slot(|slot| *slot = Some(generator));
        Ok(())
    }

    fn roles() -> Result<Vec<Role>, Error> {
        with_generator::<S, _>("roles", Generator::roles)
    }

    fn issue(role: String, ttl_seconds: u64) -> Result<Credential, Error> {
        with_generator::<S, _>("issue", |g| g.issue(&role, ttl_seconds))
    }

    fn renew(revoke_handle: String, ttl_seconds: u64) -> Result<u64, Error> {
        with_generator::<S, _>("renew", |g| g.renew(&revoke_handle, ttl_seconds))
    }

    fn revoke(revoke_handle: String) -> Result<(), Error> {
        with_generator::<S, _>("revoke", |g| g.revoke(&revoke_handle))
    }
}

/// Exports a [`Generator`] as the component's `tresor:plugin/generator`
/// interface. Use it once, at the top level of the plugin crate:
///
/// ```no_run
/// use tresor_plugin_sdk::{export_generator, Config, Credential, Error, Generator, Role};
///
/// /// Issues throw-away tokens for the role `demo`.
/// struct Demo;
///
/// impl Generator for Demo {
///     const NAME: &'static str = "demo";
///
///     fn configure(_config: Config) -> Result<Self, Error> {
///         Ok(Demo)
///     }
///
///     fn roles(&mut self) -> Result<Vec<Role>, Error> {
///         Ok(vec![Role {
///             name: "demo".into(),
///             description: "a token that opens nothing".into(),
///             default_ttl_seconds: 60,
///             max_ttl_seconds: 3600,
///         }])
///     }
///
///     fn issue(&mut self, role: &str, ttl_seconds: u64) -> Result<Credential, Error> {
///         if role != "demo" {
///             return Err(Error::not_found(format!("no role `{role}`")));
///         }
///         Ok(Credential {
///             data: vec![("token".into(), "not-a-real-token".into())],
///             revoke_handle: "demo-1".into(),
///             ttl_seconds: ttl_seconds.min(3600),
///         })
///     }
///
///     fn revoke(&mut self, _revoke_handle: &str) -> Result<(), Error> {
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
