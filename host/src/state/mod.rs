//! The host state store: everything the host itself must keep across a
//! restart (today: the leases of dynamic secrets), behind one interface.
//!
//! [`StateStore`] is what the rest of the host uses: async, cloneable, with
//! typed records. It runs on a [`StateBackend`]: the embedded default is
//! [`SqliteBackend`] (one SQLite database in the state directory, WAL mode,
//! every change committed durably before the call returns);
//! [`PostgresBackend`] keeps the same records in PostgreSQL, for several
//! hosts sharing one state (`[state] postgres = "..."`). Nothing in the host
//! assumes there is only one process (ids are random, not counters).

pub mod members;
mod postgres;
mod sqlite;

use std::sync::Arc;

pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

/// Where a lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Recorded before the plugin's `issue` runs, so that a host that stops
    /// mid-issue leaves a trace: an `issuing` lease still there at
    /// `next_attempt_ms` (the call's deadline long past) was never handed
    /// out, and the sweeper asks the plugin to `abandon` what it may have
    /// created upstream, then forgets it.
    Issuing,
    /// Live: the credential works until `expires_ms`.
    Active,
    /// Its revocation failed and is retried at `next_attempt_ms`.
    RevocationPending,
    /// Revocation kept failing until the retries ran out. Kept and listed
    /// (never silently dropped) until an operator force-revokes it.
    Irrevocable,
}

impl LeaseState {
    /// Stable name, as stored and shown: `issuing`, `active`,
    /// `revocation-pending`, `irrevocable`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Issuing => "issuing",
            LeaseState::Active => "active",
            LeaseState::RevocationPending => "revocation-pending",
            LeaseState::Irrevocable => "irrevocable",
        }
    }

    fn parse(s: &str) -> Option<LeaseState> {
        match s {
            "issuing" => Some(LeaseState::Issuing),
            "active" => Some(LeaseState::Active),
            "revocation-pending" => Some(LeaseState::RevocationPending),
            "irrevocable" => Some(LeaseState::Irrevocable),
            _ => None,
        }
    }
}

/// One lease as the state store keeps it. It holds what revocation needs
/// (the plugin's revoke handle), never the credential itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `<mount>/creds/<role>/<random>`.
    pub id: String,
    /// The generator mount.
    pub mount: String,
    /// The role it was issued for.
    pub role: String,
    /// Who it was issued to.
    pub principal: String,
    /// Accessor of the token it was issued with, if any: revoking that token
    /// revokes the lease.
    pub token_accessor: Option<String>,
    /// What the plugin needs to renew or revoke the credential (not secret).
    pub revoke_handle: String,
    /// Issue time, ms since the epoch.
    pub issued_ms: u64,
    /// Last renewal, ms since the epoch (0: never renewed).
    pub renewed_ms: u64,
    /// When the lease ends, ms since the epoch.
    pub expires_ms: u64,
    /// The latest end any renewal may reach (issue time + the role's maximum TTL).
    pub max_expires_ms: u64,
    /// Whether renewals are possible.
    pub renewable: bool,
    /// Whether the upstream can end the credential early.
    pub revocable: bool,
    /// Active, pending revocation or irrevocable.
    pub state: LeaseState,
    /// Failed revocation attempts so far.
    pub attempts: u32,
    /// When the next revocation attempt is due (pending leases), or when an
    /// `issuing` lease is taken as abandoned, ms since the epoch.
    pub next_attempt_ms: u64,
    /// Why the last revocation failed (an error message, never a secret).
    pub last_error: Option<String>,
}

