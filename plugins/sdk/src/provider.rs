//! The [`Provider`] trait and the glue that exports it as the component's
//! `tresor:plugin/provider` interface.

use crate::bindings::provider::exports::tresor::plugin::provider::Guest;
use crate::bindings::provider::exports::tresor::plugin::resealer::Guest as ResealerGuest;
use crate::error::not_supported;
use crate::{
    validate_path, validate_prefix, Capabilities, Config, Error, Metadata, Resealed, Secret, Settings, VersionInfo,
};

impl Capabilities {
    /// Supports nothing beyond `get` of the latest version.
    pub const NONE: Capabilities = Capabilities {
        writable: false,
        versioned: false,
        check_and_set: false,
        deletable: false,
        listable: false,
        soft_delete: false,
    };

    /// Supports every operation of the provider interface.
    pub const ALL: Capabilities = Capabilities {
        writable: true,
        versioned: true,
        check_and_set: true,
        deletable: true,
        listable: true,
        soft_delete: true,
    };
}

/// A store of versioned secrets addressed by slash-separated paths relative
/// to the mount: the Rust side of a provider plugin.
///
/// Implement [`configure`](Provider::configure) and [`get`](Provider::get),
/// override the other operations your backend supports, report them in
/// [`capabilities`](Provider::capabilities), and export the type with
/// [`export_provider!`](crate::export_provider). Every `path` your methods
/// receive has passed [`validate_path`] (and every list prefix
/// [`validate_prefix`]).
///
/// Error messages must never contain a secret value.
pub trait Provider: Sized + 'static {
    /// Short name of the plugin, used in error messages (`"file"`, `"env"`).
    const NAME: &'static str;

    /// Builds the provider from the mount's configuration. Called once per
    /// fresh instance, before any other operation. Start with
    /// [`Config::check_keys`] listing every key the provider reads, so an
    /// unknown key (a typo) is refused; return `invalid-input` naming the
    /// key when the configuration cannot work ([`Config::require`] does
    /// that for missing keys).
    fn configure(config: Config) -> Result<Self, Error>;

    /// What this provider supports (the contract's `get-capabilities`). The
    /// host refuses unsupported operations before calling the plugin.
    /// Default: [`Capabilities::NONE`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// Reads the latest version of the secret at `path`, or the given
    /// `version`. A soft-deleted or destroyed version is `not-found`, and so
    /// is the latest version when it is deleted.
    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error>;

    /// Writes a new version and returns its identifier. With
    /// `expected_version`, writes only if the current version equals it
    /// (`""` means "must not exist yet") and answers `conflict` otherwise.
    fn put(
        &mut self,
        path: &str,
        value: Vec<u8>,
        metadata: Metadata,
        expected_version: Option<&str>,
    ) -> Result<String, Error> {
        let _ = (path, value, metadata, expected_version);
        Err(not_supported("put", Self::NAME))
    }

    /// Deletes the secret at `path` with all its versions.
    fn delete(&mut self, path: &str) -> Result<(), Error> {
        let _ = path;
        Err(not_supported("delete", Self::NAME))
    }

    /// Moves every stored version of the secret at `path` to the host's
    /// current key generation, after `tresor operator rotate-master-key`:
    /// pass each sealed value to [`host::reseal`](crate::host::reseal) and
    /// store what it returns in place of the old blob, atomically. A
    /// provider that keeps values sealed by [`host::seal`](crate::host::seal)
    /// implements it; without it, the host never retires the older key
    /// generations. `not-found` when the secret no longer exists.
    fn reseal(&mut self, path: &str) -> Result<Resealed, Error> {
        let _ = path;
        Err(not_supported("reseal", Self::NAME))
    }

    /// Soft-deletes `versions` of the secret (or, with `destroy`, erases
    /// their values for good). Unknown versions are ignored.
    fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        let _ = (path, versions, destroy);
        Err(not_supported("delete-versions", Self::NAME))
    }

    /// Restores soft-deleted `versions`. Destroyed and unknown versions are
    /// ignored.
    fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        let _ = (path, versions);
        Err(not_supported("undelete-versions", Self::NAME))
    }

    /// Lists the paths of all secrets starting with `prefix` (`""` lists
    /// everything): the contract's `list-secrets`.
    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let _ = prefix;
        Err(not_supported("list-secrets", Self::NAME))
    }

    /// Describes every version of the secret at `path`, oldest first.
    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let _ = path;
        Err(not_supported("versions", Self::NAME))
    }

    /// The settings of the secret at `path` (its own only), or the mount's
    /// for the empty path; `not-found` when the secret has neither versions
    /// nor settings. Default: `unsupported`.
    fn settings(&mut self, path: &str) -> Result<Settings, Error> {
        let _ = path;
        Err(not_supported("get-settings", Self::NAME))
    }

    /// Replaces the settings of the secret at `path`, or the mount's for
    /// the empty path. Default: `unsupported`.
    fn set_settings(&mut self, path: &str, settings: Settings) -> Result<(), Error> {
        let _ = (path, settings);
        Err(not_supported("set-settings", Self::NAME))
    }
}

