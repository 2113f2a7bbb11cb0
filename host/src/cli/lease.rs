//! `tresor creds` and `tresor lease ...`: dynamic credentials and their
//! leases on a running server (TRESOR_ADDR, TRESOR_TOKEN), through the same
//! Vault-compatible API the `bao` CLI uses.

use clap::Subcommand;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::CliError;
use crate::client::{api_error, encode_path, Client};

/// Work with leases on a server.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List lease ids under a prefix (`db/creds/readonly/`, `db/`; empty: every mount).
    List {
        /// The prefix.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Describe a lease: issue and expiry times, TTL left, state.
    Lookup {
        /// The lease id.
        lease_id: String,
    },
    /// Extend a lease, up to its role's maximum TTL.
    Renew {
        /// The lease id.
        lease_id: String,
        /// The new TTL from now, e.g. `30m` (default: the role's default TTL).
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a lease now (its credential stops working), or with
    /// `--prefix` every lease under a prefix.
    Revoke {
        /// The lease id, or the prefix with `--prefix`.
        target: String,
        /// Revoke every lease whose id starts with TARGET.
        #[arg(long)]
        prefix: bool,
        /// With `--prefix`: forget leases whose upstream revocation fails
        /// (needs Cedar `admin`; the credentials may still work upstream).
        #[arg(long, requires = "prefix")]
        force: bool,
    },
}

/// `tresor creds <mount>/<role>`: issue a credential and print it with its lease.
pub async fn creds(client: &Client, role: &str, ttl: Option<String>, json_out: bool) -> Result<(), CliError> {
    let (mount, role) = role
        .split_once('/')
        .ok_or_else(|| CliError(format!("`{role}` is not <mount>/<role> (e.g. db/readonly)")))?;
    let body = ttl.map(|t| Zeroizing::new(json!({ "ttl": t }).to_string().into_bytes()));
    let path = format!("/v1/{}/creds/{}", encode_path(mount), encode_path(role));
    let (status, bytes) = client.send("POST", &path, body).await?;
    if !status.is_success() {
        return Err(api_error(status, &bytes).into());
    }
    // The answer holds the credential: parse and print it, never log it.
    let answer: Value =
        serde_json::from_slice(&bytes).map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    println!("lease_id        {}", answer["lease_id"].as_str().unwrap_or_default());
    println!("lease_duration  {}s", answer["lease_duration"]);
    println!("renewable       {}", answer["renewable"]);
    if let Some(data) = answer["data"].as_object() {
        for (k, v) in data {
            println!(
                "{k:<15} {}",
                v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
            );
        }
    }
    Ok(())
}

/// Run a `lease` command.
pub async fn run(client: &Client, command: LeaseCommand) -> Result<(), CliError> {
    match command {
        LeaseCommand::List { prefix } => {
            let ids = list_all(client, &prefix).await?;
            for id in ids {
                println!("{id}");
            }
            Ok(())
        }
        LeaseCommand::Lookup { lease_id } => {
            let answer = client
                .json("PUT", "/v1/sys/leases/lookup", Some(&json!({ "lease_id": lease_id })))
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer["data"]).unwrap_or_default());
            Ok(())
        }
        LeaseCommand::Renew { lease_id, increment } => {
            let answer = client
                .json(
                    "PUT",
                    "/v1/sys/leases/renew",
                    Some(&json!({ "lease_id": lease_id, "increment": increment })),
                )
                .await?;
            println!(
                "{} renewed: {}s",
                answer["lease_id"].as_str().unwrap_or_default(),
                answer["lease_duration"]
            );
            for w in answer["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            Ok(())
        }
        LeaseCommand::Revoke { target, prefix, force } => {
            let path = match (prefix, force) {
                (false, _) => {
                    client
                        .json("PUT", "/v1/sys/leases/revoke", Some(&json!({ "lease_id": target })))
                        .await?;
                    println!("revoked {target}");
                    return Ok(());
                }
                (true, false) => format!("/v1/sys/leases/revoke-prefix/{}", encode_path(&target)),
                (true, true) => format!("/v1/sys/leases/revoke-force/{}", encode_path(&target)),
            };
            client.json("PUT", &path, None).await?;
            println!("revoked every lease under {target}");
            Ok(())
        }
    }
}

/// Every lease id under `prefix`, walking the listing's levels.
async fn list_all(client: &Client, prefix: &str) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut pending = vec![prefix.to_string()];
    while let Some(p) = pending.pop() {
        let (status, bytes) = client
            .send("LIST", &format!("/v1/sys/leases/lookup/{}", encode_path(&p)), None)
            .await?;
        if status.as_u16() == 404 {
            continue;
        }
        if !status.is_success() {
            return Err(api_error(status, &bytes).into());
        }
        let answer: Value =
            serde_json::from_slice(&bytes).map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
        let base = if p.is_empty() || p.ends_with('/') {
            p.clone()
        } else {
            format!("{p}/")
        };
        for key in answer["data"]["keys"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if key.ends_with('/') {
                pending.push(format!("{base}{key}"));
            } else {
                out.push(format!("{base}{key}"));
            }
        }
    }
    out.sort();
    Ok(out)
}