/// One API token as the state store keeps it: its salted hash, never the
/// token (see [`crate::auth::TokenStore`]). It reads the records of the token
/// file of earlier versions as they are.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct TokenRecord {
    /// Hex SHA-256 of the store's token salt ‖ token.
    pub hash: String,
    /// The token's non-secret handle.
    pub accessor: String,
    /// The principal's name.
    pub principal: String,
    /// The principal's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The principal's attributes.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Creation time, unix seconds.
    pub created_unix: u64,
    /// Lifetime it was created with, seconds (0: no expiry).
    #[serde(default)]
    pub ttl_seconds: u64,
    /// Expiry, unix seconds.
    #[serde(default)]
    pub expires_unix: Option<u64>,
    /// The latest expiry renewals may reach, unix seconds.
    #[serde(default)]
    pub max_expires_unix: Option<u64>,
    /// A bootstrap root token made by the server at start.
    #[serde(default)]
    pub bootstrap: bool,
}

/// One webhook delivery waiting in the outbox: an event's body for one
/// webhook, kept until the webhook answered 2xx (at-least-once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// `<webhook>/<event id>`: unique, so queuing the same event twice for
    /// one webhook keeps one row.
    pub id: String,
    /// The webhook's name (`[[webhook]] name`).
    pub webhook: String,
    /// The body to POST (the event as JSON; never a secret value).
    pub body: String,
    /// When it was queued, ms since the epoch.
    pub created_ms: u64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, ms since the epoch.
    pub next_attempt_ms: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The rotation schedule and staging state of one secret (see
/// [`crate::rotation`]). Kept as one JSON document per secret; changed only
/// by compare-and-swap on `revision` ([`StateBackend::swap_rotation`]), so
/// two hosts never both start the rotation of one due time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RotationRecord {
    /// `<mount>/<path>` of the secret.
    pub path: String,
    /// Bumped by every change; the compare-and-swap key.
    pub revision: u64,
    /// How often it rotates, ms (0: only when asked).
    pub period_ms: u64,
    /// When the next scheduled rotation is due, ms since the epoch
    /// (`u64::MAX`: none is scheduled).
    pub next_due_ms: u64,
    /// How new values are made (the rotation module's JSON; not secret).
    pub maker: String,
    /// The field of a JSON-object value that rotates (`None`: the whole value).
    #[serde(default)]
    pub field: Option<String>,
    /// The webhook that must accept a pending value before it becomes current.
    #[serde(default)]
    pub check_webhook: Option<String>,
    /// Where the policy comes from: `config` (a `[[rotation]]` rule) or `api`.
    pub source: String,
    /// The rotation under way, if one is.
    #[serde(default)]
    pub stage: Option<RotationStage>,
    /// The version that was current before the last rotation (`previous`).
    #[serde(default)]
    pub previous_version: Option<String>,
    /// The version the last rotation made current.
    #[serde(default)]
    pub current_version: Option<String>,
    /// When the last rotation succeeded, ms since the epoch.
    #[serde(default)]
    pub last_rotated_ms: Option<u64>,
    /// Why the last rotation failed (a message, never a value).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed rotations in a row.
    #[serde(default)]
    pub failures: u32,
    /// A static role's current password, sealed, hex (for a record of
    /// source `static`, whose versions are the accounts' usernames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_credential: Option<String>,
}

impl RotationRecord {
    /// A new record of the secret at `path`: nothing scheduled, never rotated.
    pub fn unscheduled(path: &str, source: &str) -> RotationRecord {
        RotationRecord {
            path: path.to_string(),
            revision: 0,
            period_ms: 0,
            next_due_ms: u64::MAX,
            maker: String::new(),
            field: None,
            check_webhook: None,
            source: source.to_string(),
            stage: None,
            previous_version: None,
            current_version: None,
            last_rotated_ms: None,
            last_error: None,
            failures: 0,
            sealed_credential: None,
        }
    }
}

/// A rotation between its start and its end: the pending value, sealed by
/// the host's master key (never stored in plaintext), and what it replaces.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RotationStage {
    /// The due time it rotates for (its start time when asked for).
    pub due_ms: u64,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// The version current when it started (`None`: the secret did not exist).
    pub base_version: Option<String>,
    /// The pending value, sealed, hex.
    pub pending_sealed: String,
    /// The request that started it.
    pub request_id: String,
}

