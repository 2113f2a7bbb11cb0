//! The first-party plugins embedded in the binary (built by `build.rs`):
//! the `file` and `env` providers, and the `postgres` and `aws-creds`
//! generators.

/// The component bytes of an embedded plugin, by the name configs use.
pub fn embedded(name: &str) -> Option<&'static [u8]> {
    match name {
        "file" => Some(include_bytes!(env!("TRESOR_PLUGIN_FILE"))),
        "env" => Some(include_bytes!(env!("TRESOR_PLUGIN_ENV"))),
        "postgres" => Some(include_bytes!(env!("TRESOR_PLUGIN_POSTGRES"))),
        "aws-creds" => Some(include_bytes!(env!("TRESOR_PLUGIN_AWS_CREDS"))),
        _ => None,
    }
}

/// Names of the embedded plugins.
pub const EMBEDDED: &[&str] = &["file", "env", "postgres", "aws-creds"];
