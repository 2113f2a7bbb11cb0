//! `tresor plugin ...`: the plugin author's kit and the running server's
//! plugins.
//!
//! - `tresor plugin new --lang rust|python|js NAME`: a provider project
//!   that builds and passes `plugin check`;
//! - `tresor plugin check FILE.wasm`: is it a Tresor plugin, which contract
//!   version, sha256, what it may ask for, and the conformance suite in a
//!   scratch mount (no server needed);
//! - `tresor plugin list` and `tresor plugin reload` on a running server.

mod check;
mod new;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use crate::cli::CliError;
use crate::client::Client;

/// Plugins: write, check, list and reload them.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Start a provider plugin project in a new directory NAME: Rust
    /// (wit-bindgen), Python (componentize-py) or JavaScript
    /// (componentize-js). Its README says how to build and check it.
    New {
        /// The project's (and plugin's) name: letters, digits, `-`.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: new::Language,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a component: the contract it implements (world and version),
    /// its sha256 (the pin for `sha256 = ...`), the grants its imports may
    /// ask for, and, for a provider, the conformance suite in a scratch
    /// mount with a scratch directory and the clock granted.
    Check(check::CheckArgs),
    /// The plugins a running server runs: kind, language, sha256, mounts and
    /// instances (TRESOR_ADDR, TRESOR_TOKEN; Cedar `admin` on `Mount::"sys"`).
    List {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a running server read its configuration file again and apply
    /// it: mounts added, changed and removed without a restart (as SIGHUP).
    Reload {
        /// Mounts to start anew even when their configuration is unchanged.
        #[arg(long = "mount", value_name = "MOUNT")]
        mounts: Vec<String>,
    },
}

impl PluginCommand {
    /// Whether the command talks to a running server.
    pub fn is_remote(&self) -> bool {
        matches!(self, PluginCommand::List { .. } | PluginCommand::Reload { .. })
    }
}

/// Run a plugin command that needs no server (`new`, `check`).
pub fn run_local(command: PluginCommand) -> ExitCode {
    match command {
        PluginCommand::New { name, lang, dir } => new::run(&name, lang, dir),
        PluginCommand::Check(args) => check::run(args),
        PluginCommand::List { .. } | PluginCommand::Reload { .. } => {
            eprintln!("error: this command needs a server; it is run with TRESOR_ADDR");
            ExitCode::from(2)
        }
    }
}

/// Run a plugin command against the server the environment names.
pub async fn run_remote(client: &Client, command: PluginCommand) -> Result<(), CliError> {
    match command {
        PluginCommand::List { json } => {
            let answer = client.json("GET", "/v1/sys/plugins/catalog", None).await?;
            let detailed = &answer["data"]["detailed"];
            if json {
                println!("{}", serde_json::to_string_pretty(detailed).unwrap_or_default());
            } else {
                print!("{}", table(detailed));
            }
            Ok(())
        }
        PluginCommand::Reload { mounts } => {
            let body = serde_json::json!({ "mounts": mounts });
            let answer = client
                .json("PUT", "/v1/sys/plugins/reload/backend", Some(&body))
                .await?;
            let data = &answer["data"];
            for (label, key) in [
                ("added", "added"),
                ("changed", "changed"),
                ("removed", "removed"),
                ("unchanged", "unchanged"),
            ] {
                let names: Vec<&str> = data[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{label:<10} {}",
                    if names.is_empty() {
                        "-".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
            for w in answer["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        PluginCommand::New { .. } | PluginCommand::Check(_) => Ok(()),
    }
}

/// One line per plugin and mount.
fn table(detailed: &Value) -> String {
    let mut out = format!(
        "{:<20} {:<10} {:<11} {:<14} {:<16} INSTANCES (idle/busy/max)\n",
        "PLUGIN", "KIND", "LANGUAGE", "SHA256", "MOUNT"
    );
    for p in detailed.as_array().into_iter().flatten() {
        let sha = p["sha256"].as_str().unwrap_or_default();
        for m in p["mounts"].as_array().into_iter().flatten() {
            let i = &m["instances"];
            out.push_str(&format!(
                "{:<20} {:<10} {:<11} {:<14} {:<16} {}/{}/{}\n",
                p["name"].as_str().unwrap_or_default(),
                p["kind"].as_str().unwrap_or_default(),
                p["language"].as_str().unwrap_or("-"),
                &sha[..sha.len().min(12)],
                m["mount"].as_str().unwrap_or_default(),
                i["idle"],
                i["busy"],
                i["max"],
            ));
        }
    }
    out
}