/// A host of a state store, as it last reported itself (every second).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// Random per start of a host.
    pub id: String,
    /// The machine's name and the process id.
    pub name: String,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// Its last report, ms since the epoch.
    pub last_seen_ms: u64,
    /// The singleton jobs it leads (`lease-sweeper`, ...).
    pub jobs: Vec<String>,
}

/// When a secret's latest version expires, and what the host has said
/// about it (see [`crate::expiry`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpiryRecord {
    /// `mount/path`.
    pub path: String,
    /// The version that carries the expiry.
    pub version: String,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: u64,
    /// When the near-expiry event was sent.
    #[serde(default)]
    pub warned_ms: Option<u64>,
    /// When the expired event was sent.
    #[serde(default)]
    pub expired_ms: Option<u64>,
    /// When the host looks at it next (`u64::MAX`: nothing left to say).
    pub next_check_ms: u64,
}

fn expiry_to_json(record: &ExpiryRecord) -> String {
    serde_json::to_string(record).expect("expiry records serialize")
}

fn expiry_from_json(text: &str) -> Result<ExpiryRecord, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Damaged {
        detail: format!("an expiry record does not parse: {e}"),
    })
}

/// The meta key of the keyring (JSON, [`crate::keys::KeyringRecord`]).
const KEYRING_META: &str = "keyring";
/// The meta key of the reseal progress (JSON, [`ResealProgress`]).
const RESEAL_META: &str = "reseal";

/// Where the reseal after a master key rotation stands: every host moves
/// the sealed values of its own mounts to generation `target`, and the
/// older generations are retired once every live host is done. Kept in the
/// state store so a crashed pass resumes where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResealProgress {
    /// The generation values are moved to.
    pub target: u32,
    /// When the rotation started the pass, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Each host's pass, by member id.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, HostReseal>,
    /// When the older generations were retired; `None` until then.
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// The generations retired then.
    #[serde(default)]
    pub retired: Vec<u32>,
}

/// One host's pass over its mounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostReseal {
    /// Each mount's part.
    #[serde(default)]
    pub mounts: std::collections::BTreeMap<String, MountReseal>,
    /// When this host finished its pass.
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// Why this host's pass does not allow retiring the older generations
    /// (a mount that cannot reseal, values that failed); empty when it does.
    #[serde(default)]
    pub kept_because: Vec<String>,
}

/// One mount's part of a reseal pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountReseal {
    /// The last secret path done (paths are done in sorted order).
    #[serde(default)]
    pub after: Option<String>,
    /// Every secret of the mount is done.
    #[serde(default)]
    pub done: bool,
    /// Secrets looked at.
    #[serde(default)]
    pub secrets: u64,
    /// Versions whose blob was moved to the target generation.
    #[serde(default)]
    pub resealed: u64,
    /// Secrets that could not be resealed (the old generation is kept).
    #[serde(default)]
    pub failed: u64,
}

