//! `tresor kv ...`: KV v2 secrets on a running server (see [`crate::client`]
//! for where it connects). Values go to stdout, everything else to stderr.

use std::io::Read as _;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::CliError;
use crate::client::{api_error, encode_path, Client};

/// Work with KV v2 secrets on a server (TRESOR_ADDR, TRESOR_TOKEN).
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a secret's data (the latest version, or --version).
    Get {
        /// A version to read instead of the latest.
        #[arg(long = "version", value_name = "N")]
        version: Option<u64>,
        /// Print only this field, raw.
        #[arg(long)]
        field: Option<String>,
        /// `mount/path`, e.g. `secret/apps/db`.
        path: String,
    },
    /// Write a new version: `key=value` pairs (`key=@file` reads a file,
    /// `key=-` reads stdin).
    Put {
        /// Check-and-set: write only if the current version is N (0: only if
        /// the secret does not exist).
        #[arg(long, value_name = "N")]
        cas: Option<u64>,
        /// `mount/path`.
        path: String,
        /// `key=value` pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// List the keys under a path, one level (folders end in `/`).
    List {
        /// `mount/` or `mount/prefix/`.
        path: String,
    },
    /// Soft-delete the latest version, or --versions.
    Delete {
        /// Comma-separated versions.
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
        /// `mount/path`.
        path: String,
    },
    /// Restore soft-deleted versions.
    Undelete {
        /// Comma-separated versions.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        /// `mount/path`.
        path: String,
    },
    /// Erase versions' values for good.
    Destroy {
        /// Comma-separated versions.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        /// `mount/path`.
        path: String,
    },
    /// A secret's versions and custom metadata.
    #[command(subcommand)]
    Metadata(MetadataCommand),
}

/// `tresor kv metadata ...`.
#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Print the versions and custom_metadata.
    Get {
        /// `mount/path`.
        path: String,
    },
    /// Replace custom_metadata (writes a new version with the same value).
    Put(MetadataPut),
    /// Delete the secret with all its versions.
    Delete {
        /// `mount/path`.
        path: String,
    },
}

/// `tresor kv metadata put`.
#[derive(Debug, Args)]
pub struct MetadataPut {
    /// `key=value` (repeatable).
    #[arg(long = "custom-metadata", value_parser = super::parse_pair, required = true)]
    custom_metadata: Vec<(String, String)>,
    /// `mount/path`.
    path: String,
}

/// `mount/rest` → (`mount`, `rest`).
fn split(path: &str) -> Result<(&str, &str), CliError> {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((m, rest)) if !m.is_empty() => Ok((m, rest)),
        None if !path.is_empty() => Ok((path, "")),
        _ => Err(CliError(format!(
            "`{path}` is not `mount/path` (e.g. `secret/apps/db`)"
        ))),
    }
}

fn url(section: &str, path: &str) -> Result<String, CliError> {
    let (mount, rest) = split(path)?;
    Ok(format!("/v1/{}/{section}/{}", encode_path(mount), encode_path(rest)))
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Run a `kv` command.
pub async fn run(client: &Client, command: KvCommand) -> Result<(), CliError> {
    match command {
        KvCommand::Get { version, field, path } => {
            let mut target = url("data", &path)?;
            if let Some(v) = version {
                target.push_str(&format!("?version={v}"));
            }
            let (status, body) = client.send("GET", &target, None).await?;
            if status == hyper::StatusCode::NOT_FOUND {
                return Err(CliError(format!("no value found at {path}")));
            }
            if !status.is_success() {
                return Err(api_error(status, &body).into());
            }
            let parsed: Value = serde_json::from_slice(&body)
                .map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
            let data = &parsed["data"]["data"];
            match field {
                None => print_json(data),
                Some(f) => match data.get(&f) {
                    Some(Value::String(s)) => println!("{s}"),
                    Some(other) => println!("{other}"),
                    None => return Err(CliError(format!("field `{f}` not present in {path}"))),
                },
            }
            Ok(())
        }
        KvCommand::Put { cas, path, pairs } => {
            let mut data = Map::new();
            for pair in &pairs {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| CliError(format!("`{pair}` is not key=value")))?;
                data.insert(k.to_string(), Value::String(read_value(v)?.to_string()));
            }
            let mut body = json!({ "data": data });
            if let Some(c) = cas {
                body["options"] = json!({ "cas": c });
            }
            let answer = client.json("PUT", &url("data", &path)?, Some(&body)).await;
            if let Value::Object(data) = &mut body["data"] {
                for v in data.values_mut() {
                    if let Value::String(s) = v {
                        zeroize::Zeroize::zeroize(s);
                    }
                }
            }
            let answer = answer?;
            print_json(&answer["data"]);
            for w in answer["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            Ok(())
        }
        KvCommand::List { path } => {
            let (status, body) = client.send("LIST", &url("metadata", &path)?, None).await?;
            if status == hyper::StatusCode::NOT_FOUND {
                return Err(CliError(format!("no keys found at {path}")));
            }
            if !status.is_success() {
                return Err(api_error(status, &body).into());
            }
            let parsed: Value = serde_json::from_slice(&body)
                .map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
            for k in parsed["data"]["keys"].as_array().into_iter().flatten() {
                println!("{}", k.as_str().unwrap_or_default());
            }
            Ok(())
        }
        KvCommand::Delete { versions, path } if versions.is_empty() => client
            .json("DELETE", &url("data", &path)?, None)
            .await
            .map(drop)
            .map_err(CliError::from),
        KvCommand::Delete { versions, path } => versions_op(client, "delete", &path, &versions).await,
        KvCommand::Undelete { versions, path } => versions_op(client, "undelete", &path, &versions).await,
        KvCommand::Destroy { versions, path } => versions_op(client, "destroy", &path, &versions).await,
        KvCommand::Metadata(MetadataCommand::Get { path }) => {
            let answer = client.json("GET", &url("metadata", &path)?, None).await?;
            print_json(&answer["data"]);
            Ok(())
        }
        KvCommand::Metadata(MetadataCommand::Put(m)) => {
            let custom: Map<String, Value> = m
                .custom_metadata
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = json!({ "custom_metadata": custom });
            client
                .json("POST", &url("metadata", &m.path)?, Some(&body))
                .await
                .map(drop)
                .map_err(CliError::from)
        }
        KvCommand::Metadata(MetadataCommand::Delete { path }) => client
            .json("DELETE", &url("metadata", &path)?, None)
            .await
            .map(drop)
            .map_err(CliError::from),
    }
}

async fn versions_op(client: &Client, section: &str, path: &str, versions: &[u64]) -> Result<(), CliError> {
    let body = json!({ "versions": versions });
    client
        .json("POST", &url(section, path)?, Some(&body))
        .await
        .map(drop)
        .map_err(CliError::from)
}

/// A `key=value` value: literal, `@file` (the file's content) or `-` (stdin).
fn read_value(v: &str) -> Result<Zeroizing<String>, CliError> {
    if v == "-" {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError(format!("reading stdin: {e}")))?;
        return Ok(s);
    }
    if let Some(file) = v.strip_prefix('@') {
        return std::fs::read_to_string(file)
            .map(Zeroizing::new)
            .map_err(|e| CliError(format!("reading {file}: {e}")));
    }
    Ok(Zeroizing::new(v.to_string()))
}
