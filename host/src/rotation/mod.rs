//! Rotation of stored secrets: a new value on a schedule or when asked,
//! staged so that it never breaks a reader.
//!
//! A rotation of one secret goes through three steps, each recorded in the
//! host state store before the next starts, so a host that stops at any
//! moment (SIGKILL included) resumes where it was, never makes a second
//! value for the same due time, and never loses the value it made:
//!
//! 1. **start**: a new value is made ([`ValueMaker`]), sealed by the master
//!    key and recorded as the secret's *pending* value (event
//!    `rotation/started`); readers with access may read it as version
//!    `pending`;
//! 2. **check** (when the rule names a `check_webhook`): the webhook gets a
//!    signed `rotation/check` event and must answer 2xx (it may read the
//!    pending value with its own token first). A refusal ends the rotation:
//!    the current value is untouched, and the failure is an event
//!    (`rotation/failed`), a log line and the rotation's audit entry;
//! 3. **commit**: the pending value is written as a new version (with
//!    check-and-set against the version it replaces) and becomes current;
//!    the version it replaced stays readable as `previous` until the next
//!    rotation (event `rotation/succeeded`, and the write's own
//!    `kv-v2/data-write`).
//!
//! Reads may ask for version `current`, `previous` or `pending`, like AWS
//! Secrets Manager's staging labels.
//!
//! Which secrets rotate, how often and how their values are made come from
//! `[[rotation]]` rules ([`RotationRule`]); a rule without a `period` takes
//! the default of the secret's `type` tag ([`default_period_seconds`]).
//! Schedules live in the state store: they survive restarts, a rotation
//! that fell due while the host was down runs at start (once, however many
//! periods were missed), and of several hosts sharing one store one runs
//! them (the leader of [`SCHEDULER_JOB`]).

pub mod maker;
pub mod rules;
pub(crate) mod scheduler;

use std::time::Duration;

use zeroize::Zeroizing;

pub use maker::ValueMaker;
pub use rules::{default_period_seconds, rule_for, RotationRule};

use crate::error::Error;
use crate::keys::Sealer;
use crate::secret::Metadata;
use crate::state::{RotationRecord, StateStore};

/// The singleton job that runs scheduled rotations, among hosts sharing a
/// state store.
pub const SCHEDULER_JOB: &str = "rotation-scheduler";

/// How long after its start a rotation left half done is taken up again by
/// the scheduler (a host that stopped mid-rotation leaves its stage in the
/// state store; the scheduler resumes it with the same pending value).
pub const RESUME_AFTER_MS: u64 = 10_000;

/// A version label a read may ask for instead of a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The latest version (what a read without a version gets).
    Current,
    /// The version the last rotation replaced.
    Previous,
    /// The value a rotation under way has made and not yet committed.
    Pending,
}

impl Label {
    /// The version name a pending value is read (and announced) as.
    pub const PENDING: &'static str = "pending";

    /// `current`, `previous` or `pending`; anything else is a version of
    /// the provider's (AWS's own stages `AWSCURRENT`, `AWSPREVIOUS` go to
    /// the `aws` provider unchanged).
    pub fn parse(version: &str) -> Option<Label> {
        match version {
            "current" => Some(Label::Current),
            "previous" => Some(Label::Previous),
            "pending" => Some(Label::Pending),
            _ => None,
        }
    }
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationReceipt {
    /// The secret, `mount/path`.
    pub path: String,
    /// The version that is current now.
    pub version: String,
    /// The version it replaced (`None`: the secret did not exist).
    pub previous_version: Option<String>,
    /// When the next scheduled rotation is due, ms since the epoch (`None`:
    /// only when asked).
    pub next_due_ms: Option<u64>,
}

/// The rotation rules and the records of the secrets they cover.
pub(crate) struct Rotations {
    rules: Vec<RotationRule>,
    state: StateStore,
    sealer: Sealer,
}

/// `source` of a record made from a `[[rotation]]` rule.
pub const SOURCE_CONFIG: &str = "config";
/// `source` of a record set through the API; the configuration's rules do
/// not change it.
pub const SOURCE_API: &str = "api";

/// Make `record` follow `rule` (its maker, field, check and period, by the
/// secret's `tags`); a changed period restarts the schedule from now.
pub(crate) fn follow(record: &mut RotationRecord, rule: &RotationRule, tags: &Metadata, now_ms: u64) {
    let period_ms = rule.period_seconds(tags).map_or(0, |s| s.saturating_mul(1000));
    record.maker = serde_json::to_string(&rule.value).expect("makers serialize");
    record.field = rule.field.clone();
    record.check_webhook = rule.check_webhook.clone();
    if period_ms != record.period_ms {
        record.period_ms = period_ms;
        if record.stage.is_none() {
            record.next_due_ms = if period_ms == 0 {
                u64::MAX
            } else {
                now_ms.saturating_add(period_ms)
            };
        }
    }
}

/// The sealing context of a pending value: which secret it is for.
fn seal_context(path: &str) -> Vec<u8> {
    let mut context = b"tresor-rotation-pending\0".to_vec();
    context.extend_from_slice(path.as_bytes());
    context
}

impl Rotations {
    /// Rotations by `rules`, recorded in `state`, pending values sealed by `sealer`.
    pub(crate) fn new(rules: Vec<RotationRule>, state: StateStore, sealer: Sealer) -> Rotations {
        Rotations { rules, state, sealer }
    }

