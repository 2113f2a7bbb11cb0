//! `tresor operator ...`: the hosts of a deployment, on a running server
//! (TRESOR_ADDR, TRESOR_TOKEN; Cedar `admin` on `Mount::"sys"`).

use clap::Subcommand;
use serde_json::Value;

use super::CliError;
use crate::client::Client;

/// Look at the hosts sharing a state store.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
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
