//! The token store: bearer tokens, each standing for a Cedar principal
//! (name, groups, attributes) until it expires or is revoked.
//!
//! A token is `tvs.` followed by 256 random bits from `ring::rand`
//! (base64url). The store never keeps a token: only `SHA-256(salt ‖ token)`,
//! with a random 256-bit salt per store. Tokens are high-entropy random
//! values, so a fast salted hash is enough: nothing can be guessed from a
//! hash, and the salt keeps hashes from one store useless against another. A
//! slow password hash (PBKDF2) with a salt per token would make every
//! request scan all tokens; a salt per store keeps lookups a hash-map probe.
//!
//! Each token also has an *accessor*: a random, non-secret handle that
//! administrators use to look up or revoke a token without knowing it.
//!
//! The store is one JSON file (mode 0600), rewritten on every change through
//! a temporary file that is fsynced and renamed over the old one (then the
//! directory is fsynced): a crash leaves the old or the new file, never half
//! of one. One server owns a token file at a time.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::policy::Principal;

/// Prefix of every token Tresor issues.
pub const TOKEN_PREFIX: &str = "tvs.";

/// Format version of the token file.
const FILE_FORMAT: u32 = 1;

/// What can go wrong with the token store. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read, written or synced.
    #[error("token store {}: {what}: {source}; check that the state directory is writable", path.display())]
    Io {
        /// The token file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a token store this version understands.
    #[error("token store {} is damaged or of another format: {detail}; move it aside to start a new store (all tokens are then invalid)", path.display())]
    Damaged {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Another server (or another store in this process) has the file open.
    #[error("token store {} is in use by another Tresor server: stop that server, or give this one its own state_dir", path.display())]
    Locked {
        /// The token file.
        path: PathBuf,
    },
    /// No randomness could be had.
    #[error("no randomness for a new token: the system RNG failed")]
    Random,
    /// The request for a token is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// What a new token stands for.
#[derive(Clone, Debug, Default)]
pub struct TokenSpec {
    /// The principal (name, groups, attributes) the token authenticates as.
    /// An empty name gives the token an identity of its own:
    /// `token-<first 8 characters of its accessor>`.
    pub principal: Principal,
    /// Lifetime in seconds; 0 = never expires.
    pub ttl_seconds: u64,
    /// How long after its creation renewals may keep the token alive, in
    /// seconds; 0 = no limit. Ignored for a token that never expires.
    pub max_ttl_seconds: u64,
    /// Made by the server at startup (a bootstrap root token); the dev
    /// server revokes the previous one when it starts again.
    pub bootstrap: bool,
}

/// Which token an operation is about: the token itself, or its accessor.
#[derive(Clone, Copy)]
pub enum TokenRef<'a> {
    /// The token (its bearer is acting on itself, or an admin holds it).
    Token(&'a str),
    /// The token's non-secret accessor.
    Accessor(&'a str),
}

impl std::fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenRef::Token(_) => f.write_str("Token(<redacted>)"),
            TokenRef::Accessor(a) => f.debug_tuple("Accessor").field(a).finish(),
        }
    }
}

/// A token's description (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Non-secret handle of the token.
    pub accessor: String,
    /// Who the token authenticates as.
    pub principal: Principal,
    /// Creation time, unix seconds.
    pub created_unix: u64,
    /// Lifetime it was created with, seconds (0 = no expiry).
    pub ttl_seconds: u64,
    /// Expiry, unix seconds (`None` = never).
    pub expires_unix: Option<u64>,
    /// The latest expiry renewals can reach, unix seconds (`None` = no limit).
    pub max_expires_unix: Option<u64>,
}

impl TokenInfo {
    /// Whether [`TokenStore::renew`] can extend it: it has a TTL, and room
    /// before its maximum lifetime.
    pub fn renewable(&self) -> bool {
        self.ttl_seconds > 0 && self.max_expires_unix.is_none_or(|max| self.expires_unix < Some(max))
    }

    /// Seconds left before expiry (0 for a token that never expires, like Vault).
    pub fn remaining_seconds(&self, now: u64) -> u64 {
        self.expires_unix.map_or(0, |e| e.saturating_sub(now))
    }
}

