//! The plugin catalog: which plugins the host runs, in which language they
//! were written, their sha256, the mounts using them and their instances
//! (`GET /v1/sys/plugins/catalog`, `tresor plugin list`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::access::{Caller, Host};
use crate::error::Error;
use crate::runtime::InstanceCounts;

/// What the host knows of a plugin's bytes, found when its mount starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's name: the embedded plugin's, or the file's stem.
    pub name: String,
    /// The lowercase hex sha256 of the component.
    pub sha256: String,
    /// The language it was written in, from the component's `producers`
    /// section (`Rust`, `Python`, `JavaScript`, ...), when it says.
    pub language: Option<String>,
}

impl PluginInfo {
    /// Describe the component `wasm` named `name`.
    pub fn of(name: &str, wasm: &[u8]) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            sha256: crate::runtime::compile::sha256_hex(wasm),
            language: language_of(wasm),
        }
    }
}

/// One plugin in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// The plugin's name.
    pub name: String,
    /// `provider` or `generator`.
    pub kind: &'static str,
    /// The language it was written in, when the component says.
    pub language: Option<String>,
    /// The lowercase hex sha256 of the component.
    pub sha256: String,
    /// The mounts running it, with their instances.
    pub mounts: Vec<MountInstances>,
}

/// One mount running a plugin, and its instances now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountInstances {
    /// The mount.
    pub mount: String,
    /// Its instances.
    pub instances: InstanceCounts,
}

impl Host {
    /// The plugins this host runs, grouped by their bytes (a plugin mounted
    /// twice is one entry with two mounts), sorted by name. Authorized as
    /// action `admin` on `Mount::"sys"` and audited (`plugins/catalog`).
    pub async fn catalog(&self, caller: &Caller) -> Result<Vec<CatalogEntry>, Error> {
        self.admin(caller, "sys", "plugins/catalog", || async { Ok(self.catalog_now()) })
            .await
    }

    fn catalog_now(&self) -> Vec<CatalogEntry> {
        let mut by_plugin: BTreeMap<(String, String), CatalogEntry> = BTreeMap::new();
        let mut add = |info: &PluginInfo, kind: &'static str, mount: &str, instances: InstanceCounts| {
            by_plugin
                .entry((info.name.clone(), info.sha256.clone()))
                .or_insert_with(|| CatalogEntry {
                    name: info.name.clone(),
                    kind,
                    language: info.language.clone(),
                    sha256: info.sha256.clone(),
                    mounts: Vec::new(),
                })
                .mounts
                .push(MountInstances {
                    mount: mount.to_string(),
                    instances,
                });
        };
        for (name, m) in &self.table().providers {
            add(&m.info, "provider", name, m.pool.instance_counts());
        }
        for (name, m) in self.leases.mounts.load().iter() {
            add(&m.info, "generator", name, m.pool.instance_counts());
        }
        by_plugin.into_values().collect()
    }
}

/// The language a component was written in: the interpreter it embeds
/// (CPython from componentize-py, StarlingMonkey from ComponentizeJS), else
/// the `producers` custom sections of the component and its modules: the toolchain that
/// made it when that is one language's (componentize-py, ComponentizeJS,
/// wit-bindgen-rust, ...), else the first `language` entry that is not C
/// (the interpreters some toolchains embed are written in C).
pub fn language_of(wasm: &[u8]) -> Option<String> {
    // An interpreter inside says more than the producers, whose `Rust` may
    // be only the toolchain's own runtime or the WASI adapter.
    for (marker, language) in [(&b"libpython3."[..], "Python"), (&b"StarlingMonkey"[..], "JavaScript")] {
        if memchr::memmem::find(wasm, marker).is_some() {
            return Some(language.to_string());
        }
    }
    let mut languages = Vec::new();
    let mut tools = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(producers) = section.as_known() else {
            continue;
        };
        for field in producers.into_iter().flatten() {
            let into = match field.name {
                "language" => &mut languages,
                "processed-by" | "sdk" => &mut tools,
                _ => continue,
            };
            into.extend(field.values.into_iter().flatten().map(|v| v.name.to_string()));
        }
    }
    // Most telling first: a component toolchain of one language, then the
    // language's own bindings generator (wit-bindgen-c also appears in
    // components of other languages, for the WASI adapter).
    const TOOLS: [(&str, &str); 6] = [
        ("componentize-py", "Python"),
        ("componentize-js", "JavaScript"),
        ("componentizejs", "JavaScript"),
        ("wit-bindgen-rust", "Rust"),
        ("wit-bindgen-go", "Go"),
        ("wit-bindgen-c", "C"),
    ];
    let by_tool = TOOLS.iter().find_map(|(tool, language)| {
        tools
            .iter()
            .any(|t| t.to_ascii_lowercase().contains(tool))
            .then_some(*language)
    });
    let by_tool = by_tool.filter(|l| *l != "C" || languages.is_empty());
    by_tool.map(str::to_string).or_else(|| {
        languages
            .iter()
            .find(|l| !l.starts_with('C') || l.starts_with("C#"))
            .or(languages.first())
            .cloned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_plugins_are_rust() {
        let file = crate::plugins::embedded("file").expect("the file plugin is embedded");
        assert_eq!(language_of(file).as_deref(), Some("Rust"));
    }

    #[test]
    fn bytes_that_are_not_wasm_have_no_language() {
        assert_eq!(language_of(b"not a component"), None);
    }
}
