//! `tresor run`: start a program with its secrets as environment variables,
//! in place of a plaintext `.env` file.
//!
//! ```sh
//! tresor run --from secret/apps/billing -- ./server --port 8080
//! ```
//!
//! Every secret under `--from <mount>/<prefix>` becomes a variable named by
//! the last segment of its path (`secret/apps/billing/DB_PASSWORD` →
//! `DB_PASSWORD`); a secret with several fields gives one variable per field
//! (`DB` with `user` and `password` → `DB_USER`, `DB_PASSWORD`). A `--map`
//! file names variables explicitly, one `NAME=<mount>/<path>[#field]` per
//! line; `NAME=dynamic:<mount>/creds/<role>#field` issues a dynamic
//! credential for the child: leased when it starts, renewed while it runs
//! (when the lease allows), revoked when it exits. Values never appear on a
//! command line. The child's output is
//! masked (see [`super::mask`]) unless `--no-masking`; signals are passed on
//! to it, and `tresor run` exits as it does (128 + N when a signal N ended it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use super::mask::Masker;
use super::wake::Wake;
use super::CliError;
use crate::client::{api_error, encode_path, Client};

/// `tresor run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Make every secret under this `<mount>/<prefix>` a variable (repeatable;
    /// later prefixes win).
    #[arg(long = "from", value_name = "MOUNT/PREFIX")]
    from: Vec<String>,
    /// A file of `NAME=<mount>/<path>[#field]` lines (`#` comments); these win
    /// over `--from`.
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Show the child's output as it is, values included.
    #[arg(long)]
    no_masking: bool,
    /// Restart the child when a secret changed: stop it (SIGTERM) and start
    /// it again with the new values. Changes are seen at once when the
    /// server sends change events, and every `--interval` in any case.
    #[arg(long)]
    watch: bool,
    /// With --watch: how often to look even without a change event, e.g. `30s`.
    #[arg(long, default_value = "30s", requires = "watch")]
    interval: String,
    /// With --watch: send this signal (`HUP`, `USR1`, `USR2`, `INT`, `QUIT`,
    /// `TERM`) to the program when a secret changed instead of restarting
    /// it, for programs that read their secrets again by themselves.
    #[arg(long, value_name = "SIGNAL", requires = "watch")]
    signal: Option<String>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The variables for the child, by name; values are secret.
type Variables = BTreeMap<String, Zeroizing<String>>;

/// Fetch the secrets, run the child, and exit as it did.
pub async fn run(client: &Client, args: RunArgs) -> Result<ExitCode, CliError> {
    if args.from.is_empty() && args.map.is_none() {
        return Err(CliError(
            "say which secrets to pass: --from <mount>/<prefix> or --map FILE".into(),
        ));
    }
    let every =
        crate::config::parse_duration_seconds(&args.interval).map_err(|e| CliError(format!("--interval: {e}")))?;
    // Watch before the first fetch: a change after it is not missed.
    let on_change = match &args.signal {
        Some(name) => OnChange::Signal(signal_number(name)?),
        None => OnChange::Restart,
    };
    let wake = match args.watch {
        true => Some(Wake::start(client, Duration::from_secs(every.max(1))).await),
        false => None,
    };
    let mut vars = Variables::new();
    for prefix in &args.from {
        from_prefix(client, prefix, &mut vars).await?;
    }
    let mut leases = Leases::default();
    if let Some(file) = &args.map {
        if let Err(e) = from_map(client, file, &mut vars, Some(&mut leases)).await {
            leases.revoke_all(client).await;
            return Err(e);
        }
    }
    let renewing = leases.keep_renewing(client);
    let current = std::sync::Arc::new(std::sync::Mutex::new(vars));
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let watching = wake.map(|wake| {
        watch(
            client.clone(),
            args.from.clone(),
            args.map.clone(),
            current.clone(),
            changed.clone(),
            wake,
        )
    });
    let status = loop {
        let vars = current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let masker = (!args.no_masking).then(|| Masker::new(vars.values().map(|v| v.as_str())));
        match spawn(&args.command, &vars, masker, &changed, on_change).await {
            Ok(Ended::Changed) => eprintln!("tresor run: a secret changed: the program was restarted"),
            Ok(Ended::Exited(status)) => break Ok(status),
            Err(e) => break Err(e),
        }
    };
    drop(watching);
    drop(renewing);
    leases.revoke_all(client).await;
    Ok(ExitCode::from(exit_code(status?)))
}