    pub(crate) fn state(&self) -> &StateStore {
        &self.state
    }

    /// Whether any rule exists (no scheduler is needed without one).
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The record of `path` and whether it is stored: the stored one (a
    /// record from the configuration follows its rule as the rule is now),
    /// else one made from the rule covering it (not stored yet). `None`: no
    /// policy covers the secret (a stored record whose rule was removed is
    /// unscheduled).
    pub(crate) async fn record_for(
        &self,
        path: &str,
        tags: &Metadata,
        now_ms: u64,
    ) -> Result<Option<(RotationRecord, bool)>, Error> {
        let stored = self.state.get_rotation(path).await.map_err(state_error)?;
        let rule = rule_for(&self.rules, path);
        match (stored, rule) {
            (Some(record), _) if record.source == SOURCE_API => Ok(Some((record, true))),
            (Some(mut record), Some(rule)) => {
                follow(&mut record, rule, tags, now_ms);
                Ok(Some((record, true)))
            }
            (Some(record), None) if record.stage.is_some() => Ok(Some((record, true))),
            (Some(record), None) => {
                if record.next_due_ms != u64::MAX {
                    let mut idle = record.clone();
                    idle.revision += 1;
                    idle.next_due_ms = u64::MAX;
                    self.state
                        .swap_rotation(&idle, Some(record.revision))
                        .await
                        .map_err(state_error)?;
                }
                Ok(None)
            }
            (None, Some(rule)) => {
                let mut record = RotationRecord::unscheduled(path, SOURCE_CONFIG);
                follow(&mut record, rule, tags, now_ms);
                Ok(Some((record, false)))
            }
            (None, None) => Ok(None),
        }
    }

    /// Make the rotation of `path` due now (it expired), if a policy covers
    /// it and no rotation is under way. False when none does.
    pub(crate) async fn due_now(&self, path: &str, tags: &Metadata, now_ms: u64) -> Result<bool, Error> {
        let Some((record, stored)) = self.record_for(path, tags, now_ms).await? else {
            return Ok(false);
        };
        if record.stage.is_some() {
            return Ok(true);
        }
        let mut due = record.clone();
        due.next_due_ms = now_ms;
        if stored {
            due.revision = record.revision + 1;
        }
        self.state
            .swap_rotation(&due, stored.then_some(record.revision))
            .await
            .map_err(state_error)
    }

    /// Start the schedule of a secret a rule covers, if it has none yet
    /// (after a write: its first rotation is one period later).
    pub(crate) async fn schedule(&self, path: &str, tags: &Metadata, now_ms: u64) -> Result<(), Error> {
        if let Some((record, false)) = self.record_for(path, tags, now_ms).await? {
            if record.period_ms > 0 {
                self.state.swap_rotation(&record, None).await.map_err(state_error)?;
            }
        }
        Ok(())
    }

    /// Seal a pending value of `path` for the state store (hex).
    pub(crate) fn seal(&self, path: &str, value: &[u8]) -> Result<String, Error> {
        self.sealer
            .seal(value, &seal_context(path))
            .map(hex::encode)
            .map_err(|e| Error::Internal(format!("sealing a pending value: {e}")))
    }

    /// The pending value of `path` moved to the current key generation;
    /// `None` when it already is.
    pub(crate) fn reseal(&self, path: &str, sealed_hex: &str) -> Result<Option<String>, Error> {
        let sealed = hex::decode(sealed_hex)
            .map_err(|_| Error::Internal(format!("the pending value of `{path}` in the state store is damaged")))?;
        self.sealer
            .reseal(&sealed, &seal_context(path))
            .map(|moved| moved.map(hex::encode))
            .map_err(|e| Error::Internal(format!("resealing the pending value of `{path}`: {e}")))
    }

    /// The pending value of `path`, unsealed.
    pub(crate) fn unseal(&self, path: &str, sealed_hex: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let sealed = hex::decode(sealed_hex)
            .map_err(|_| Error::Internal(format!("the pending value of `{path}` in the state store is damaged")))?;
        self.sealer
            .unseal(&sealed, &seal_context(path))
            .map_err(|e| Error::Internal(format!("unsealing the pending value of `{path}`: {e}")))
    }
}

/// The new value of a secret: `made` itself, or `made` as `field` of the
/// current JSON-object value (the other fields kept).
pub(crate) fn new_value(current: Option<&[u8]>, field: Option<&str>, made: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let Some(field) = field else {
        return Ok(Zeroizing::new(made.as_bytes().to_vec()));
    };
    let mut object = match current {
        None => serde_json::Map::new(),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "the rotation rotates field `{field}`, but the secret's value is not a JSON object: \
                     write it as one, or drop `field` from the rule"
                )))
            }
        },
    };
    object.insert(field.to_string(), serde_json::Value::String(made.to_string()));
    let text = serde_json::to_vec(&serde_json::Value::Object(object)).expect("JSON serializes");
    Ok(Zeroizing::new(text))
}

