//! `tresor server`: start a host and serve the HTTP API until SIGTERM/SIGINT.
//!
//! `--dev` needs nothing but the binary: the embedded `file` provider at
//! `secret/`, state in `./.tresor-dev/`, policies in `./.tresor-dev/policies`
//! (seeded with the example policies built into the binary, watched for
//! changes), and a fresh root token printed once. `--config tresor.toml` runs what the file describes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::api::{Listener, Server};
use crate::auth::{root_principal, TokenSpec, TokenStore};
use crate::config::Config;
use crate::Host;

/// The example policies a dev server's policy directory starts with.
const EMBEDDED_POLICIES: &[(&str, &str)] = &[
    ("admins.cedar", include_str!("../../../policies/admins.cedar")),
    ("apps.cedar", include_str!("../../../policies/apps.cedar")),
];

/// `tresor server` options.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Development mode: embedded `file` mount at `secret/`, state in
    /// --dev-dir, a root token printed at start. Not for production.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// Configuration file (mounts, plugins, listeners, TLS, policies, audit, tokens).
    #[arg(long, short = 'c', required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Listen address (`host:port`, port 0 for any free port); replaces the
    /// address of the first configured listener.
    #[arg(long, visible_alias = "dev-listen-address", value_name = "ADDR")]
    listen: Option<String>,
    /// State directory of the development server.
    #[arg(long, default_value = ".tresor-dev", value_name = "DIR")]
    dev_dir: PathBuf,
    /// Use this root token in development mode instead of a random one.
    #[arg(long, env = "TRESOR_DEV_ROOT_TOKEN_ID", value_name = "TOKEN", hide_env_values = true)]
    dev_root_token_id: Option<String>,
    /// Log JSON lines (to stderr) instead of text.
    #[arg(long)]
    log_json: bool,
}

/// Run the server until SIGTERM or SIGINT; errors are messages for stderr.
pub fn run(args: ServerArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> Result<(), String> {
    let _telemetry = crate::audit::init_telemetry(args.log_json).map_err(|e| e.to_string())?;
    // Catch the signals from now on, so that none is lost while starting.
    let stop = stop_signal()?;
    let hangups = hangup_signal()?;

    if args.config.is_none() && !args.dev {
        return Err("give --config tresor.toml, or --dev".into());
    }
    let source = config_source(&args);
    let config = source()?;
    config.check().map_err(|e| e.to_string())?;
    // Bind first: a taken port fails before anything else starts.
    let mut listeners = Vec::new();
    for l in config.server.effective_listeners() {
        listeners.push(Listener::bind(&l).await.map_err(|e| e.to_string())?);
    }

    let host = Arc::new(Host::start(config.clone()).await.map_err(|e| e.to_string())?);
    host.start_schedules();
    let token_file = config.server.token_file(&config.state_dir);
    let tokens = Arc::new(
        TokenStore::open(host.state().clone(), Some(&token_file))
            .await
            .map_err(|e| e.to_string())?,
    );
    let root = if args.dev {
        tokens.revoke_bootstrap().await.map_err(|e| e.to_string())?;
        Some(create_root(&tokens, args.dev_root_token_id.as_deref()).await?)
    } else if config.server.tokens.bootstrap_root_token && tokens.is_empty().await.map_err(|e| e.to_string())? {
        Some(create_root(&tokens, None).await?)
    } else {
        None
    };

    if args.dev {
        println!(
            "Tresor development server: state in {}, policies in {}. Not for production.",
            config.state_dir.display(),
            config.policy.dir.display()
        );
    }
    for l in &listeners {
        println!("Listening on {}", l.url());
    }
    if let Some(token) = &root {
        println!("Root Token: {}", token.as_str());
        println!("The root token is shown once: principal `root`, group `admins`, no expiry.");
        if let Some(first) = listeners.first() {
            println!("Use it with Vault clients or the tresor CLI:");
            println!(
                "    export VAULT_ADDR='{}' VAULT_TOKEN='{}'",
                first.url(),
                token.as_str()
            );
        }
    }
    drop(root);

    let _reloads = reload_on_sighup(host.clone(), source.clone(), hangups);
    Server::new(host.clone(), tokens, &config.server)
        .with_config_source(source)
        .serve(listeners, stop)
        .await;
    // The last reference: dropping the host syncs the audit log.
    drop(host);
    tracing::info!("stopped");
    Ok(())
}

/// Reads the configuration the way the server started with it: the file
/// (or the dev configuration), with `--listen` applied.
fn config_source(args: &ServerArgs) -> crate::api::ConfigSource {
    let (path, dev, dev_dir, listen) = (args.config.clone(), args.dev, args.dev_dir.clone(), args.listen.clone());
    Arc::new(move || {
        let mut config = match (&path, dev) {
            (_, true) => dev_config(&dev_dir)?,
            (Some(path), false) => Config::from_file(path).map_err(|e| e.to_string())?,
            (None, false) => return Err("give --config tresor.toml, or --dev".into()),
        };
        if let Some(addr) = &listen {
            match config.server.listeners.first_mut() {
                Some(first) => first.address = addr.clone(),
                None => config.server.listen = Some(addr.clone()),
            }
        }
        Ok(config)
    })
}

/// SIGHUP, caught from the start (its default would end the process).
#[cfg(unix)]
fn hangup_signal() -> Result<tokio::signal::unix::Signal, String> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup()).map_err(|e| format!("installing the SIGHUP handler: {e}"))
}