/// What a changed secret does to the running program.
#[derive(Clone, Copy)]
enum OnChange {
    /// Stop it (SIGTERM) and start it again with the new values.
    Restart,
    /// Send it this signal; it keeps running (with its old environment).
    #[cfg_attr(not(unix), allow(dead_code))]
    Signal(i32),
}

/// The number of the signal `name` (`HUP`, `SIGHUP`, any case).
#[cfg(unix)]
fn signal_number(name: &str) -> Result<i32, CliError> {
    let upper = name.to_ascii_uppercase();
    match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "HUP" => Ok(libc::SIGHUP),
        "INT" => Ok(libc::SIGINT),
        "QUIT" => Ok(libc::SIGQUIT),
        "TERM" => Ok(libc::SIGTERM),
        "USR1" => Ok(libc::SIGUSR1),
        "USR2" => Ok(libc::SIGUSR2),
        _ => Err(CliError(format!(
            "--signal {name}: not a signal tresor run sends; use HUP, USR1, USR2, INT, QUIT or TERM"
        ))),
    }
}

#[cfg(not(unix))]
fn signal_number(name: &str) -> Result<i32, CliError> {
    Err(CliError(format!(
        "--signal {name}: signals exist on Unix only; without --signal the program is restarted"
    )))
}

/// How a run of the child ended.
enum Ended {
    /// It exited (or a signal ended it).
    Exited(std::process::ExitStatus),
    /// A secret changed: it was stopped to be started again.
    Changed,
}

/// At each wake-up (a change event, or the interval), fetch the values
/// again (dynamic credentials keep theirs); when they differ, store them
/// and say so.
fn watch(
    client: Client,
    from: Vec<String>,
    map: Option<PathBuf>,
    current: std::sync::Arc<std::sync::Mutex<Variables>>,
    changed: std::sync::Arc<tokio::sync::Notify>,
    mut wake: Wake,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            wake.next().await;
            let mut fresh = Variables::new();
            let mut fetched = Ok(());
            for prefix in &from {
                fetched = fetched.and(from_prefix(&client, prefix, &mut fresh).await);
            }
            if let (Some(file), Ok(())) = (&map, &fetched) {
                fetched = from_map(&client, file, &mut fresh, None).await;
            }
            if let Err(e) = fetched {
                eprintln!("tresor run: looking for changed secrets failed: {e}; the program keeps running");
                continue;
            }
            let mut now = current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Dynamic credentials are not fetched again: they keep their lease.
            for (k, v) in now.iter() {
                fresh.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if *now != fresh {
                *now = fresh;
                changed.notify_one();
            }
        }
    }))
}

/// The dynamic credentials issued for the child.
#[derive(Default)]
struct Leases {
    /// Lease id, renewable, TTL in seconds.
    held: Vec<(String, bool, u64)>,
}

