//! `tresor plugin check FILE.wasm`: what a plugin author (or an operator
//! about to pin a plugin) wants to know before mounting it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::catalog::language_of;
use crate::runtime::compile::sha256_hex;

/// The contract version this host speaks.
const CONTRACT: &str = "tresor:plugin@0.1.0";

/// Arguments of `tresor plugin check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component to check.
    pub file: PathBuf,
    /// Configuration handed to the plugin's `configure` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    pub config: Vec<(String, String)>,
    /// Environment variables the scratch mount grants (repeatable).
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// Outbound HTTP `host:port` the scratch mount grants (repeatable).
    #[arg(long = "network", value_name = "HOST:PORT")]
    pub network: Vec<String>,
    /// Outbound TCP `host:port` the scratch mount grants (repeatable).
    #[arg(long = "socket", value_name = "HOST:PORT")]
    pub sockets: Vec<String>,
    /// Only inspect the file; do not start it or run the conformance suite.
    #[arg(long)]
    pub no_run: bool,
    /// Where compiled plugins are cached between checks (default: the
    /// user's cache directory, `tresor/compiled`).
    #[arg(long)]
    pub compile_cache: Option<PathBuf>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// What the file says of itself, before it runs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Inspection {
    /// `tresor:plugin/provider@0.1.0`-style exports of the contract.
    exports: Vec<String>,
    /// The interfaces it imports.
    imports: Vec<String>,
}