/// One stored token (its hash, never the token).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    /// Hex SHA-256 of salt ‖ token.
    hash: String,
    accessor: String,
    principal: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    created_unix: u64,
    #[serde(default)]
    ttl_seconds: u64,
    #[serde(default)]
    expires_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_expires_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    bootstrap: bool,
}

impl Record {
    fn info(&self) -> TokenInfo {
        TokenInfo {
            accessor: self.accessor.clone(),
            principal: Principal {
                name: self.principal.clone(),
                groups: self.groups.clone(),
                attributes: self.attributes.clone(),
            },
            created_unix: self.created_unix,
            ttl_seconds: self.ttl_seconds,
            expires_unix: self.expires_unix,
            max_expires_unix: self.max_expires_unix,
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_unix.is_some_and(|e| e <= now)
    }
}

/// The token file.
#[derive(Serialize, Deserialize)]
struct StoreFile {
    format: u32,
    /// Hex of the store's 256-bit salt.
    salt: String,
    tokens: Vec<Record>,
}

struct State {
    salt: Vec<u8>,
    /// By hash.
    tokens: HashMap<String, Record>,
}

/// Tokens and the principals they stand for, persisted in one file.
/// `Send + Sync`; share it as `Arc<TokenStore>`.
pub struct TokenStore {
    path: PathBuf,
    rng: SystemRandom,
    state: Mutex<State>,
    /// `<file>.lock`, locked for the store's lifetime: each server keeps the
    /// tokens in memory and rewrites the whole file, so two servers on one
    /// file would undo each other's changes.
    _lock: fs::File,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenStore {
    /// Open the store at `path`, creating an empty one (with a fresh salt)
    /// when the file does not exist. Expired tokens are dropped. The store
    /// is locked until dropped: a second `open` of the same file, here or
    /// in another process, fails with [`TokenError::Locked`].
    pub fn open(path: &Path) -> Result<TokenStore, TokenError> {
        let io_err = |what, source| TokenError::Io {
            path: path.into(),
            what,
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io_err("creating its directory", e))?;
        }
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock = crate::files::owner_only()
            .write(true)
            .create(true)
            .truncate(false)
            .open(PathBuf::from(lock_name))
            .map_err(|e| io_err("opening its lock file", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(TokenError::Locked { path: path.into() }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", e)),
        }
        let rng = SystemRandom::new();
        let state = match fs::read(path) {
            Ok(bytes) => {
                let file: StoreFile = serde_json::from_slice(&bytes).map_err(|e| TokenError::Damaged {
                    path: path.into(),
                    // Position and kind only: serde's message can quote file contents.
                    detail: format!(
                        "unreadable JSON ({:?} error at line {}, column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                })?;
                if file.format != FILE_FORMAT {
                    return Err(TokenError::Damaged {
                        path: path.into(),
                        detail: format!("format {} (this Tresor reads format {FILE_FORMAT})", file.format),
                    });
                }
                let salt =
                    hex::decode(&file.salt)
                        .ok()
                        .filter(|s| s.len() == 32)
                        .ok_or_else(|| TokenError::Damaged {
                            path: path.into(),
                            detail: "the salt is not 64 hex digits".into(),
                        })?;
                let now = now_unix();
                let tokens = file
                    .tokens
                    .into_iter()
                    .filter(|r| !r.expired(now))
                    .map(|r| (r.hash.clone(), r))
                    .collect();
                State { salt, tokens }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut salt = vec![0u8; 32];
                rng.fill(&mut salt).map_err(|_| TokenError::Random)?;
                let state = State {
                    salt,
                    tokens: HashMap::new(),
                };
                persist(path, &state)?;
                state
            }
            Err(e) => return Err(io_err("reading", e)),
        };
        Ok(TokenStore {
            path: path.into(),
            rng,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn random(&self, bytes: usize) -> Result<String, TokenError> {
        let mut buf = Zeroizing::new(vec![0u8; bytes]);
        self.rng.fill(&mut buf).map_err(|_| TokenError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(&*buf))
    }

    /// Create a token for `spec`; returns the token (shown once, never
    /// stored) and its description.
    pub fn create(&self, spec: &TokenSpec) -> Result<(Zeroizing<String>, TokenInfo), TokenError> {
        let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", self.random(32)?));
        let info = self.insert(&token, spec)?;
        Ok((token, info))
    }

    /// Store a token chosen by the operator (`tresor server --dev
    /// --dev-root-token-id`). It must be at least 16 characters.
    pub fn create_with_id(&self, token: &str, spec: &TokenSpec) -> Result<TokenInfo, TokenError> {
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::Invalid(
                "a chosen token must be at least 16 characters without spaces".into(),
            ));
        }
        self.insert(token, spec)
    }

    fn insert(&self, token: &str, spec: &TokenSpec) -> Result<TokenInfo, TokenError> {
        let accessor = self.random(18)?;
        // A token without a name of its own is its own principal, never its
        // creator's: `token-` and the start of its (non-secret) accessor.
        let principal = match spec.principal.name.as_str() {
            "" => format!("token-{}", &accessor[..8]),
            name => name.to_string(),
        };
        let now = now_unix();
        let mut state = self.lock();
        let hash = hash(&state.salt, token);
        let record = Record {
            hash: hash.clone(),
            accessor,
            principal,
            groups: spec.principal.groups.clone(),
            attributes: spec.principal.attributes.clone(),
            created_unix: now,
            ttl_seconds: spec.ttl_seconds,
            expires_unix: (spec.ttl_seconds > 0).then(|| now.saturating_add(spec.ttl_seconds)),
            max_expires_unix: (spec.ttl_seconds > 0 && spec.max_ttl_seconds > 0)
                .then(|| now.saturating_add(spec.max_ttl_seconds.max(spec.ttl_seconds))),
            bootstrap: spec.bootstrap,
        };
        let info = record.info();
        let previous = state.tokens.insert(hash.clone(), record);
        state.tokens.retain(|_, r| !r.expired(now));
        if let Err(e) = persist(&self.path, &state) {
            // Not persisted: not valid either.
            match previous {
                Some(p) => state.tokens.insert(hash, p),
                None => state.tokens.remove(&hash),
            };
            return Err(e);
        }
        Ok(info)
    }

    /// The live (unexpired) token's description, or `None`.
    pub fn lookup(&self, token: &str) -> Option<TokenInfo> {
        let state = self.lock();
        let record = state.tokens.get(&hash(&state.salt, token))?;
        (!record.expired(now_unix())).then(|| record.info())
    }

    /// A digest of a presented token for the audit log: 16 hex digits of
    /// SHA-256 over a domain tag, the store's salt and the token. It names
    /// the same token the same way every time on this store, and differs
    /// from the hash the store keeps, so the audit log never holds anything
    /// that finds or unlocks a token.
    pub fn audit_digest(&self, token: &str) -> String {
        let state = self.lock();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tresor audit token digest\0");
        ctx.update(&state.salt);
        ctx.update(token.as_bytes());
        hex::encode(&ctx.finish().as_ref()[..8])
    }

    /// The live token with this accessor, or `None`.
    pub fn lookup_accessor(&self, accessor: &str) -> Option<TokenInfo> {
        let now = now_unix();
        self.lock()
            .tokens
            .values()
            .find(|r| r.accessor == accessor && !r.expired(now))
            .map(Record::info)
    }

    /// Renew a live token: it now expires `increment` seconds from now (its
    /// creation TTL when `increment` is 0), but never after its maximum
    /// lifetime. `Ok(None)` when no live token matches.
    pub fn renew(&self, which: TokenRef<'_>, increment: u64) -> Result<Option<TokenInfo>, TokenError> {
        let now = now_unix();
        let mut state = self.lock();
        let key = match which {
            TokenRef::Token(token) => hash(&state.salt, token),
            TokenRef::Accessor(accessor) => match state.tokens.values().find(|r| r.accessor == accessor) {
                Some(r) => r.hash.clone(),
                None => return Ok(None),
            },
        };
        let Some(record) = state.tokens.get_mut(&key).filter(|r| !r.expired(now)) else {
            return Ok(None);
        };
        if record.ttl_seconds == 0 {
            return Err(TokenError::Invalid(
                "this token never expires: there is nothing to renew".into(),
            ));
        }
        let wanted = now.saturating_add(if increment == 0 { record.ttl_seconds } else { increment });
        let expires = record.max_expires_unix.map_or(wanted, |max| wanted.min(max));
        let before = record.expires_unix.replace(expires);
        let info = record.info();
        if let Err(e) = persist(&self.path, &state) {
            // Not persisted: not renewed either.
            if let Some(r) = state.tokens.get_mut(&key) {
                r.expires_unix = before;
            }
            return Err(e);
        }
        Ok(Some(info))
    }

    /// Revoke a token; `false` when it was not live.
    pub fn revoke(&self, token: &str) -> Result<bool, TokenError> {
        let mut state = self.lock();
        let h = hash(&state.salt, token);
        self.remove_where(&mut state, |r| r.hash == h)
    }

    /// Revoke the token with this accessor; `false` when it was not live.
    pub fn revoke_accessor(&self, accessor: &str) -> Result<bool, TokenError> {
        let mut state = self.lock();
        self.remove_where(&mut state, |r| r.accessor == accessor)
    }

    /// Revoke every bootstrap root token (the dev server does this before
    /// printing a new one). Returns how many were revoked.
    pub fn revoke_bootstrap(&self) -> Result<usize, TokenError> {
        let mut state = self.lock();
        let before = state.tokens.len();
        let now = now_unix();
        let kept: HashMap<String, Record> = state
            .tokens
            .drain()
            .filter(|(_, r)| !r.bootstrap && !r.expired(now))
            .collect();
        let removed = before - kept.len();
        state.tokens = kept;
        persist(&self.path, &state)?;
        Ok(removed)
    }

    /// Number of live tokens.
    pub fn len(&self) -> usize {
        let now = now_unix();
        self.lock().tokens.values().filter(|r| !r.expired(now)).count()
    }

    /// True when no live token exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove_where(&self, state: &mut State, matches: impl Fn(&Record) -> bool) -> Result<bool, TokenError> {
        let now = now_unix();
        let Some(key) = state
            .tokens
            .iter()
            .find(|(_, r)| matches(r))
            .map(|(k, r)| (k.clone(), r.expired(now)))
        else {
            return Ok(false);
        };
        let record = state.tokens.remove(&key.0);
        state.tokens.retain(|_, r| !r.expired(now));
        if let Err(e) = persist(&self.path, state) {
            if let Some(r) = record {
                state.tokens.insert(key.0, r);
            }
            return Err(e);
        }
        Ok(!key.1)
    }
}

fn hash(salt: &[u8], token: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt);
    ctx.update(token.as_bytes());
    hex::encode(ctx.finish())
}

/// Write the store through a synced temporary file renamed over the old one.
fn persist(path: &Path, state: &State) -> Result<(), TokenError> {
    let io_err = |what, source| TokenError::Io {
        path: path.into(),
        what,
        source,
    };
    let mut tokens: Vec<Record> = state.tokens.values().cloned().collect();
    tokens.sort_by(|a, b| (a.created_unix, &a.accessor).cmp(&(b.created_unix, &b.accessor)));
    let file = StoreFile {
        format: FILE_FORMAT,
        salt: hex::encode(&state.salt),
        tokens,
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| io_err("encoding", io::Error::other(e)))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = crate::files::owner_only()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::files::sync_dir(dir)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("writing", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ttl: u64) -> TokenSpec {
        TokenSpec {
            principal: Principal {
                name: name.into(),
                groups: vec!["apps".into()],
                attributes: [("team".to_string(), "billing".to_string())].into(),
            },
            ttl_seconds: ttl,
            max_ttl_seconds: 0,
            bootstrap: false,
        }
    }

    #[test]
    fn create_lookup_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(&path).unwrap();
        let (token, info) = store.create(&spec("bot", 3600)).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(store.lookup(&token).unwrap().principal.name, "bot");
        assert_eq!(
            store.lookup_accessor(&info.accessor).unwrap().principal.groups,
            vec!["apps"]
        );
        assert!(store.lookup("tvs.nope").is_none());

        // The file holds hashes, never the token; it is private.
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token[TOKEN_PREFIX.len()..]));
        #[cfg(unix)]
        {
            let mode = fs::metadata(&path).unwrap().permissions();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        }

        // Reopened, the token still works; revoked, it does not.
        drop(store);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.lookup(&token).unwrap(), info);
        assert!(store.revoke(&token).unwrap());
        assert!(!store.revoke(&token).unwrap());
        assert!(store.lookup(&token).is_none());
        drop(store);
        assert!(TokenStore::open(&path).unwrap().lookup(&token).is_none());
    }