/// What can go wrong with the state store. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be opened or created.
    #[error("cannot open the state store {path}: {detail}; check that the state directory is writable by Tresor and that no other Tresor process uses it")]
    Open {
        /// Where it is.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The database was written by a newer Tresor.
    #[error("the state store {path} has schema version {found}, newer than this Tresor knows ({known}); run the newer Tresor, or restore a backup made with this version")]
    TooNew {
        /// Where it is.
        path: String,
        /// Version found.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A read or a write failed; the operation did not happen.
    #[error("the state store failed ({what}): {detail}; check the disk holding the state directory")]
    Io {
        /// Which operation.
        what: &'static str,
        /// What failed.
        detail: String,
    },
    /// The store belongs to hosts with another master key.
    #[error("the state store was set up by hosts with another master key; give this host the same master key as the others (the key file, or $TRESOR_MASTER_KEY), or its own state store")]
    WrongKey,
    /// A stored record does not parse (damage, or a bug).
    #[error("the state store holds a damaged record ({detail}); restore the state directory from a backup")]
    Damaged {
        /// What is wrong.
        detail: String,
    },
}

/// The operations a state backend provides. Each call is one transaction:
/// when it returns `Ok`, the change is durable (it survives SIGKILL and a
/// power cut); when it returns `Err`, nothing changed.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync + 'static {
    /// Insert a lease, or replace the lease with the same id.
    async fn put_lease(&self, lease: &LeaseRecord) -> Result<(), StateError>;
    /// The lease with this id.
    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StateError>;
    /// Forget a lease; true when it existed.
    async fn delete_lease(&self, id: &str) -> Result<bool, StateError>;
    /// Every lease whose id starts with `prefix`, ordered by id.
    async fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StateError>;
    /// Leases issued with the token of this accessor, ordered by id.
    async fn leases_of_token(&self, accessor: &str) -> Result<Vec<LeaseRecord>, StateError>;
    /// Up to `limit` leases that need the sweeper at `now_ms`: active ones
    /// past their end, pending ones whose next attempt is due; soonest end first.
    async fn due_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<LeaseRecord>, StateError>;
    /// The soonest time the sweeper has work (an active lease's end or a
    /// pending lease's next attempt), if any.
    async fn next_due(&self) -> Result<Option<u64>, StateError>;

    /// The store-wide value of `key` (the token salt, the master key's check
    /// value): the stored one, or `candidate` stored now when there is none
    /// (the first host to ask sets it for all).
    async fn claim_meta(&self, key: &str, candidate: &str) -> Result<String, StateError>;
    /// The store-wide value of `key`, if any.
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StateError>;
    /// Set the store-wide value of `key` to `value` if it is `expected` now
    /// (`None`: absent). False when another writer changed it first.
    async fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StateError>;
    /// Insert a token, or replace the token with the same hash.
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StateError>;
    /// The token with this hash.
    async fn get_token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError>;
    /// The token with this accessor.
    async fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>, StateError>;
    /// Forget a token; true when it existed.
    async fn delete_token(&self, hash: &str) -> Result<bool, StateError>;
    /// Forget every bootstrap token and every token expired at `now_unix`;
    /// how many bootstrap tokens there were.
    async fn delete_bootstrap_tokens(&self, now_unix: u64) -> Result<usize, StateError>;
    /// How many tokens are live (unexpired) at `now_unix`.
    async fn live_tokens(&self, now_unix: u64) -> Result<usize, StateError>;

    /// Whether this host leads the singleton job `job` (the lease sweeper,
    /// ...): taken when no other host holds it, kept for as long as this
    /// host lives and reaches the store. A host that stops or loses the
    /// store gives the job up, and another takes it on its next call. One
    /// host alone (the embedded store) always leads.
    async fn lead(&self, job: &str) -> Result<bool, StateError>;

    /// Record `member`'s report (insert or replace), and forget hosts not
    /// seen since `forget_before_ms`.
    async fn heartbeat(&self, member: &Member, forget_before_ms: u64) -> Result<(), StateError>;
    /// The hosts seen since `since_ms`, oldest first.
    async fn members(&self, since_ms: u64) -> Result<Vec<Member>, StateError>;
    /// Answer when the store can be used (for health checks).
    async fn ping(&self) -> Result<(), StateError>;

    /// Queue webhook deliveries, all or none; a row whose id is already
    /// queued is kept as it is.
    async fn outbox_push(&self, rows: &[OutboxRecord]) -> Result<(), StateError>;
    /// Up to `limit` deliveries due at `now_ms`, in the order they were queued.
    async fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxRecord>, StateError>;
    /// A delivery succeeded: forget it.
    async fn outbox_delete(&self, id: &str) -> Result<(), StateError>;
    /// A delivery failed: record the attempt and when to try again.
    async fn outbox_retry(&self, id: &str, attempts: u32, next_attempt_ms: u64, error: &str) -> Result<(), StateError>;
    /// How many deliveries are queued.
    async fn outbox_len(&self) -> Result<u64, StateError>;

    /// Store `record` if the stored one has revision `expected`
    /// (`None`: there must be none); false when another change came first.
    async fn swap_rotation(&self, record: &RotationRecord, expected: Option<u64>) -> Result<bool, StateError>;
    /// The rotation record of the secret at `path`.
    async fn get_rotation(&self, path: &str) -> Result<Option<RotationRecord>, StateError>;
    /// Forget the rotation record of `path`; true when it existed.
    async fn delete_rotation(&self, path: &str) -> Result<bool, StateError>;
    /// Every rotation record whose path starts with `prefix`, ordered by path.
    async fn list_rotations(&self, prefix: &str) -> Result<Vec<RotationRecord>, StateError>;
    /// Up to `limit` records due at `now_ms`, soonest first.
    async fn due_rotations(&self, now_ms: u64, limit: usize) -> Result<Vec<RotationRecord>, StateError>;

    /// Insert or replace the expiry of the secret `record.path`.
    async fn put_expiry(&self, record: &ExpiryRecord) -> Result<(), StateError>;
    /// Forget the expiry of `path`; false when there was none.
    async fn delete_expiry(&self, path: &str) -> Result<bool, StateError>;
    /// The expiries of secrets starting with `prefix`, soonest first.
    async fn list_expiries(&self, prefix: &str) -> Result<Vec<ExpiryRecord>, StateError>;
    /// Up to `limit` expiries whose next check is due at `now_ms`, soonest first.
    async fn due_expiries(&self, now_ms: u64, limit: usize) -> Result<Vec<ExpiryRecord>, StateError>;
}

