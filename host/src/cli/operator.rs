//! `tresor operator ...`: the hosts of a deployment and the master key, on
//! a running server (TRESOR_ADDR, TRESOR_TOKEN; Cedar `admin` on
//! `Mount::"sys"`).

use clap::Subcommand;
use serde_json::Value;

use super::CliError;
use crate::client::Client;

/// Look at the hosts sharing a state store; rotate the master key.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add a key generation: every new value is sealed under it at once,
    /// and the stored ones are resealed in the background while the server
    /// keeps serving. The older generations are retired once nothing uses
    /// them. The key file itself does not change.
    RotateMasterKey {
        /// Wait until the stored values are resealed, showing progress.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (with --wait).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Show the key generations and how far the reseal after the latest
    /// rotation is.
    KeyStatus {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the live hosts sharing the server's state store, and which one
    /// leads each singleton job (the lease sweeper, ...).
    Members {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run one operator command.
pub async fn run(client: &Client, command: OperatorCommand) -> Result<(), CliError> {
    match command {
        OperatorCommand::RotateMasterKey { wait, timeout } => {
            client.json("POST", "/v1/sys/rotate", None).await?;
            let status = key_status(client).await?;
            println!(
                "Rotated the master key: new values are sealed under key generation {}.",
                status["term"]
            );
            if wait {
                wait_for_reseal(client, std::time::Duration::from_secs(timeout)).await?;
            } else {
                println!("Stored values are being resealed; follow with `tresor operator key-status`.");
            }
            Ok(())
        }
        OperatorCommand::KeyStatus { json } => {
            let status = key_status(client).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            } else {
                print!("{}", key_table(&status));
            }
            Ok(())
        }
        OperatorCommand::Members { json } => {
            let answer = client.json("GET", "/v1/sys/members", None).await?;
            let data = &answer["data"];
            if json {
                println!("{}", serde_json::to_string_pretty(data).unwrap_or_default());
                return Ok(());
            }
            print!("{}", table(data));
            Ok(())
        }
    }
}

async fn key_status(client: &Client) -> Result<Value, CliError> {
    Ok(client.json("GET", "/v1/sys/key-status", None).await?["data"].take())
}

/// Poll the key status until the reseal has retired the older generations
/// (or says why it cannot), with a spinner counting resealed values.
async fn wait_for_reseal(client: &Client, timeout: std::time::Duration) -> Result<(), CliError> {
    let spinner = indicatif::ProgressBar::new_spinner();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let status = key_status(client).await?;
        let reseal = &status["reseal"];
        let (secrets, resealed) = counts(reseal);
        spinner.set_message(format!(
            "resealing: {secrets} secrets looked at, {resealed} values moved"
        ));
        spinner.tick();
        if !reseal["finished_ms"].is_null() {
            spinner.finish_and_clear();
            println!(
                "Resealed {resealed} values; retired key generations {}.",
                reseal["retired"]
            );
            return Ok(());
        }
        let kept = kept_because(reseal);
        if !kept.is_empty() {
            spinner.finish_and_clear();
            return Err(CliError(format!(
                "the reseal ended but older key generations are kept: {}",
                kept.join("; ")
            )));
        }
        if std::time::Instant::now() > deadline {
            spinner.finish_and_clear();
            return Err(CliError(
                "the reseal is still under way; follow it with `tresor operator key-status`".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Secrets looked at and values moved, over every host and mount.
fn counts(reseal: &Value) -> (u64, u64) {
    let mounts = reseal["hosts"]
        .as_object()
        .into_iter()
        .flat_map(|hosts| hosts.values())
        .flat_map(|h| h["mounts"].as_object().into_iter().flat_map(|m| m.values()));
    mounts.fold((0, 0), |(s, r), m| {
        (
            s + m["secrets"].as_u64().unwrap_or(0),
            r + m["resealed"].as_u64().unwrap_or(0),
        )
    })
}

/// Every host's reasons to keep the older generations.
fn kept_because(reseal: &Value) -> Vec<String> {
    reseal["hosts"]
        .as_object()
        .into_iter()
        .flat_map(|hosts| hosts.values())
        .flat_map(|h| h["kept_because"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The generations, one per line, then the reseal.
fn key_table(status: &Value) -> String {
    let mut out = format!(
        "current generation: {}\n\n{:<12} {:<25} RETIRED\n",
        status["term"], "GENERATION", "CREATED"
    );
    for g in status["generations"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<12} {:<25} {}\n",
            g["generation"],
            g["created"].as_str().unwrap_or("(the master key)"),
            g["retired"].as_str().unwrap_or("-"),
        ));
    }
    let reseal = &status["reseal"];
    if !reseal.is_null() {
        let (secrets, resealed) = counts(reseal);
        let state = if reseal["finished_ms"].is_null() {
            "under way"
        } else {
            "done"
        };
        out.push_str(&format!(
            "\nreseal to generation {}: {state}, {secrets} secrets looked at, {resealed} values moved\n",
            reseal["target"]
        ));
        for why in kept_because(reseal) {
            out.push_str(&format!("  older generations kept: {why}\n"));
        }
    }
    out
}

/// One line per host: id (`*` marks the one that answered), name, start,
/// last report, jobs.
fn table(data: &Value) -> String {
    let this = data["this_host"].as_str().unwrap_or_default();
    let mut out = format!(
        "{:<18} {:<32} {:<25} {:<25} JOBS\n",
        "ID", "NAME", "STARTED", "LAST SEEN"
    );
    for m in data["members"].as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or_default();
        let jobs: Vec<&str> = m["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "{:<18} {:<32} {:<25} {:<25} {}\n",
            if id == this { format!("{id}*") } else { id.to_string() },
            m["name"].as_str().unwrap_or_default(),
            m["started"].as_str().unwrap_or_default(),
            m["last_seen"].as_str().unwrap_or_default(),
            if jobs.is_empty() {
                "-".to_string()
            } else {
                jobs.join(",")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_answering_host_and_its_jobs() {
        let data = serde_json::json!({
            "this_host": "b",
            "members": [
                {"id": "a", "name": "one (pid 1)", "started": "s", "last_seen": "l", "jobs": ["lease-sweeper"]},
                {"id": "b", "name": "two (pid 2)", "started": "s", "last_seen": "l", "jobs": []},
            ],
        });
        let lines: Vec<String> = table(&data).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("a ") && lines[1].ends_with("lease-sweeper"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("b* ") && lines[2].ends_with(" -"), "{}", lines[2]);
    }
}
