//! `tresor render TEMPLATE -o FILE`: write a config file that needs secrets
//! from a template that names them.
//!
//! ```text
//! # app.conf.tmpl (MiniJinja, Jinja2's syntax)
//! [database]
//! user = {{ secret("secret/apps/db").user }}
//! password = {{ secret("secret/apps/db").password }}
//! ```
//!
//! `secret(path)` is the latest version's fields at `<mount>/<path>`. A
//! secret or a field that does not exist is an error (nothing is written),
//! never an empty string. The file is written atomically with mode 0600.
//! `--watch` renders again when the server reports a change (and every
//! `--interval` in any case) and writes (then runs `--exec`, through
//! `sh -c`) only when the result changed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use zeroize::Zeroizing;

use super::wake::Wake;
use super::CliError;
use crate::client::Client;

/// `tresor render` options.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The template.
    template: PathBuf,
    /// The file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Keep rendering: write again when a secret it uses changed.
    #[arg(long)]
    watch: bool,
    /// With --watch: how often to look even without a change event, e.g. `30s`.
    #[arg(long, default_value = "30s", requires = "watch")]
    interval: String,
    /// With --watch: run this (`sh -c`) after each write, e.g. a reload.
    #[arg(long, requires = "watch")]
    exec: Option<String>,
}

/// The fields of the secrets a template uses, by path.
type Fetched = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// Render once, or keep rendering with `--watch`.
pub async fn run(client: &Client, args: RenderArgs) -> Result<(), CliError> {
    let source = std::fs::read_to_string(&args.template)
        .map_err(|e| CliError(format!("cannot read the template {}: {e}", args.template.display())))?;
    let every =
        crate::config::parse_duration_seconds(&args.interval).map_err(|e| CliError(format!("--interval: {e}")))?;
    let mut wake = match args.watch {
        true => Some(Wake::start(client, Duration::from_secs(every.max(1))).await),
        false => None,
    };
    let mut last: Option<Zeroizing<String>> = None;
    loop {
        let rendered = render_once(client, &source, &args.template).await?;
        if last.as_deref().map(String::as_str) != Some(rendered.as_str()) {
            write_private(&args.output, &rendered)?;
            eprintln!("tresor render: wrote {}", args.output.display());
            if let Some(cmd) = &args.exec {
                run_hook(cmd).await;
            }
            last = Some(rendered);
        }
        match wake.as_mut() {
            Some(wake) => wake.next().await,
            None => return Ok(()),
        }
    }
}

/// Fetch what the template names, then render it strictly.
async fn render_once(client: &Client, source: &str, name: &Path) -> Result<Zeroizing<String>, CliError> {
    let wanted = paths_used(source).map_err(|e| template_error(name, &e))?;
    let mut fetched = Fetched::new();
    for path in wanted {
        let data = client.get(&path).await?;
        fetched.insert(path, data);
    }
    let fetched = Arc::new(fetched);
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A config file ends as its template does.
    env.set_keep_trailing_newline(true);
    env.add_function("secret", move |path: String| -> Result<Value, Error> {
        match fetched.get(&path) {
            Some(data) => Ok(Value::from_serialize(data)),
            None => Err(Error::new(ErrorKind::InvalidOperation, format!("no secret `{path}`"))),
        }
    });
    env.render_str(source, ())
        .map(Zeroizing::new)
        .map_err(|e| template_error(name, &e))
}

/// The paths `secret(...)` is called with, found by rendering once leniently.
fn paths_used(source: &str) -> Result<Vec<String>, Error> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.add_function("secret", move |path: String| -> Value {
        let mut seen = record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains(&path) {
            seen.push(path);
        }
        Value::UNDEFINED
    });
    env.render_str(source, ())?;
    let out = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(out)
}

/// A template error, with its line, never a value.
fn template_error(name: &Path, e: &Error) -> CliError {
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    CliError(format!(
        "{}{line}: {}{detail}; nothing was written",
        name.display(),
        e.kind()
    ))
}

/// Write `text` to `file` through a synced temporary file (mode 0600) renamed over it.
fn write_private(file: &Path, text: &str) -> Result<(), CliError> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tresor-render"));
    let written = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::files::owner_only().write(true).create_new(true).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        crate::files::sync_dir(dir)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError(format!("writing {}: {e}", file.display()))
    })
}

/// Run the `--exec` command; say when it fails.
async fn run_hook(cmd: &str) {
    match tokio::process::Command::new("sh").args(["-c", cmd]).status().await {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("tresor render: `{cmd}` exited with {s}"),
        Err(e) => eprintln!("tresor render: cannot run `{cmd}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_a_template_uses_are_found_once_each() {
        let t = r#"a={{ secret("secret/a").x }} b={{ secret("secret/b")["y"] }} {% if false %}{{ secret("secret/c").z }}{% endif %} again={{ secret("secret/a").w }}"#;
        assert_eq!(paths_used(t).unwrap(), ["secret/a", "secret/b"]);
        assert!(paths_used("{{ unclosed").is_err());
    }
}