impl Leases {
    /// Issue a credential from `mount/role`; its fields.
    async fn issue(
        &mut self,
        client: &Client,
        mount: &str,
        role: &str,
    ) -> Result<serde_json::Map<String, Value>, CliError> {
        let url = format!("/v1/{}/creds/{}", encode_path(mount), encode_path(role));
        let (status, body) = client.send("POST", &url, None).await?;
        if !status.is_success() {
            return Err(api_error(status, &body).into());
        }
        let mut answer: Value =
            serde_json::from_slice(&body).map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
        let id = answer["lease_id"].as_str().unwrap_or_default().to_string();
        let renewable = answer["renewable"].as_bool().unwrap_or(false);
        let ttl = answer["lease_duration"].as_u64().unwrap_or(0);
        self.held.push((id, renewable, ttl));
        match answer["data"].take() {
            Value::Object(m) => Ok(m),
            _ => Err(CliError(format!("{mount}/creds/{role} answered no credential fields"))),
        }
    }

    /// Renew the renewable leases at half their TTL while the child runs;
    /// the task stops when the handle is dropped.
    fn keep_renewing(&self, client: &Client) -> Option<AbortOnDrop> {
        let renewable: Vec<(String, u64)> = self
            .held
            .iter()
            .filter(|(_, r, ttl)| *r && *ttl > 0)
            .map(|(id, _, ttl)| (id.clone(), *ttl))
            .collect();
        let every = renewable.iter().map(|(_, ttl)| *ttl).min()?;
        let client = client.clone();
        Some(AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs((every / 2).max(1))).await;
                for (id, _) in &renewable {
                    let body = serde_json::json!({ "lease_id": id });
                    if let Err(e) = client.json("PUT", "/v1/sys/leases/renew", Some(&body)).await {
                        eprintln!("tresor run: renewing lease {id} failed: {e}");
                    }
                }
            }
        })))
    }

    /// Revoke every lease (the child has exited, or could not start).
    async fn revoke_all(&self, client: &Client) {
        for (id, _, _) in &self.held {
            let body = serde_json::json!({ "lease_id": id });
            if let Err(e) = client.json("PUT", "/v1/sys/leases/revoke", Some(&body)).await {
                eprintln!("tresor run: revoking lease {id} failed: {e}; revoke it with `tresor lease revoke {id}`");
            }
        }
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The variables of every secret directly under `prefix`.
async fn from_prefix(client: &Client, prefix: &str, vars: &mut Variables) -> Result<(), CliError> {
    let prefix = prefix.trim_matches('/');
    let (mount, rest) = prefix.split_once('/').unwrap_or((prefix, ""));
    let list = format!("/v1/{}/metadata/{}?list=true", encode_path(mount), encode_path(rest));
    let (status, body) = client.send("GET", &list, None).await?;
    if status == hyper::StatusCode::NOT_FOUND {
        return Err(CliError(format!("no secrets under `{prefix}`")));
    }
    if !status.is_success() {
        return Err(api_error(status, &body).into());
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
    let keys: Vec<String> = answer["data"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|k| !k.ends_with('/'))
        .map(str::to_string)
        .collect();
    for key in keys {
        let path = if rest.is_empty() {
            key.clone()
        } else {
            format!("{rest}/{key}")
        };
        let data = client.get(&format!("{mount}/{path}")).await?;
        add_fields(vars, &key, &data, &format!("{mount}/{path}"))?;
    }
    Ok(())
}

/// The variables a `--map` file names.
async fn from_map(
    client: &Client,
    file: &std::path::Path,
    vars: &mut Variables,
    mut leases: Option<&mut Leases>,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError(format!("cannot read the map file {}: {e}", file.display())))?;
    // One lease per role, whatever number of fields the map takes from it.
    let mut issued: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| CliError(format!("{} line {}: {why}", file.display(), n + 1));
        let (name, target) = line
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=<mount>/<path>[#field]"))?;
        let name = name.trim();
        check_name(name).map_err(|e| bad(&e))?;
        let target = target.trim();
        let (dynamic, target) = match target.strip_prefix("dynamic:") {
            Some(t) => (true, t),
            None => (false, target),
        };
        let (path, field) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target, None),
        };
        let (mount, rest) = path
            .split_once('/')
            .filter(|(m, r)| !m.is_empty() && !r.is_empty())
            .ok_or_else(|| bad("the path must be <mount>/<path>, e.g. secret/apps/db"))?;
        if dynamic && leases.is_none() {
            // A new look for changes: the credential keeps its lease.
            continue;
        }
        let data = if dynamic {
            let role = rest
                .strip_prefix("creds/")
                .ok_or_else(|| bad("a dynamic credential is dynamic:<mount>/creds/<role>#field"))?;
            match issued.get(path) {
                Some(d) => d.clone(),
                None => {
                    let d = leases
                        .as_deref_mut()
                        .expect("checked above")
                        .issue(client, mount, role)
                        .await?;
                    issued.insert(path.to_string(), d.clone());
                    d
                }
            }
        } else {
            client.get(path).await?
        };
        let value = match field {
            Some(f) => match data.get(f) {
                Some(v) => text_of(v),
                None => return Err(bad(&format!("`{path}` has no field `{f}`"))),
            },
            None => single_value(&data)
                .ok_or_else(|| bad(&format!("`{path}` has several fields: name one, as `{path}#field`")))?,
        };
        vars.insert(name.to_string(), value);
    }
    Ok(())
}