fn inspect(wasm: &[u8]) -> Result<Inspection, String> {
    let mut found = Inspection::default();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("not a WebAssembly component: {e}"))?;
        match payload {
            wasmparser::Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return Err("this is a core WebAssembly module, not a component: build it for wasm32-wasip2 (or run `wasm-tools component new`)".into());
                }
                depth += 1;
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                for e in exports.into_iter().flatten() {
                    found.exports.push(e.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentImportSection(imports) if depth == 1 => {
                for i in imports.into_iter().flatten() {
                    found.imports.push(i.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The grant a WASI import may need, if any.
fn grant_for(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        i if i.starts_with("wasi:filesystem/") => Some("directory"),
        i if i.starts_with("wasi:sockets/") => Some("sockets"),
        "wasi:http/outgoing-handler" => Some("network"),
        "wasi:cli/environment" => Some("env"),
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" => Some("clock"),
        _ => None,
    }
}

/// The world the exports implement, or why none.
fn world_of(exports: &[String]) -> Result<&'static str, String> {
    for (interface, world) in [
        ("tresor:plugin/provider", "provider"),
        ("tresor:plugin/generator", "generator"),
    ] {
        if let Some(e) = exports.iter().find(|e| e.split('@').next() == Some(interface)) {
            let version = e.split('@').nth(1).unwrap_or("");
            let wanted = CONTRACT.split('@').nth(1).unwrap_or("");
            if version != wanted {
                return Err(format!(
                    "it exports {e}, built against contract version {version:?}; this host speaks {CONTRACT}: rebuild it against this host's wit/plugin.wit"
                ));
            }
            return Ok(world);
        }
    }
    Err(format!(
        "it exports neither tresor:plugin/provider nor tresor:plugin/generator (exports: {}); build it against the world `provider-plugin` or `generator-plugin` of wit/plugin.wit",
        if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
    ))
}

/// Run `tresor plugin check`: 0 when everything passed, 1 when a check
/// failed, 2 when the file could not be checked.
pub fn run(args: CheckArgs) -> ExitCode {
    let wasm = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let sha = sha256_hex(&wasm);
    println!("plugin:       {}", args.file.display());
    println!("size:         {} bytes", wasm.len());
    println!("sha256:       {sha}");
    let inspection = match inspect(&wasm) {
        Ok(i) => i,
        Err(e) => {
            println!("contract:     FAILED: {e}");
            return ExitCode::from(1);
        }
    };
    let world = match world_of(&inspection.exports) {
        Ok(w) => w,
        Err(e) => {
            println!("contract:     FAILED: {e}");
            return ExitCode::from(1);
        }
    };
    println!("contract:     {CONTRACT}, world {world}-plugin");
    println!(
        "language:     {}",
        language_of(&wasm).unwrap_or_else(|| "unknown (no producers section)".into())
    );
    let mut grants: Vec<&str> = inspection.imports.iter().filter_map(|i| grant_for(i)).collect();
    grants.sort();
    grants.dedup();
    println!(
        "may ask for:  {} (its imports; a mount grants none of them unless it says so)",
        if grants.is_empty() {
            "nothing".to_string()
        } else {
            grants.join(", ")
        }
    );
    let name = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "pin it:       plugin_path = \"{}\"\n              sha256 = \"{sha}\"",
        args.file.display()
    );
    if args.no_run {
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_in_scratch_mount(&args, &sha, world, &name)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// Start the plugin in a scratch host (its own temporary state, a scratch
/// directory and the clock granted) and run the conformance suite on it.
async fn run_in_scratch_mount(args: &CheckArgs, sha: &str, world: &str, name: &str) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("creating a scratch directory: {e}"))?;
    let cache = args.compile_cache.clone().unwrap_or_else(default_compile_cache);
    let policies = scratch.path().join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    std::fs::write(
        policies.join("check.cedar"),
        "@id(\"plugin-check\")\npermit (principal == Tresor::Principal::\"plugin-check\", action, resource);\n",
    )
    .map_err(|e| e.to_string())?;
    let toml_list = |v: &[String]| v.iter().map(|s| toml_string(s)).collect::<Vec<_>>().join(", ");
    let config_table = args
        .config
        .iter()
        .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"
state_dir = {state}
compile_cache = {cache}
[policy]
dir = {policies}
reload_interval_ms = 0
[[mount]]
path = "check"
plugin_path = {file}
sha256 = "{sha}"
config = {{ {config_table} }}
grants = {{ directory = "data", clock = true, env = [{env}], network = [{network}], sockets = [{sockets}] }}
"#,
        state = toml_string(&scratch.path().join("state").to_string_lossy()),
        cache = toml_string(&cache.to_string_lossy()),
        policies = toml_string(&policies.to_string_lossy()),
        file = toml_string(&args.file.to_string_lossy()),
        env = toml_list(&args.env),
        network = toml_list(&args.network),
        sockets = toml_list(&args.sockets),
    );
    if world == "generator" {
        println!("conformance:  the suite covers providers; start a generator in a mount with its roles");
        return Ok(());
    }
    let config = crate::Config::from_toml(&text).map_err(|e| e.to_string())?;
    eprintln!("starting {name} in a scratch mount (compiling it the first time; large plugins take a while)…");
    let started = std::time::Instant::now();
    let host = crate::Host::start(config).await.map_err(|e| e.to_string())?;
    println!(
        "started:      in {:.1} s (compile cache {})",
        started.elapsed().as_secs_f64(),
        cache.display()
    );
    let caps = host
        .mounts()
        .into_iter()
        .find(|(m, _, _)| m == "check")
        .map(|(_, _, c)| c)
        .ok_or("the scratch mount did not start")?;
    let claimed: Vec<&str> = [
        ("writable", caps.writable),
        ("versioned", caps.versioned),
        ("check-and-set", caps.check_and_set),
        ("deletable", caps.deletable),
        ("listable", caps.listable),
        ("soft-delete", caps.soft_delete),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect();
    println!(
        "capabilities: {}",
        if claimed.is_empty() {
            "none".to_string()
        } else {
            claimed.join(", ")
        }
    );
    if !caps.writable {
        println!("conformance:  not run: a read-only provider needs its backend filled first (see tresor::conformance::run_seeded)");
        return Ok(());
    }
    let me = crate::Caller::embedded(crate::Principal::new("plugin-check"));
    let outcome = crate::conformance::run(&host, "check", &me)
        .await
        .map_err(|e| format!("conformance: {e:#}"))?;
    println!("conformance:  {outcome}");
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn default_compile_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tresor").join("compiled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_plugin_is_a_provider_of_this_contract() {
        let wasm = crate::plugins::embedded("file").unwrap();
        let i = inspect(wasm).unwrap();
        assert_eq!(world_of(&i.exports), Ok("provider"));
        assert!(
            i.imports.iter().any(|i| i.starts_with("tresor:plugin/host@")),
            "{:?}",
            i.imports
        );
        assert!(
            i.imports.iter().any(|i| grant_for(i) == Some("directory")),
            "{:?}",
            i.imports
        );
    }

    #[test]
    fn another_contract_version_is_named() {
        let e = world_of(&["tresor:plugin/provider@0.2.0".to_string()]).unwrap_err();
        assert!(e.contains("\"0.2.0\"") && e.contains(CONTRACT), "{e}");
        let e = world_of(&["wasi:cli/run@0.2.0".to_string()]).unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        // The smallest core module: magic and version 1.
        let e = inspect(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(e.contains("core WebAssembly module"), "{e}");
        assert!(inspect(b"not wasm").is_err());
    }
}
