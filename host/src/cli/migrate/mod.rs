//! `tresor migrate [FILE]`: move the secrets of a plaintext `.env` file into
//! a mount, safely.
//!
//! ```sh
//! tresor migrate                                   # dry run: what would move, and why
//! tresor migrate --apply --to secret/apps/billing --backup
//! ```
//!
//! A dry run (the default) shows each entry's decision, reason, target path
//! and length, and writes nothing. `--apply` writes each secret through the
//! server's access path (so policy and audit apply, and any mount works),
//! as `{"value": ...}` with the metadata `source=.env` and a `type` guessed
//! from the name, then reads each back and compares digests, and only then
//! replaces the file (atomically) with one where each migrated line reads
//! `# NAME - MIGRATED TO TRESOR (<path>)`; every other byte is kept. A secret
//! that already holds the same value is not written again, so a rerun after
//! an interruption finishes the job without new versions.
//!
//! Exit codes: 0 done (or a dry run), 1 a value did not verify (the file is
//! left as it was), 2 an error (a line that cannot be read, the server).

mod classify;
mod dotenv;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ring::digest;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::cli::CliError;
use crate::client::{api_error, encode_path, Client};

/// `tresor migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The file.
    #[arg(default_value = ".env")]
    file: PathBuf,
    /// Write the secrets and rewrite the file (without it: a dry run).
    #[arg(long, requires = "to")]
    apply: bool,
    /// Where the secrets go: `<mount>/<prefix>`; each is `<prefix>/<NAME>`.
    #[arg(long, value_name = "MOUNT/PREFIX")]
    to: Option<String>,
    /// Migrate this entry whatever its name and value say (repeatable).
    #[arg(long, value_name = "NAME")]
    include: Vec<String>,
    /// Keep this entry in the file whatever its name and value say (repeatable).
    #[arg(long, value_name = "NAME")]
    exclude: Vec<String>,
    /// First copy the file to `.tresor-backups/<file>.<time>` (mode 0600).
    #[arg(long)]
    backup: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// After a verified migration, remove the file (asks for a typed `yes`).
    #[arg(long, requires = "apply")]
    delete: bool,
    /// With --delete: do not ask.
    #[arg(long, requires = "delete")]
    yes: bool,
}

/// One entry of the file and what happens to it.
struct Row {
    name: String,
    line: usize,
    secret: bool,
    reason: String,
    kind: &'static str,
    target: Option<String>,
    length: usize,
    /// `written`, `unchanged`, `kept`, or a dry run's `would migrate`.
    status: &'static str,
}