/// One variable for a one-field secret, one per field otherwise.
fn add_fields(
    vars: &mut Variables,
    name: &str,
    data: &serde_json::Map<String, Value>,
    path: &str,
) -> Result<(), CliError> {
    let invalid = |n: &str, e: String| CliError(format!("{path}: variable `{n}`: {e}"));
    if let Some(value) = single_value(data) {
        check_name(name).map_err(|e| invalid(name, e))?;
        vars.insert(name.to_string(), value);
        return Ok(());
    }
    for (field, v) in data {
        let var = format!(
            "{name}_{}",
            field
                .to_ascii_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        check_name(&var).map_err(|e| invalid(&var, e))?;
        vars.insert(var, text_of(v));
    }
    Ok(())
}

/// The value of a secret with exactly one field.
fn single_value(data: &serde_json::Map<String, Value>) -> Option<Zeroizing<String>> {
    match data.len() {
        1 => data.values().next().map(text_of),
        _ => None,
    }
}

fn text_of(v: &Value) -> Zeroizing<String> {
    Zeroizing::new(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A portable environment variable name: a letter or `_`, then letters,
/// digits or `_`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("not a usable environment variable name (letters, digits and `_`, not starting with a digit)".into())
    }
}

/// Run `command` with `vars` added to this environment; pass signals on;
/// mask its output when a masker is given.
async fn spawn(
    command: &[String],
    vars: &Variables,
    masker: Option<Masker>,
    changed: &tokio::sync::Notify,
    on_change: OnChange,
) -> Result<Ended, CliError> {
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    for (k, v) in vars {
        if std::env::var_os(k).is_some() {
            eprintln!("tresor run: `{k}` from Tresor replaces the variable of the same name");
        }
        cmd.env(k, v.as_str());
    }
    cmd.stdin(Stdio::inherit());
    let masked = masker.is_some();
    if masked {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError(format!("cannot start `{}`: {e}", command[0])))?;
    let mut pumps = Vec::new();
    if let Some(masker) = masker {
        let values: Vec<Zeroizing<String>> = vars.values().cloned().collect();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        pumps.push(tokio::spawn(pump(stdout, tokio::io::stdout(), masker)));
        pumps.push(tokio::spawn(pump(
            stderr,
            tokio::io::stderr(),
            Masker::new(values.iter().map(|v| v.as_str())),
        )));
    }
    let ended = forward_signals_until_exit(&mut child, changed, on_change).await?;
    for p in pumps {
        let _ = p.await;
    }
    Ok(ended)
}

/// Copy `from` to `to` through `masker`.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, mut masker: Masker) {
    let mut buf = Zeroizing::new(vec![0u8; 8192]);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = masker.push(&buf[..n]);
        if to.write_all(&out).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
    let _ = to.write_all(&masker.finish()).await;
    let _ = to.flush().await;
}

