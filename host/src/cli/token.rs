//! `tresor token ...`: create, look up and revoke tokens on a running server.

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::CliError;
use crate::client::Client;

/// Work with tokens on a server (TRESOR_ADDR, TRESOR_TOKEN).
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (needs Cedar `admin` on `Mount::"auth"`).
    /// Left-out fields are inherited from the token making the request.
    Create {
        /// The principal's name.
        #[arg(long)]
        principal: Option<String>,
        /// A group of the principal (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A principal attribute, `key=value` (repeatable).
        #[arg(long = "attr", value_parser = super::parse_pair)]
        attributes: Vec<(String, String)>,
        /// Lifetime, e.g. `1h`, `30m`, `3600` (default: the server's default_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the whole answer as JSON instead of just the token.
        #[arg(long)]
        json: bool,
    },
    /// Describe a token (default: the one in TRESOR_TOKEN).
    Lookup {
        /// The token to describe.
        token: Option<String>,
        /// Describe the token with this accessor instead.
        #[arg(long, conflicts_with = "token")]
        accessor: Option<String>,
    },
    /// Revoke a token.
    Revoke {
        /// The token to revoke.
        #[arg(required_unless_present_any = ["accessor", "self_"])]
        token: Option<String>,
        /// Revoke the token with this accessor instead.
        #[arg(long, conflicts_with = "token")]
        accessor: Option<String>,
        /// Revoke the token in TRESOR_TOKEN.
        #[arg(long = "self", id = "self_", conflicts_with_all = ["token", "accessor"])]
        self_: bool,
    },
    /// Renew a token (default: the one in TRESOR_TOKEN) and print its new
    /// lifetime. Renewals stop at the token's maximum lifetime.
    Renew {
        /// The token to renew (needs Cedar `admin` on `Mount::"auth"`).
        token: Option<String>,
        /// Renew the token with this accessor instead.
        #[arg(long, conflicts_with = "token")]
        accessor: Option<String>,
        /// The new lifetime from now, e.g. `1h` (default: the token's TTL).
        #[arg(long)]
        increment: Option<String>,
    },
}

/// Run a `token` command.
pub async fn run(client: &Client, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create {
            principal,
            groups,
            attributes,
            ttl,
            json,
        } => {
            let mut body = Map::new();
            if let Some(p) = principal {
                body.insert("principal".into(), Value::String(p));
            }
            if !groups.is_empty() {
                body.insert("policies".into(), json!(groups));
            }
            if !attributes.is_empty() {
                let meta: Map<String, Value> = attributes.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                body.insert("meta".into(), Value::Object(meta));
            }
            if let Some(t) = ttl {
                body.insert("ttl".into(), Value::String(t));
            }
            let answer = client
                .json("POST", "/v1/auth/token/create", Some(&Value::Object(body)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
            } else {
                println!("{}", answer["auth"]["client_token"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        TokenCommand::Lookup { token, accessor } => {
            let answer = match (token, accessor) {
                (Some(t), _) => {
                    client
                        .json("POST", "/v1/auth/token/lookup", Some(&json!({ "token": t })))
                        .await?
                }
                (None, Some(a)) => {
                    client
                        .json(
                            "POST",
                            "/v1/auth/token/lookup-accessor",
                            Some(&json!({ "accessor": a })),
                        )
                        .await?
                }
                (None, None) => client.json("GET", "/v1/auth/token/lookup-self", None).await?,
            };
            println!("{}", serde_json::to_string_pretty(&answer["data"]).unwrap_or_default());
            Ok(())
        }
        TokenCommand::Revoke { token, accessor, self_ } => {
            match (token, accessor, self_) {
                (_, _, true) => client.json("POST", "/v1/auth/token/revoke-self", None).await?,
                (Some(t), _, _) => {
                    client
                        .json("POST", "/v1/auth/token/revoke", Some(&json!({ "token": t })))
                        .await?
                }
                (None, Some(a), _) => {
                    client
                        .json(
                            "POST",
                            "/v1/auth/token/revoke-accessor",
                            Some(&json!({ "accessor": a })),
                        )
                        .await?
                }
                (None, None, false) => return Err(CliError("give a token, --accessor or --self".into())),
            };
            eprintln!("revoked");
            Ok(())
        }
        TokenCommand::Renew {
            token,
            accessor,
            increment,
        } => {
            let mut body = Map::new();
            if let Some(i) = increment {
                body.insert("increment".into(), Value::String(i));
            }
            let path = match (token, accessor) {
                (Some(t), _) => {
                    body.insert("token".into(), Value::String(t));
                    "/v1/auth/token/renew"
                }
                (None, Some(a)) => {
                    body.insert("accessor".into(), Value::String(a));
                    "/v1/auth/token/renew-accessor"
                }
                (None, None) => "/v1/auth/token/renew-self",
            };
            let answer = client.json("POST", path, Some(&Value::Object(body))).await?;
            let auth = &answer["auth"];
            println!(
                "renewed: expires in {} s{}",
                auth["lease_duration"],
                if auth["renewable"] == Value::Bool(false) {
                    " (its maximum lifetime: not renewable any further)"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