#[cfg(not(unix))]
fn hangup_signal() -> Result<(), String> {
    Ok(())
}

/// On SIGHUP, read the configuration again and apply it (see
/// [`Host::reload_on_signal`]); the outcome is logged and audited.
#[cfg(unix)]
fn reload_on_sighup(
    host: Arc<Host>,
    source: crate::api::ConfigSource,
    mut hup: tokio::signal::unix::Signal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the configuration again");
            let config = match source() {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the configuration cannot be read; nothing changed");
                    continue;
                }
            };
            if let Err(e) = host.reload_on_signal(config).await {
                tracing::error!(error = %e, "SIGHUP: reload refused");
            }
        }
    })
}

/// Windows has no SIGHUP: reload through `sys/plugins/reload/backend`.
#[cfg(not(unix))]
fn reload_on_sighup(_host: Arc<Host>, _source: crate::api::ConfigSource, _hup: ()) {}

/// Resolves when the server is asked to stop: SIGTERM or SIGINT on Unix;
/// Ctrl-C, Ctrl-Break or the console closing on Windows. Handlers are
/// installed now, so a signal arriving during start-up is not lost.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("installing the SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("installing the SIGINT handler: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(windows)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
    let installing = |what: &str, e: std::io::Error| format!("installing the {what} handler: {e}");
    let mut c = ctrl_c().map_err(|e| installing("Ctrl-C", e))?;
    let mut brk = ctrl_break().map_err(|e| installing("Ctrl-Break", e))?;
    let mut close = ctrl_close().map_err(|e| installing("console close", e))?;
    Ok(async move {
        tokio::select! {
            _ = c.recv() => tracing::info!("Ctrl-C received"),
            _ = brk.recv() => tracing::info!("Ctrl-Break received"),
            _ = close.recv() => tracing::info!("console closed"),
        }
    })
}

async fn create_root(tokens: &TokenStore, chosen: Option<&str>) -> Result<zeroize::Zeroizing<String>, String> {
    let spec = TokenSpec {
        principal: root_principal(),
        ttl_seconds: 0,
        max_ttl_seconds: 0,
        bootstrap: true,
    };
    match chosen {
        Some(id) => {
            tokens.create_with_id(id, &spec).await.map_err(|e| e.to_string())?;
            Ok(zeroize::Zeroizing::new(id.to_string()))
        }
        None => tokens.create(&spec).await.map(|(t, _)| t).map_err(|e| e.to_string()),
    }
}

/// The dev configuration: `Config::dev` in `dir`, with `dir/policies`
/// seeded with the example policies (files already there are kept). Never
/// a `policies/` of the working directory: in a checkout that would be the
/// repository's own examples.
fn dev_config(dir: &Path) -> Result<Config, String> {
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&policy_dir).map_err(|e| format!("creating {}: {e}", policy_dir.display()))?;
    for (name, text) in EMBEDDED_POLICIES {
        let path = policy_dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(Config::dev(dir, &policy_dir))
}