/// Where [`export_provider!`](crate::export_provider) keeps the configured
/// provider between calls. Implemented by the macro; not a public API.
#[doc(hidden)]
pub trait ProviderSlot {
    /// The exported provider type.
    type Provider: Provider;

    /// Runs `f` on the slot holding the configured provider (`None` before
    /// `configure` succeeded).
    fn with_slot<R>(f: impl FnOnce(&mut Option<Self::Provider>) -> R) -> R;
}

/// Runs `op` on the configured provider, or explains that `configure` must
/// come first.
fn with_provider<S: ProviderSlot, R>(
    operation: &str,
    op: impl FnOnce(&mut S::Provider) -> Result<R, Error>,
) -> Result<R, Error> {
    S::with_slot(|slot| match slot {
        Some(provider) => op(provider),
        None => Err(Error::invalid_input(format!(
            "{operation} was called before the plugin was configured: call configure first"
        ))),
    })
}

impl<S: ProviderSlot> Guest for S {
    fn configure(config: Vec<(String, String)>) -> Result<(), Error> {
        let provider = S::Provider::configure(Config::new(config))?;
        S::with_slot(|slot| *slot = Some(provider));
        Ok(())
    }

    fn get_capabilities() -> Capabilities {
        S::with_slot(|slot| slot.as_ref().map_or(Capabilities::NONE, Provider::capabilities))
    }

    fn get(path: String, version: Option<String>) -> Result<Secret, Error> {
        validate_path(&path)?;
        with_provider::<S, _>("get", |p| p.get(&path, version.as_deref()))
    }

    fn put(
        path: String,
        value: Vec<u8>,
        metadata: Metadata,
        expected_version: Option<String>,
    ) -> Result<String, Error> {
        validate_path(&path)?;
        with_provider::<S, _>("put", |p| p.put(&path, value, metadata, expected_version.as_deref()))
    }

    fn delete(path: String) -> Result<(), Error> {
        validate_path(&path)?;
        with_provider::<S, _>("delete", |p| p.delete(&path))
    }

    fn delete_versions(path: String, versions: Vec<String>, destroy: bool) -> Result<(), Error> {
        validate_path(&path)?;
        with_provider::<S, _>("delete-versions", |p| p.delete_versions(&path, &versions, destroy))
    }

    fn undelete_versions(path: String, versions: Vec<String>) -> Result<(), Error> {
        validate_path(&path)?;
        with_provider::<S, _>("undelete-versions", |p| p.undelete_versions(&path, &versions))
    }

    fn list_secrets(prefix: String) -> Result<Vec<String>, Error> {
        validate_prefix(&prefix)?;
        with_provider::<S, _>("list-secrets", |p| p.list(&prefix))
    }

    fn versions(path: String) -> Result<Vec<VersionInfo>, Error> {
        validate_path(&path)?;
        with_provider::<S, _>("versions", |p| p.versions(&path))
    }

    fn get_settings(path: String) -> Result<Settings, Error> {
        if !path.is_empty() {
            validate_path(&path)?;
        }
        with_provider::<S, _>("get-settings", |p| p.settings(&path))
    }

    fn set_settings(path: String, settings: Settings) -> Result<(), Error> {
        if !path.is_empty() {
            validate_path(&path)?;
        }
        with_provider::<S, _>("set-settings", |p| p.set_settings(&path, settings))
    }
}

impl<S: ProviderSlot> ResealerGuest for S {
    fn reseal(path: String) -> Result<Resealed, Error> {
        validate_path(&path)?;
        with_provider::<S, _>("reseal", |p| p.reseal(&path))
    }
}

/// Exports a [`Provider`] as the component's `tresor:plugin/provider`
/// interface. Use it once, at the top level of the plugin crate:
///
/// ```ignore
/// tresor_plugin_sdk::export_provider!(MyProvider);
/// ```
///
/// `configure` builds the provider and keeps it for the life of the
/// instance; an operation called before a successful `configure` answers
/// `invalid-input`.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        const _: () = {
            ::std::thread_local! {
                static PROVIDER: ::core::cell::RefCell<::core::option::Option<$provider>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct TresorProviderExport;

            impl $crate::__private::ProviderSlot for TresorProviderExport {
                type Provider = $provider;

                fn with_slot<R>(f: impl FnOnce(&mut ::core::option::Option<$provider>) -> R) -> R {
                    PROVIDER.with(|slot| f(&mut slot.borrow_mut()))
                }
            }

            $crate::bindings::provider::export_provider_world!(
                TresorProviderExport with_types_in $crate::bindings::provider
            );
        };
    };
}