/// Run the migration; see the module docs.
pub async fn run(client: Client, args: MigrateArgs) -> Result<ExitCode, CliError> {
    let raw = std::fs::read(&args.file).map_err(|e| CliError(format!("cannot read {}: {e}", args.file.display())))?;
    let text = Zeroizing::new(
        String::from_utf8(raw).map_err(|_| CliError(format!("{} is not UTF-8 text", args.file.display())))?,
    );
    let statements =
        dotenv::parse(&text).map_err(|e| CliError(format!("{}: {e}; nothing was migrated", args.file.display())))?;
    let prefix = args.to.as_deref().map(|t| t.trim_matches('/').to_string());
    let mut rows: Vec<Row> = statements
        .iter()
        .map(|s| {
            let d = classify::classify(&s.name, &s.value, &args.include, &args.exclude);
            Row {
                name: s.name.clone(),
                line: s.line,
                secret: d.secret,
                reason: d.reason,
                kind: d.kind,
                target: prefix.as_ref().filter(|_| d.secret).map(|p| format!("{p}/{}", s.name)),
                length: s.value.chars().count(),
                status: if d.secret { "would migrate" } else { "kept" },
            }
        })
        .collect();

    let mut backup = None;
    let mut verified = 0;
    if args.apply {
        if args.backup {
            backup = Some(make_backup(&args.file, text.as_bytes())?);
        }
        let secrets = rows.iter().filter(|r| r.secret).count() as u64;
        let progress = indicatif::ProgressBar::new(secrets);
        progress.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for (row, st) in rows.iter_mut().zip(&statements).filter(|(r, _)| r.secret) {
            let target = row.target.clone().expect("--apply requires --to");
            progress.set_message(row.name.clone());
            row.status = store(&client, &target, &st.value, row.kind).await?;
            progress.inc(1);
        }
        progress.finish_and_clear();
        // Read every value back before touching the file.
        for (row, st) in rows.iter().zip(&statements).filter(|(r, _)| r.secret) {
            let target = row.target.as_deref().expect("--apply requires --to");
            match read_value(&client, target).await? {
                Some(v) if digest_of(&v) == digest_of(&st.value) => verified += 1,
                _ => {
                    report(&args, &rows, backup.as_deref(), verified);
                    eprintln!(
                        "error: {target} does not hold the value of {} (line {}); {} was not changed",
                        row.name,
                        row.line,
                        args.file.display()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
        let migrated: Vec<(&dotenv::Statement, &str)> = rows
            .iter()
            .zip(&statements)
            .filter(|(r, _)| r.secret)
            .map(|(r, s)| (s, r.target.as_deref().unwrap_or_default()))
            .collect();
        if !migrated.is_empty() {
            replace_file(&args.file, &rewritten(&text, &migrated))?;
        }
    }
    report(&args, &rows, backup.as_deref(), verified);
    if args.delete {
        delete_file(&args.file, rows.iter().filter(|r| !r.secret).count(), args.yes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove the migrated file, after a typed `yes` unless `yes` already.
fn delete_file(file: &Path, kept: usize, yes: bool) -> Result<(), CliError> {
    if !yes {
        eprint!(
            "delete {}{}? type yes: ",
            file.display(),
            if kept > 0 {
                format!(" and the {kept} entries kept in it")
            } else {
                String::new()
            }
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            eprintln!("kept {}", file.display());
            return Ok(());
        }
    }
    std::fs::remove_file(file).map_err(|e| CliError(format!("deleting {}: {e}", file.display())))?;
    eprintln!("deleted {}", file.display());
    Ok(())
}

/// Write `value` at `target` unless it already holds it, then its metadata
/// unless it already has it (a run stopped between the two is finished).
async fn store(client: &Client, target: &str, value: &str, kind: &str) -> Result<&'static str, CliError> {
    let (mount, path) = split(target)?;
    let same_value = read_value(client, target).await?.is_some_and(|v| *v == value);
    if !same_value {
        let body = Zeroizing::new(json!({ "data": { "value": value } }).to_string().into_bytes());
        let url = format!("/v1/{}/data/{}", encode_path(mount), encode_path(path));
        let (status, answer) = client.send("POST", &url, Some(body)).await?;
        if !status.is_success() {
            return Err(api_error(status, &answer).into());
        }
    }
    let wanted = json!({ "source": ".env", "type": kind });
    let url = format!("/v1/{}/metadata/{}", encode_path(mount), encode_path(path));
    let (status, answer) = client.send("GET", &url, None).await?;
    if !status.is_success() {
        return Err(api_error(status, &answer).into());
    }
    let current: Value = serde_json::from_slice(&answer).unwrap_or_default();
    let has = |k: &str| current["data"]["custom_metadata"][k] == wanted[k];
    if has("source") && has("type") {
        return Ok(if same_value { "unchanged" } else { "written" });
    }
    let meta = json!({ "custom_metadata": wanted });
    let (status, answer) = client
        .send("PATCH", &url, Some(Zeroizing::new(meta.to_string().into_bytes())))
        .await?;
    if !status.is_success() {
        return Err(api_error(status, &answer).into());
    }
    Ok("written")
}

/// The `value` field of the latest version at `target`, if there is one.
async fn read_value(client: &Client, target: &str) -> Result<Option<Zeroizing<String>>, CliError> {
    let (mount, path) = split(target)?;
    let url = format!("/v1/{}/data/{}", encode_path(mount), encode_path(path));
    let (status, body) = client.send("GET", &url, None).await?;
    if status == hyper::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(api_error(status, &body).into());
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| CliError(format!("the server answered invalid JSON: {e}")))?;
    Ok(answer["data"]["data"]["value"]
        .as_str()
        .map(|s| Zeroizing::new(s.to_string())))
}

fn split(target: &str) -> Result<(&str, &str), CliError> {
    target
        .split_once('/')
        .filter(|(m, p)| !m.is_empty() && !p.is_empty())
        .ok_or_else(|| CliError(format!("`{target}` is not <mount>/<path>: give --to <mount>/<prefix>")))
}

fn digest_of(value: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, value.as_bytes()).as_ref().to_vec()
}

/// `text` with each migrated statement replaced by a comment naming where
/// it went; every other byte as it was.
fn rewritten(text: &str, migrated: &[(&dotenv::Statement, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut at = 0;
    for (st, target) in migrated {
        out.push_str(&text[at..st.span.start]);
        out.push_str(&format!("# {} - MIGRATED TO TRESOR ({target}){}", st.name, st.line_end));
        at = st.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Replace `file` with `text`: a synced temporary file with the same
/// permissions, renamed over it. Interrupted anywhere, the file is the old
/// one or the new one.
fn replace_file(file: &Path, text: &str) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| CliError(format!("{what} {}: {e}", file.display()));
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tresor-migrate"));
    let perms = std::fs::metadata(file).map_err(|e| fail("reading", e))?.permissions();
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(perms)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        crate::files::sync_dir(dir)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("rewriting", e)
    })
}

/// Copy the file to `.tresor-backups/<name>.<time>` beside it (mode 0600),
/// warning when a git work tree there would not ignore the copy.
fn make_backup(file: &Path, bytes: &[u8]) -> Result<PathBuf, CliError> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".tresor-backups");
    crate::files::create_owner_only_dir(&dir).map_err(|e| CliError(format!("creating {}: {e}", dir.display())))?;
    let stamp: String = crate::audit::format_rfc3339_millis(std::time::SystemTime::now())
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!("{name}.{stamp}"));
    let mut f = crate::files::owner_only()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| CliError(format!("creating the backup {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError(format!("writing the backup {}: {e}", path.display())))?;
    let ignored = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["check-ignore", "-q"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status();
    if ignored.is_ok_and(|s| s.code() == Some(1)) {
        eprintln!(
            "warning: the backup {} holds the plaintext file inside a git work tree that does not ignore it: add `.tresor-backups/` to .gitignore",
            path.display()
        );
    }
    Ok(path)
}

/// The table (or JSON) and the summary line.
fn report(args: &MigrateArgs, rows: &[Row], backup: Option<&Path>, verified: usize) {
    let secrets = rows.iter().filter(|r| r.secret).count();
    let migrated = rows
        .iter()
        .filter(|r| matches!(r.status, "written" | "unchanged"))
        .count();
    let summary = if args.apply {
        let mut s = format!("migrated {migrated}/{secrets}, verified {verified}/{secrets}");
        if let Some(b) = backup {
            s.push_str(&format!(", backup {}", b.display()));
        }
        s
    } else {
        format!("dry run: {secrets} of {} entries would be migrated; nothing was written (add --apply --to <mount>/<prefix>)", rows.len())
    };
    if args.json {
        let entries: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "line": r.line, "secret": r.secret, "reason": r.reason,
                    "type": r.kind, "target": r.target, "length": r.length, "status": r.status,
                })
            })
            .collect();
        let out = json!({ "entries": entries, "migrated": migrated, "verified": verified, "secrets": secrets,
            "backup": backup.map(|b| b.display().to_string()), "summary": summary });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    println!(
        "{:<28} {:<10} {:<34} {:<36} VALUE",
        "NAME", "DECISION", "REASON", "TARGET"
    );
    for r in rows {
        println!(
            "{:<28} {:<10} {:<34} {:<36} ({} chars, {})",
            r.name,
            if r.secret { "migrate" } else { "keep" },
            r.reason,
            r.target.as_deref().unwrap_or("-"),
            r.length,
            r.status
        );
    }
    println!("{summary}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rewritten_file_keeps_every_other_byte() {
        let text = "\u{feff}# app\r\nLOG_LEVEL=INFO\r\nexport DB_PASSWORD='p w'  # db\r\nAPI_TOKEN=\"a\nb\"\nTAIL=1";
        let st = dotenv::parse(text).unwrap();
        let migrated = vec![(&st[1], "secret/app/DB_PASSWORD"), (&st[2], "secret/app/API_TOKEN")];
        assert_eq!(
            rewritten(text, &migrated).as_str(),
            "\u{feff}# app\r\nLOG_LEVEL=INFO\r\n# DB_PASSWORD - MIGRATED TO TRESOR (secret/app/DB_PASSWORD)\r\n\
             # API_TOKEN - MIGRATED TO TRESOR (secret/app/API_TOKEN)\nTAIL=1"
        );
    }
}
