//! Tresor: a secrets host. Secrets are served by sandboxed WebAssembly
//! provider plugins, every access is authorized by Cedar policies and audited.
//!
//! Embed it in a platform:
//!
//! 1. build a [`Config`] (from a file with [`Config::from_file`], or
//!    [`Config::dev`] for a local file-backed store);
//! 2. [`Host::start`] it;
//! 3. for each request your platform has authenticated, make a [`Caller`] with
//!    its [`Principal`] and call [`Host::read`], [`Host::write`],
//!    [`Host::list`], [`Host::delete`] or [`Host::versions`].
//!
//! Every call goes through the same access path as the HTTP API and the CLI
//! (see [`access`]): policy first, then the plugin, with an audit span and
//! audit log entries for every decision.

pub mod access;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod conformance;
pub mod error;
pub mod events;
pub mod expiry;
pub mod files;
pub mod keys;
pub mod lease;
pub mod locks;
mod mounts;
pub mod path;
pub mod platform;
pub mod plugins;
pub mod policy;
pub mod reload;
mod retry;
pub mod rotation;
pub mod runtime;
pub mod secret;
mod startup;
pub mod state;

pub use access::{Caller, FrontDoor, Host, RefusalReason, RefusedAuthentication, Update, WriteOptions, WriteReceipt};
pub use config::Config;
pub use error::{Error, PluginFailure, StartupError};
pub use policy::{Action, Decision, PolicyEngine, Principal};
pub use reload::ReloadReport;
pub use secret::{Capabilities, Metadata, Secret, SecretBytes, SecretSettings, VersionInfo};
