//! The `tresor` command line: the server, clients of a running server
//! (`kv`, `token`, `creds`, `lease`), and offline tools (`policy`, `audit`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::policy::{Action, PolicyEngine, Principal, RequestContext, Resource};

mod audit;
use crate::client;
mod kv;
mod lease;
mod mask;
mod migrate;
mod operator;
mod plugin;
mod render;
mod run;
mod server;
mod token;
mod wake;

/// Why a client command failed: the one message it prints on stderr. A
/// request's [`client::ClientError`] becomes one, as do local failures
/// (a file that cannot be read, a bad argument).
#[derive(Debug)]
pub(crate) struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<client::ClientError> for CliError {
    fn from(e: client::ClientError) -> Self {
        CliError(e.to_string())
    }
}

/// Tresor: a secrets host with sandboxed plugins, Cedar policies and audit.
#[derive(Debug, Parser)]
#[command(name = "tresor", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP API compatible with Vault clients).
    Server(server::ServerArgs),
    /// Read and write KV v2 secrets on a server (TRESOR_ADDR or VAULT_ADDR,
    /// TRESOR_TOKEN or VAULT_TOKEN).
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Create, look up and revoke tokens on a server.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Issue a dynamic credential from a generator mount's role
    /// (`tresor creds db/readonly --ttl 1h`) and print it with its lease.
    Creds {
        /// `<mount>/<role>`.
        role: String,
        /// Lease TTL, e.g. `1h` (default: the role's default TTL).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate a secret now by its `[[rotation]]` rule (`tresor rotate
    /// secret/apps/db`); the value it replaces stays readable as version
    /// `previous`.
    Rotate {
        /// `<mount>/<path>`.
        path: String,
    },
    /// List, look up, renew and revoke leases of dynamic credentials.
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Secrets as a whole: which are about to expire.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Move the secrets of a plaintext .env file into a mount: a dry run by
    /// default; `--apply --to secret/apps/billing` writes, verifies and
    /// rewrites the file.
    Migrate(migrate::MigrateArgs),
    /// Write a config file from a template that names secrets
    /// (`{{ secret("secret/apps/db").password }}`), mode 0600; `--watch` keeps it current.
    Render(render::RenderArgs),
    /// Start a program with its secrets as environment variables, its
    /// output masked: `tresor run --from secret/apps/billing -- ./server`.
    Run(run::RunArgs),
    /// The hosts of a deployment: which share the state store, which leads
    /// each singleton job.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Write, check, list and reload plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Work with Cedar policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// List the secrets whose latest version expires within a time, or
    /// already has: `tresor secrets expiring --within 30d secret/apps/`.
    Expiring {
        /// Only secrets under this `mount/path` prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// How far ahead to look (`30d`, `12h`).
        #[arg(long, default_value = "30d")]
        within: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check that every policy in a directory parses and validates against the schema.
    Validate {
        /// Directory of *.cedar files.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Would this principal be allowed this action on this resource, and which policies decide it?
    Test(PolicyTest),
    /// Print the Cedar schema that policies are validated against.
    Schema,
}

#[derive(Debug, Args)]
struct PolicyTest {
    /// Directory of *.cedar files.
    #[arg(long, default_value = "policies")]
    dir: PathBuf,
    /// The principal's name.
    #[arg(long)]
    principal: String,
    /// A group the principal belongs to (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A principal attribute, `key=value` (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    /// read, write, delete, list, issue, renew, revoke, rotate or admin.
    #[arg(long)]
    action: Action,
    /// The resource, `mount/path` (a bare `mount` for a mount-level action).
    #[arg(long)]
    resource: String,
    /// The plugin serving the mount.
    #[arg(long, default_value = "file")]
    plugin: String,
    /// A tag (metadata pair) of the secret, `key=value` (repeatable).
    #[arg(long = "tag", value_parser = parse_pair)]
    tags: Vec<(String, String)>,
    /// The client's address.
    #[arg(long, default_value = "local")]
    source: String,
    /// Whether the client used mTLS.
    #[arg(long)]
    mtls: bool,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check an audit log: its hash chain (the first broken entry), and its
    /// signed checkpoint (entries removed from the end, an emptied or
    /// replaced log). Exit 0: intact; 1: broken or cut; 2: the chain is
    /// intact but unverifiable at the end (no checkpoint, or no key).
    Verify {
        /// The audit log file.
        log: PathBuf,
        /// The master key file the checkpoint is checked with (default:
        /// $TRESOR_MASTER_KEY, else master.key beside the log).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Per secret: reads, last read, last writer, last rotation and denied
    /// accesses, from the audit log, to find unused and hot secrets.
    Stats {
        /// The audit log file.
        log: PathBuf,
        /// Only secrets under this `mount/` or `mount/path/` prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got `{s}`"))
}

impl Cli {
    /// Run the command; the exit code is 0 on success, 1 on a negative answer
    /// (denied, broken chain), 2 on an error.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Server(args) => match server::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            },
            Command::Kv(command) => remote(|client| async move { kv::run(&client, command).await }),
            Command::Token(command) => remote(|client| async move { token::run(&client, command).await }),
            Command::Creds { role, ttl, json } => {
                remote(|client| async move { lease::creds(&client, &role, ttl, json).await })
            }
            Command::Lease(command) => remote(|client| async move { lease::run(&client, command).await }),
            Command::Rotate { path } => remote(|client| async move {
                let answer = client.rotate(&path).await?;
                println!(
                    "rotated {path}: version {} is current (it replaced {}); next rotation: {}",
                    answer["version"].as_str().unwrap_or("?"),
                    answer["previous_version"].as_str().unwrap_or("nothing"),
                    answer["next_rotation"].as_str().unwrap_or("only when asked")
                );
                Ok(())
            }),
            Command::Secrets(SecretsCommand::Expiring { prefix, within, json }) => remote(|client| async move {
                let query = format!("/v1/sys/expiring/{prefix}?within={within}");
                let answer = client.json("GET", &query, None).await?;
                let secrets = answer["data"]["secrets"].as_array().cloned().unwrap_or_default();
                if json {
                    println!("{}", serde_json::to_string_pretty(&secrets).unwrap_or_default());
                    return Ok(());
                }
                if secrets.is_empty() {
                    println!("no secret under `{prefix}` expires within {within}");
                }
                for s in &secrets {
                    println!(
                        "{:<48} version {:<6} {} {}",
                        s["path"].as_str().unwrap_or_default(),
                        s["version"].as_str().unwrap_or_default(),
                        if s["expired"] == true {
                            "expired at"
                        } else {
                            "expires at"
                        },
                        s["expires_at"].as_str().unwrap_or_default()
                    );
                }
                Ok(())
            }),
            Command::Operator(command) => remote(|client| async move { operator::run(&client, command).await }),
            Command::Plugin(command) if command.is_remote() => {
                remote(|client| async move { plugin::run_remote(&client, command).await })
            }
            Command::Plugin(command) => plugin::run_local(command),
            Command::Run(args) => remote_exit(|client| async move { run::run(&client, args).await }),
            Command::Migrate(args) => remote_exit(|client| migrate::run(client, args)),
            Command::Render(args) => remote(|client| async move { render::run(&client, args).await }),
            Command::Policy(PolicyCommand::Validate { dir }) => match PolicyEngine::load_dir(&dir) {
                Ok(engine) => {
                    println!(
                        "ok: {} policies in {} validate against the schema",
                        engine.len(),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
            Command::Policy(PolicyCommand::Schema) => {
                print!("{}", crate::policy::SCHEMA);
                ExitCode::SUCCESS
            }
            Command::Policy(PolicyCommand::Test(t)) => policy_test(t),
            Command::Audit(AuditCommand::Verify { log, key_file }) => audit::verify(&log, key_file),
            Command::Audit(AuditCommand::Stats { log, prefix, json }) => audit::stats(&log, &prefix, json),
        }
    }
}

/// Run a client command against the server the environment names.
fn remote<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    remote_exit(|client| async move { command(client).await.map(|()| ExitCode::SUCCESS) })
}

/// Like [`remote`], for a command that decides its own exit code.
fn remote_exit<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, CliError>>,
{
    let client = match client::Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("starting the async runtime: {e}")),
    };
    match runtime.block_on(command(client)) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn policy_test(t: PolicyTest) -> ExitCode {
    let engine = match PolicyEngine::load_dir(&t.dir) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let principal = Principal {
        name: t.principal.clone(),
        groups: t.groups,
        attributes: t.attributes.into_iter().collect(),
    };
    let (mount, path) = crate::path::split(&t.resource);
    let resource = if path.is_empty() {
        Resource::Mount {
            mount: mount.to_string(),
            plugin: t.plugin,
        }
    } else {
        let tags: BTreeMap<String, String> = t.tags.into_iter().collect();
        Resource::Secret {
            mount: mount.to_string(),
            path: path.to_string(),
            plugin: t.plugin,
            tags,
        }
    };
    let ctx = RequestContext {
        time_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        source: t.source,
        mtls: t.mtls,
        front_door: "cli",
        version: None,
        ttl_seconds: None,
        lease_id: None,
    };
    let d = engine.authorize(&principal, t.action, &resource, &ctx);
    let verdict = if d.allowed { "ALLOW" } else { "DENY" };
    let by = if d.policies.is_empty() {
        "no policy matched (default deny)".to_string()
    } else {
        d.policies.join(", ")
    };
    println!(
        "{verdict}: {} {} {} — decided by {by}",
        t.principal,
        t.action.as_str(),
        t.resource
    );
    for e in &d.errors {
        println!("  evaluation error: {e}");
    }
    if d.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