/// The host state store. Clone it freely: clones share one backend.
#[derive(Clone)]
pub struct StateStore {
    backend: Arc<dyn StateBackend>,
    /// The singleton jobs this host leads, as [`StateStore::lead`] last found.
    led: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

impl StateStore {
    /// A store on `backend`.
    pub fn new(backend: impl StateBackend) -> StateStore {
        StateStore {
            backend: Arc::new(backend),
            led: Default::default(),
        }
    }

    /// Open (or create) the embedded SQLite store at `path`.
    pub fn open_embedded(path: &std::path::Path) -> Result<StateStore, StateError> {
        Ok(StateStore::new(SqliteBackend::open(path)?))
    }

    /// Connect to the PostgreSQL store at `url` (a `postgresql://` URL or
    /// `key=value` string; `password` wins over one in the URL) and bring
    /// its schema up to date. With `ca_file` the connection is TLS,
    /// verified against that CA.
    pub async fn connect_postgres(
        url: &str,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<StateStore, StateError> {
        Ok(StateStore::new(PostgresBackend::connect(url, password, ca_file).await?))
    }

    /// Queue webhook deliveries durably (all or none).
    pub async fn outbox_push(&self, rows: &[OutboxRecord]) -> Result<(), StateError> {
        self.backend.outbox_push(rows).await
    }

    /// Deliveries due at `now_ms`, in the order they were queued.
    pub async fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxRecord>, StateError> {
        self.backend.outbox_due(now_ms, limit).await
    }

    /// Forget a delivered row.
    pub async fn outbox_delete(&self, id: &str) -> Result<(), StateError> {
        self.backend.outbox_delete(id).await
    }

    /// Record a failed attempt of a row and when to try again.
    pub async fn outbox_retry(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
        error: &str,
    ) -> Result<(), StateError> {
        self.backend.outbox_retry(id, attempts, next_attempt_ms, error).await
    }

    /// How many deliveries are queued.
    pub async fn outbox_len(&self) -> Result<u64, StateError> {
        self.backend.outbox_len().await
    }

    /// Store a rotation record if the stored one still has revision
    /// `expected` (`None`: none stored); false when another change won.
    pub async fn swap_rotation(&self, record: &RotationRecord, expected: Option<u64>) -> Result<bool, StateError> {
        self.backend.swap_rotation(record, expected).await
    }

    /// The rotation record of `path` (`<mount>/<path>`).
    pub async fn get_rotation(&self, path: &str) -> Result<Option<RotationRecord>, StateError> {
        self.backend.get_rotation(path).await
    }

    /// Forget the rotation record of `path`.
    pub async fn delete_rotation(&self, path: &str) -> Result<bool, StateError> {
        self.backend.delete_rotation(path).await
    }

    /// Rotation records under `prefix`, ordered by path.
    pub async fn list_rotations(&self, prefix: &str) -> Result<Vec<RotationRecord>, StateError> {
        self.backend.list_rotations(prefix).await
    }

    /// Record when the secret `record.path` expires (insert or replace).
    pub async fn put_expiry(&self, record: &ExpiryRecord) -> Result<(), StateError> {
        self.backend.put_expiry(record).await
    }

    /// Forget the expiry of `path` (its latest version has none, or it is gone).
    pub async fn delete_expiry(&self, path: &str) -> Result<bool, StateError> {
        self.backend.delete_expiry(path).await
    }

    /// The expiries of the secrets starting with `prefix`, soonest first.
    pub async fn list_expiries(&self, prefix: &str) -> Result<Vec<ExpiryRecord>, StateError> {
        self.backend.list_expiries(prefix).await
    }

    /// Expiries whose next check (a warning, or the expiry) is due at `now_ms`.
    pub async fn due_expiries(&self, now_ms: u64, limit: usize) -> Result<Vec<ExpiryRecord>, StateError> {
        self.backend.due_expiries(now_ms, limit).await
    }

    /// Rotation records due at `now_ms`, soonest first.
    pub async fn due_rotations(&self, now_ms: u64, limit: usize) -> Result<Vec<RotationRecord>, StateError> {
        self.backend.due_rotations(now_ms, limit).await
    }

    /// Record a lease durably (insert or replace).
    pub async fn put_lease(&self, lease: LeaseRecord) -> Result<(), StateError> {
        self.backend.put_lease(&lease).await
    }

    /// The lease with this id, if any.
    pub async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StateError> {
        self.backend.get_lease(id).await
    }

    /// Forget a lease; true when it existed.
    pub async fn delete_lease(&self, id: &str) -> Result<bool, StateError> {
        self.backend.delete_lease(id).await
    }

    /// Leases whose id starts with `prefix`, ordered by id.
    pub async fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StateError> {
        self.backend.list_leases(prefix).await
    }

    /// Leases issued with the token of `accessor`.
    pub async fn leases_of_token(&self, accessor: &str) -> Result<Vec<LeaseRecord>, StateError> {
        self.backend.leases_of_token(accessor).await
    }

    /// Leases the sweeper must handle now.
    pub async fn due_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<LeaseRecord>, StateError> {
        self.backend.due_leases(now_ms, limit).await
    }

    /// When the sweeper next has work.
    pub async fn next_due(&self) -> Result<Option<u64>, StateError> {
        self.backend.next_due().await
    }

    /// The token salt (set by the first caller, `candidate`).
    pub async fn token_salt(&self, candidate: &str) -> Result<String, StateError> {
        self.backend.claim_meta("token_salt", candidate).await
    }

    /// Check that this store was made by hosts with the same master key:
    /// the first host stores `check` (a value derived from its key, see
    /// [`crate::keys::MasterKey::check_value`]); a host whose key gives
    /// another value is refused, before it can write anything sealed with
    /// the wrong key.
    pub async fn check_master_key(&self, check: &str) -> Result<(), StateError> {
        let stored = self.backend.claim_meta("master_key_check", check).await?;
        if stored == check {
            Ok(())
        } else {
            Err(StateError::WrongKey)
        }
    }

    /// The key generations (see [`crate::keys::keyring`]); `None` when no
    /// host ever rotated the master key.
    pub async fn keyring(&self) -> Result<Option<crate::keys::KeyringRecord>, StateError> {
        self.json_meta(KEYRING_META).await
    }

    /// Replace the stored keyring by `new` if it is still `old`; false when
    /// another host changed it first.
    pub async fn swap_keyring(
        &self,
        old: Option<&crate::keys::KeyringRecord>,
        new: &crate::keys::KeyringRecord,
    ) -> Result<bool, StateError> {
        self.swap_json_meta(KEYRING_META, old, new).await
    }

    /// The progress of the reseal after a master key rotation (see
    /// [`ResealProgress`]).
    pub async fn reseal_progress(&self) -> Result<Option<ResealProgress>, StateError> {
        self.json_meta(RESEAL_META).await
    }

    /// Replace the stored reseal progress if it is still `old`.
    pub async fn swap_reseal_progress(
        &self,
        old: Option<&ResealProgress>,
        new: &ResealProgress,
    ) -> Result<bool, StateError> {
        self.swap_json_meta(RESEAL_META, old, new).await
    }

    async fn json_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.backend.get_meta(key).await? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| StateError::Io {
                what: "reading a store-wide value",
                detail: format!("`{key}` is not valid: {e}"),
            }),
        }
    }

    async fn swap_json_meta<T: serde::Serialize>(
        &self,
        key: &str,
        old: Option<&T>,
        new: &T,
    ) -> Result<bool, StateError> {
        let encode = |v: &T| {
            serde_json::to_string(v).map_err(|e| StateError::Io {
                what: "writing a store-wide value",
                detail: e.to_string(),
            })
        };
        let old = old.map(encode).transpose()?;
        self.backend.swap_meta(key, old.as_deref(), &encode(new)?).await
    }

    /// Record a token durably (insert or replace).
    pub async fn put_token(&self, token: TokenRecord) -> Result<(), StateError> {
        self.backend.put_token(&token).await
    }

    /// The token with this hash.
    pub async fn get_token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        self.backend.get_token(hash).await
    }

    /// The token with this accessor.
    pub async fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>, StateError> {
        self.backend.token_by_accessor(accessor).await
    }

    /// Forget a token; true when it existed.
    pub async fn delete_token(&self, hash: &str) -> Result<bool, StateError> {
        self.backend.delete_token(hash).await
    }

    /// Forget the bootstrap tokens (and expired ones); how many bootstrap ones.
    pub async fn delete_bootstrap_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        self.backend.delete_bootstrap_tokens(now_unix).await
    }

    /// How many tokens are live at `now_unix`.
    pub async fn live_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        self.backend.live_tokens(now_unix).await
    }

    /// Whether this host leads the singleton job `job` (see
    /// [`StateBackend::lead`]); call it before each round of the job.
    pub async fn lead(&self, job: &str) -> Result<bool, StateError> {
        let leads = self.backend.lead(job).await;
        let mut led = self.led.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(leads, Ok(true)) {
            led.insert(job.to_string());
        } else {
            led.remove(job);
        }
        leads
    }

    /// The singleton jobs this host leads.
    pub fn led_jobs(&self) -> Vec<String> {
        let led = self.led.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        led.iter().cloned().collect()
    }

    /// Report `member` (this host) as alive now.
    pub async fn heartbeat(&self, member: &Member, forget_before_ms: u64) -> Result<(), StateError> {
        self.backend.heartbeat(member, forget_before_ms).await
    }

    /// The hosts seen since `since_ms`.
    pub async fn members(&self, since_ms: u64) -> Result<Vec<Member>, StateError> {
        self.backend.members(since_ms).await
    }

    /// Whether the store can be used now.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.backend.ping().await
    }
}

/// A token's groups or attributes as stored (JSON text).
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

/// A rotation record as stored (JSON text).
fn rotation_to_json(record: &RotationRecord) -> String {
    serde_json::to_string(record).expect("rotation records serialize")
}

/// Stored JSON text back into a rotation record.
fn rotation_from_json(text: &str) -> Result<RotationRecord, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Damaged {
        detail: format!("a rotation record does not parse: {e}"),
    })
}

/// Stored JSON text back into groups or attributes.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Damaged {
        detail: format!("a token's principal does not parse: {e}"),
    })
}