    #[test]
    fn expired_tokens_are_refused_and_bootstrap_tokens_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("t.json")).unwrap();
        let (token, _) = store.create(&spec("short", 1)).unwrap();
        assert!(store.lookup(&token).is_some());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(store.lookup(&token).is_none());

        let root = TokenSpec {
            bootstrap: true,
            ..spec("root", 0)
        };
        let (old, _) = store.create(&root).unwrap();
        let chosen = "dev-root-token-0123456789";
        store.create_with_id(chosen, &spec("other", 0)).unwrap();
        assert_eq!(store.revoke_bootstrap().unwrap(), 1);
        assert!(store.lookup(&old).is_none());
        assert_eq!(store.lookup(chosen).unwrap().principal.name, "other");
        assert!(store.create_with_id("short", &spec("x", 0)).is_err());
    }

    #[test]
    fn renewal_extends_a_live_token_up_to_its_maximum_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = TokenStore::open(&path).unwrap();
        let capped = TokenSpec {
            max_ttl_seconds: 7200,
            ..spec("capped", 60)
        };
        let (token, info) = store.create(&capped).unwrap();
        let created = info.created_unix;
        assert_eq!(info.expires_unix, Some(created + 60));
        assert_eq!(info.max_expires_unix, Some(created + 7200));
        assert!(info.renewable());

        // By the token, with an increment: an hour from now.
        let renewed = store.renew(TokenRef::Token(&token), 3600).unwrap().unwrap();
        let expires = renewed.expires_unix.unwrap();
        assert!((created + 3600..=created + 3602).contains(&expires), "{expires}");
        // By accessor, asking for more than the maximum: capped, and no longer renewable.
        let renewed = store
            .renew(TokenRef::Accessor(&info.accessor), 86_400)
            .unwrap()
            .unwrap();
        assert_eq!(renewed.expires_unix, Some(created + 7200));
        assert!(!renewed.renewable());
        // Persisted: a reopened store has the new expiry.
        drop(store);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.lookup(&token).unwrap().expires_unix, Some(created + 7200));

        // Without an increment, the creation TTL again (shortening is allowed, as in Vault).
        let renewed = store.renew(TokenRef::Token(&token), 0).unwrap().unwrap();
        assert!(renewed.expires_unix.unwrap() <= now_unix() + 60);

        // Unknown, expired or never-expiring tokens.
        assert!(store.renew(TokenRef::Token("tvs.nope"), 60).unwrap().is_none());
        assert!(store.renew(TokenRef::Accessor("nope"), 60).unwrap().is_none());
        let (forever, _) = store.create(&spec("forever", 0)).unwrap();
        let err = store.renew(TokenRef::Token(&forever), 60).unwrap_err();
        assert!(err.to_string().contains("never expires"), "{err}");
        let (short, _) = store.create(&spec("short", 1)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(store.renew(TokenRef::Token(&short), 60).unwrap().is_none());
        assert!(store.lookup(&short).is_none());
    }

    #[test]
    fn one_store_per_file_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/tokens.json");
        let first = TokenStore::open(&path).unwrap();
        let (token, _) = first.create(&spec("bot", 0)).unwrap();
        let err = TokenStore::open(&path).unwrap_err();
        assert!(matches!(err, TokenError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("in use by another Tresor server"), "{err}");
        // The refused open changed nothing; once the first is gone, it works.
        assert!(first.lookup(&token).is_some());
        drop(first);
        assert!(TokenStore::open(&path).unwrap().lookup(&token).is_some());
    }

    #[test]
    fn damaged_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(&path, "{not json").unwrap();
        let e = TokenStore::open(&path).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