/// Wait for the child, passing on the signals a terminal or a supervisor sends.
#[cfg(unix)]
async fn forward_signals_until_exit(
    child: &mut tokio::process::Child,
    changed: &tokio::sync::Notify,
    on_change: OnChange,
) -> Result<Ended, CliError> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let watch = |k: SignalKind| -> Result<(Signal, i32), CliError> {
        signal(k)
            .map(|s| (s, k.as_raw_value()))
            .map_err(|e| CliError(format!("cannot watch signals: {e}")))
    };
    let (mut int, n_int) = watch(SignalKind::interrupt())?;
    let (mut term, n_term) = watch(SignalKind::terminate())?;
    let (mut hup, n_hup) = watch(SignalKind::hangup())?;
    let (mut quit, n_quit) = watch(SignalKind::quit())?;
    let (mut usr1, n_usr1) = watch(SignalKind::user_defined1())?;
    let (mut usr2, n_usr2) = watch(SignalKind::user_defined2())?;
    let pid = child.id();
    loop {
        let signo = tokio::select! {
            status = child.wait() => {
                return status
                    .map(Ended::Exited)
                    .map_err(|e| CliError(format!("waiting for the program: {e}")));
            }
            _ = changed.notified() => match on_change {
                OnChange::Signal(signo) => {
                    eprintln!("tresor run: a secret changed: the program was sent signal {signo}");
                    signo
                }
                OnChange::Restart => {
                    if let Some(pid) = pid {
                        // SAFETY: kill(2) with the child's pid and SIGTERM.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    }
                    child.wait().await.map_err(|e| CliError(format!("waiting for the program: {e}")))?;
                    return Ok(Ended::Changed);
                }
            },
            _ = int.recv() => n_int,
            _ = term.recv() => n_term,
            _ = hup.recv() => n_hup,
            _ = quit.recv() => n_quit,
            _ = usr1.recv() => n_usr1,
            _ = usr2.recv() => n_usr2,
        };
        if let Some(pid) = pid {
            // SAFETY: kill(2) with the child's pid and a signal number.
            unsafe { libc::kill(pid as libc::pid_t, signo) };
        }
    }
}

#[cfg(not(unix))]
async fn forward_signals_until_exit(
    child: &mut tokio::process::Child,
    changed: &tokio::sync::Notify,
    _on_change: OnChange,
) -> Result<Ended, CliError> {
    let wait_err = |e: std::io::Error| CliError(format!("waiting for the program: {e}"));
    tokio::select! {
        status = child.wait() => status.map(Ended::Exited).map_err(wait_err),
        _ = changed.notified() => {
            let _ = child.kill().await;
            Ok(Ended::Changed)
        }
    }
}

/// The child's exit code; 128 + N when signal N ended it (as shells do).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(255);
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_usable_variables() {
        assert!(check_name("DB_PASSWORD").is_ok());
        assert!(check_name("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "Ä"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_field_is_one_variable_several_are_one_each() {
        let mut vars = Variables::new();
        let one = serde_json::json!({"value": "s3cret"});
        add_fields(&mut vars, "API_KEY", one.as_object().unwrap(), "secret/a").unwrap();
        let two = serde_json::json!({"user": "app", "pass-word": "pw"});
        add_fields(&mut vars, "DB", two.as_object().unwrap(), "secret/b").unwrap();
        let got: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        assert_eq!(
            got,
            [
                ("API_KEY".to_string(), "s3cret".to_string()),
                ("DB_PASS_WORD".to_string(), "pw".to_string()),
                ("DB_USER".to_string(), "app".to_string()),
            ]
        );
        let err = add_fields(&mut vars, "bad-name", one.as_object().unwrap(), "secret/c").unwrap_err();
        assert!(err.0.contains("`bad-name`"), "{}", err.0);
    }
}
