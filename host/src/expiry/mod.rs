//! Secrets that expire.
//!
//! A version expires when its metadata says so: `expires_at` (RFC 3339,
//! e.g. `2027-03-01T00:00:00Z`) or `ttl` (a duration, `90d`, `12h`), which
//! the host turns into `expires_at` at each write, so every new version of
//! the secret lives that long again. A version written without either
//! (and not inheriting a `ttl`) does not expire.
//!
//! Around the access path ([`crate::access`]):
//!
//! - a write records the expiry of the secret's new version in the host
//!   state store (a delete forgets it);
//! - the `expiry-watch` job (one host of those sharing a store) sends
//!   `expiry/near` [`warn_before`](ExpiryConfig::warn_before) ahead
//!   (default 30 days) and `expiry/expired` at the time, with a log line
//!   each, and rotates an expired secret that a `[[rotation]]` rule covers;
//! - a read of an expired version is refused ([`crate::Error::Expired`])
//!   unless the `permit` that allowed it is annotated `@allow_expired`.

mod watch;

pub use watch::start;

use crate::error::Error;
use crate::secret::Metadata;
use crate::state::ExpiryRecord;

/// The metadata key of a version's expiry time (RFC 3339).
pub const EXPIRES_AT: &str = "expires_at";
/// The metadata key of a lifetime the host turns into `expires_at` at each write.
pub const TTL: &str = "ttl";

/// When the host warns of expiries (`[expiry]` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryConfig {
    /// How long before the expiry `expiry/near` is sent (`"30d"`, the default).
    #[serde(default = "default_warn_before")]
    pub warn_before: String,
}

fn default_warn_before() -> String {
    "30d".into()
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            warn_before: default_warn_before(),
        }
    }
}

impl ExpiryConfig {
    /// `warn_before` in milliseconds; an error names the key.
    pub fn warn_before_ms(&self) -> Result<u64, String> {
        crate::config::parse_duration_seconds(&self.warn_before)
            .map(|s| s.saturating_mul(1000))
            .map_err(|e| format!("[expiry] warn_before: {e}"))
    }
}

/// Give the metadata of a version about to be written its expiry:
/// `expires_at` from `ttl` when there is one; an `expires_at` that only
/// came from the previous version (not in `explicit`, the writer's own
/// metadata) is dropped, so a new value does not inherit an old deadline.
/// Refuses a malformed `ttl` or `expires_at`.
pub(crate) fn stamp(metadata: &mut Metadata, explicit: &Metadata, now_ms: u64) -> Result<(), Error> {
    if let Some(ttl) = metadata.get(TTL) {
        let seconds = crate::config::parse_duration_seconds(ttl)
            .map_err(|e| Error::InvalidInput(format!("metadata `{TTL}`: {e}")))?;
        if seconds == 0 {
            return Err(Error::InvalidInput(format!(
                "metadata `{TTL}` must be longer than 0; leave it out for a secret that does not expire"
            )));
        }
        let at = now_ms.saturating_add(seconds.saturating_mul(1000));
        metadata.insert(EXPIRES_AT.into(), crate::audit::format_rfc3339_millis(time_of(at)));
        return Ok(());
    }
    if !explicit.contains_key(EXPIRES_AT) {
        metadata.remove(EXPIRES_AT);
    }
    expires_ms(metadata).map(|_| ())
}

/// The expiry a version's metadata names, in ms since the Unix epoch.
pub fn expires_ms(metadata: &Metadata) -> Result<Option<u64>, Error> {
    let Some(text) = metadata.get(EXPIRES_AT) else {
        return Ok(None);
    };
    let at = humantime::parse_rfc3339_weak(text.trim()).map_err(|_| {
        Error::InvalidInput(format!(
            "metadata `{EXPIRES_AT}` is `{text}`, not an RFC 3339 time; write it as `2027-03-01T00:00:00Z`, or give a `{TTL}` such as `90d`"
        ))
    })?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64);
    Ok(Some(ms))
}

/// When the watch looks at `record` next, given how long ahead it warns.
pub(crate) fn next_check(record: &ExpiryRecord, warn_before_ms: u64) -> u64 {
    if record.warned_ms.is_none() && record.expired_ms.is_none() {
        record.expires_ms.saturating_sub(warn_before_ms)
    } else if record.expired_ms.is_none() {
        record.expires_ms
    } else {
        u64::MAX
    }
}

/// The record of `path`'s new `version`, expiring at `expires_ms`: a
/// version already inside the warning window is warned about at once.
pub(crate) fn record(path: &str, version: &str, expires_ms: u64, warn_before_ms: u64) -> ExpiryRecord {
    let mut record = ExpiryRecord {
        path: path.to_string(),
        version: version.to_string(),
        expires_ms,
        warned_ms: None,
        expired_ms: None,
        next_check_ms: 0,
    };
    record.next_check_ms = next_check(&record, warn_before_ms);
    record
}

/// The error of a read of a version that expired at `expires_ms`.
pub(crate) fn expired_error(path: &str, version: &str, expires_ms: u64) -> Error {
    Error::Expired {
        path: path.to_string(),
        version: version.to_string(),
        at: crate::audit::format_rfc3339_millis(time_of(expires_ms)),
    }
}

fn time_of(ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Metadata {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_ttl_becomes_an_expiry_at_every_write_and_an_inherited_expiry_is_dropped() {
        let now = 1_800_000_000_000;
        let explicit = tags(&[("ttl", "2d"), ("owner", "ops")]);
        let mut m = explicit.clone();
        stamp(&mut m, &explicit, now).unwrap();
        assert_eq!(expires_ms(&m).unwrap(), Some(now + 2 * 86_400_000));

        // The next version inherits the ttl and lives two days again.
        let mut next = m.clone();
        stamp(&mut next, &Metadata::new(), now + 1000).unwrap();
        assert_eq!(expires_ms(&next).unwrap(), Some(now + 1000 + 2 * 86_400_000));

        // An explicit expiry stays; inherited alone, it is dropped.
        let explicit = tags(&[("expires_at", "2027-03-01T00:00:00Z")]);
        let mut kept = explicit.clone();
        stamp(&mut kept, &explicit, now).unwrap();
        assert_eq!(expires_ms(&kept).unwrap(), Some(1_803_859_200_000));
        let mut inherited = explicit.clone();
        stamp(&mut inherited, &Metadata::new(), now).unwrap();
        assert_eq!(expires_ms(&inherited).unwrap(), None);

        for bad in [
            tags(&[("ttl", "soon")]),
            tags(&[("ttl", "0")]),
            tags(&[("expires_at", "tomorrow")]),
        ] {
            let e = stamp(&mut bad.clone(), &bad, now).unwrap_err().to_string();
            assert!(e.contains("ttl") || e.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn the_watch_warns_then_says_expired_then_is_done() {
        let mut r = record("secret/a", "3", 100_000, 30_000);
        assert_eq!(r.next_check_ms, 70_000);
        r.warned_ms = Some(70_001);
        assert_eq!(next_check(&r, 30_000), 100_000);
        r.expired_ms = Some(100_002);
        assert_eq!(next_check(&r, 30_000), u64::MAX);
        // Inside the window already: warned at once.
        assert_eq!(record("secret/b", "1", 10_000, 30_000).next_check_ms, 0);
    }
}