/// When the next scheduled rotation after one for `due_ms` (done at
/// `now_ms`) is due: one period after `due_ms`, so the schedule keeps its
/// cadence; but one period after `now_ms` when the rotation ran more than
/// half a period late (the host was down), so that a late rotation is not
/// followed by another moments later.
pub(crate) fn next_due(period_ms: u64, due_ms: u64, now_ms: u64) -> u64 {
    if period_ms == 0 {
        return u64::MAX;
    }
    let next = due_ms.saturating_add(period_ms);
    if next < now_ms.saturating_add(period_ms / 2) {
        now_ms.saturating_add(period_ms)
    } else {
        next
    }
}

/// How long a failed rotation waits before its next try: 1 s doubling per
/// failure, at most a minute, and never past its period.
pub(crate) fn retry_after_ms(failures: u32, period_ms: u64) -> u64 {
    let wait = crate::retry::backoff(failures, Duration::from_secs(1), Duration::from_secs(60)).as_millis() as u64;
    if period_ms == 0 {
        wait
    } else {
        wait.min(period_ms)
    }
}

pub(crate) fn state_error(e: crate::state::StateError) -> Error {
    Error::Unavailable(e.to_string())
}

/// The maker a record names.
pub(crate) fn maker_of(record: &RotationRecord) -> Result<ValueMaker, Error> {
    serde_json::from_str(&record.maker).map_err(|e| {
        Error::Internal(format!(
            "the rotation record of `{}` names a value maker this host does not know ({e})",
            record.path
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_in_both_spellings() {
        assert_eq!(Label::parse("previous"), Some(Label::Previous));
        assert_eq!(Label::parse("pending"), Some(Label::Pending));
        assert_eq!(Label::parse("AWSPREVIOUS"), None, "the aws provider's own stage");
        assert_eq!(Label::parse("current"), Some(Label::Current));
        assert_eq!(Label::parse("3"), None);
    }

    #[test]
    fn a_field_rotates_inside_a_json_object() {
        let v = new_value(Some(br#"{"username":"app","password":"old"}"#), Some("password"), "new").unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(parsed, serde_json::json!({"username": "app", "password": "new"}));
        assert_eq!(&*new_value(Some(b"old"), None, "new").unwrap(), b"new");
        let e = new_value(Some(b"plain text"), Some("password"), "new").unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        assert!(!e.to_string().contains("new"), "no value in the error");
    }

    #[test]
    fn the_next_due_time_skips_missed_periods() {
        assert_eq!(next_due(1000, 5000, 5200), 6000);
        assert_eq!(next_due(1000, 5000, 9500), 10_500);
        assert_eq!(next_due(1000, 5000, 5600), 6600, "late by more than half a period");
        assert_eq!(next_due(0, 5000, 5200), u64::MAX);
        assert_eq!(retry_after_ms(0, 0), 1000);
        assert_eq!(retry_after_ms(10, 0), 60_000);
        assert_eq!(retry_after_ms(3, 2000), 2000);
    }
}
