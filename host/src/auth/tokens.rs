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
//! Tokens live in the host [state store](crate::state), so several hosts on
//! one PostgreSQL share them: a token made on one host works on every other
//! at once (a host that does not know a token asks the store), and one
//! revoked on any host is refused everywhere within [`FRESH`] (a host
//! re-checks a token it knows once it is that old). A `tokens.json` from an
//! earlier Tresor is imported at start and renamed `tokens.json.imported`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::policy::Principal;
use crate::state::{StateError, StateStore, TokenRecord};

/// Prefix of every token Tresor issues.
pub const TOKEN_PREFIX: &str = "tvs.";

/// How long a host trusts what it knows of a token before asking the state
/// store again: a revocation on another host takes effect within this.
pub const FRESH: Duration = Duration::from_secs(1);

/// Format version of the token file of earlier versions.
const FILE_FORMAT: u32 = 1;

/// What can go wrong with the token store. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A token file of an earlier version could not be read or renamed.
    #[error("token file {}: {what}: {source}; check that the state directory is writable", path.display())]
    Io {
        /// The token file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A token file of an earlier version is not one this version reads.
    #[error("token file {} is damaged or of another format: {detail}; move it aside to start without its tokens (they are then invalid)", path.display())]
    Damaged {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The state store failed: nothing changed.
    #[error("token store: {0}")]
    State(#[from] StateError),
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

/// A token file of an earlier version.
#[derive(Deserialize)]
struct LegacyFile {
    format: u32,
    salt: String,
    tokens: Vec<TokenRecord>,
}

fn info(r: &TokenRecord) -> TokenInfo {
    TokenInfo {
        accessor: r.accessor.clone(),
        principal: Principal {
            name: r.principal.clone(),
            groups: r.groups.clone(),
            attributes: r.attributes.clone(),
        },
        created_unix: r.created_unix,
        ttl_seconds: r.ttl_seconds,
        expires_unix: r.expires_unix,
        max_expires_unix: r.max_expires_unix,
    }
}

fn expired(r: &TokenRecord, now: u64) -> bool {
    r.expires_unix.is_some_and(|e| e <= now)
}

/// A token this host knows, and when it last checked it with the store.
struct Known {
    record: TokenRecord,
    checked: Instant,
}

/// Tokens and the principals they stand for, kept in the host state store.
/// `Send + Sync`; share it as `Arc<TokenStore>`.
pub struct TokenStore {
    state: StateStore,
    salt: Vec<u8>,
    rng: SystemRandom,
    /// By hash.
    known: Mutex<HashMap<String, Known>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenStore {
    /// The tokens of `state`. `legacy_file` is where an earlier Tresor kept
    /// its tokens (`<state_dir>/tokens.json`): when it exists, its tokens are
    /// imported (they keep working) and it is renamed `<file>.imported`.
    pub async fn open(state: StateStore, legacy_file: Option<&Path>) -> Result<TokenStore, TokenError> {
        let rng = SystemRandom::new();
        let legacy = match legacy_file {
            Some(path) => read_legacy(path)?,
            None => None,
        };
        let candidate = match &legacy {
            // The old file's salt, so its hashes stay valid (unless the
            // store already has a salt of its own).
            Some(file) => file.salt.clone(),
            None => {
                let mut salt = [0u8; 32];
                rng.fill(&mut salt).map_err(|_| TokenError::Random)?;
                hex::encode(salt)
            }
        };
        let stored = state.token_salt(&candidate).await?;
        let salt = hex::decode(&stored)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or_else(|| StateError::Damaged {
                detail: "the token salt is not 64 hex digits".into(),
            })?;
        let store = TokenStore {
            state,
            salt,
            rng,
            known: Mutex::new(HashMap::new()),
        };
        if let (Some(file), Some(path)) = (legacy, legacy_file) {
            store.import(file, path, stored == candidate).await?;
        }
        Ok(store)
    }

    async fn import(&self, file: LegacyFile, path: &Path, same_salt: bool) -> Result<(), TokenError> {
        let now = now_unix();
        let live: Vec<TokenRecord> = file.tokens.into_iter().filter(|r| !expired(r, now)).collect();
        if same_salt {
            for r in &live {
                self.state.put_token(r.clone()).await?;
            }
            tracing::info!(path = %path.display(), tokens = live.len(), "imported the tokens of an earlier Tresor into the state store");
        } else {
            tracing::warn!(path = %path.display(), tokens = live.len(),
                "the state store already has tokens of its own: the tokens of this file are not imported (they no longer work); create new ones");
        }
        let mut done = path.as_os_str().to_owned();
        done.push(".imported");
        fs::rename(path, PathBuf::from(done)).map_err(|source| TokenError::Io {
            path: path.into(),
            what: "renaming it after the import",
            source,
        })
    }

    fn random(&self, bytes: usize) -> Result<String, TokenError> {
        let mut buf = Zeroizing::new(vec![0u8; bytes]);
        self.rng.fill(&mut buf).map_err(|_| TokenError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(&*buf))
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, record: TokenRecord) {
        self.known().insert(
            record.hash.clone(),
            Known {
                record,
                checked: Instant::now(),
            },
        );
    }

    /// Create a token for `spec`; returns the token (shown once, never
    /// stored) and its description.
    pub async fn create(&self, spec: &TokenSpec) -> Result<(Zeroizing<String>, TokenInfo), TokenError> {
        let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", self.random(32)?));
        let info = self.insert(&token, spec).await?;
        Ok((token, info))
    }

    /// Store a token chosen by the operator (`tresor server --dev
    /// --dev-root-token-id`). It must be at least 16 characters.
    pub async fn create_with_id(&self, token: &str, spec: &TokenSpec) -> Result<TokenInfo, TokenError> {
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::Invalid(
                "a chosen token must be at least 16 characters without spaces".into(),
            ));
        }
        self.insert(token, spec).await
    }

    async fn insert(&self, token: &str, spec: &TokenSpec) -> Result<TokenInfo, TokenError> {
        let accessor = self.random(18)?;
        // A token without a name of its own is its own principal, never its
        // creator's: `token-` and the start of its (non-secret) accessor.
        let principal = match spec.principal.name.as_str() {
            "" => format!("token-{}", &accessor[..8]),
            name => name.to_string(),
        };
        let now = now_unix();
        let record = TokenRecord {
            hash: hash(&self.salt, token),
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
        self.state.put_token(record.clone()).await?;
        let info = info(&record);
        self.remember(record);
        Ok(info)
    }

    /// The live (unexpired) token's description, or `None`. A token this
    /// host checked less than [`FRESH`] ago is answered from memory.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenInfo>, TokenError> {
        let h = hash(&self.salt, token);
        Ok(self.record(&h).await?.map(|r| info(&r)))
    }

    /// The live record with hash `h`, from memory when fresh, else from the store.
    async fn record(&self, h: &str) -> Result<Option<TokenRecord>, TokenError> {
        let now = now_unix();
        if let Some(k) = self.known().get(h).filter(|k| k.checked.elapsed() < FRESH) {
            return Ok((!expired(&k.record, now)).then(|| k.record.clone()));
        }
        match self.state.get_token(h).await? {
            Some(r) if !expired(&r, now) => {
                self.remember(r.clone());
                Ok(Some(r))
            }
            _ => {
                self.known().remove(h);
                Ok(None)
            }
        }
    }

    /// A digest of a presented token for the audit log: 16 hex digits of
    /// SHA-256 over a domain tag, the store's salt and the token. It names
    /// the same token the same way every time on this store, and differs
    /// from the hash the store keeps, so the audit log never holds anything
    /// that finds or unlocks a token.
    pub fn audit_digest(&self, token: &str) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tresor audit token digest\0");
        ctx.update(&self.salt);
        ctx.update(token.as_bytes());
        hex::encode(&ctx.finish().as_ref()[..8])
    }

    /// The live token with this accessor, or `None`.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenInfo>, TokenError> {
        let now = now_unix();
        Ok(self
            .state
            .token_by_accessor(accessor)
            .await?
            .filter(|r| !expired(r, now))
            .map(|r| info(&r)))
    }

    async fn find(&self, which: TokenRef<'_>) -> Result<Option<TokenRecord>, TokenError> {
        let now = now_unix();
        let found = match which {
            TokenRef::Token(token) => self.state.get_token(&hash(&self.salt, token)).await?,
            TokenRef::Accessor(accessor) => self.state.token_by_accessor(accessor).await?,
        };
        Ok(found.filter(|r| !expired(r, now)))
    }

    /// Renew a live token: it now expires `increment` seconds from now (its
    /// creation TTL when `increment` is 0), but never after its maximum
    /// lifetime. `Ok(None)` when no live token matches.
    pub async fn renew(&self, which: TokenRef<'_>, increment: u64) -> Result<Option<TokenInfo>, TokenError> {
        let Some(mut record) = self.find(which).await? else {
            return Ok(None);
        };
        if record.ttl_seconds == 0 {
            return Err(TokenError::Invalid(
                "this token never expires: there is nothing to renew".into(),
            ));
        }
        let now = now_unix();
        let wanted = now.saturating_add(if increment == 0 { record.ttl_seconds } else { increment });
        record.expires_unix = Some(record.max_expires_unix.map_or(wanted, |max| wanted.min(max)));
        self.state.put_token(record.clone()).await?;
        let info = info(&record);
        self.remember(record);
        Ok(Some(info))
    }

    /// Revoke a token; `false` when it was not live.
    pub async fn revoke(&self, token: &str) -> Result<bool, TokenError> {
        let found = self.find(TokenRef::Token(token)).await?;
        self.forget(hash(&self.salt, token), found.is_some()).await
    }

    /// Revoke the token with this accessor; `false` when it was not live.
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<bool, TokenError> {
        let Some(found) = self.state.token_by_accessor(accessor).await? else {
            return Ok(false);
        };
        let live = !expired(&found, now_unix());
        self.forget(found.hash, live).await
    }

    async fn forget(&self, h: String, live: bool) -> Result<bool, TokenError> {
        self.known().remove(&h);
        let existed = self.state.delete_token(&h).await?;
        Ok(existed && live)
    }

    /// Revoke every bootstrap root token (the dev server does this before
    /// printing a new one), and forget expired tokens. Returns how many
    /// bootstrap tokens were revoked.
    pub async fn revoke_bootstrap(&self) -> Result<usize, TokenError> {
        let n = self.state.delete_bootstrap_tokens(now_unix()).await?;
        self.known().clear();
        Ok(n)
    }

    /// True when no live token exists.
    pub async fn is_empty(&self) -> Result<bool, TokenError> {
        Ok(self.state.live_tokens(now_unix()).await? == 0)
    }
}

/// The tokens of an earlier version's file, if there is one.
fn read_legacy(path: &Path) -> Result<Option<LegacyFile>, TokenError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenError::Io {
                path: path.into(),
                what: "reading",
                source,
            })
        }
    };
    let file: LegacyFile = serde_json::from_slice(&bytes).map_err(|e| TokenError::Damaged {
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
    if hex::decode(&file.salt).map(|s| s.len()) != Ok(32) {
        return Err(TokenError::Damaged {
            path: path.into(),
            detail: "the salt is not 64 hex digits".into(),
        });
    }
    Ok(Some(file))
}

fn hash(salt: &[u8], token: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt);
    ctx.update(token.as_bytes());
    hex::encode(ctx.finish())
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

    async fn store_in(dir: &Path) -> TokenStore {
        let state = StateStore::open_embedded(&dir.join("state.db")).unwrap();
        TokenStore::open(state, Some(&dir.join("tokens.json"))).await.unwrap()
    }

    #[tokio::test]
    async fn create_lookup_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let (token, info) = store.create(&spec("bot", 3600)).await.unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(store.lookup(&token).await.unwrap().unwrap().principal.name, "bot");
        assert_eq!(
            store
                .lookup_accessor(&info.accessor)
                .await
                .unwrap()
                .unwrap()
                .principal
                .groups,
            vec!["apps"]
        );
        assert!(store.lookup("tvs.nope").await.unwrap().is_none());

        // The store holds hashes, never the token.
        let mut db = fs::read(dir.path().join("state.db")).unwrap();
        db.extend(fs::read(dir.path().join("state.db-wal")).unwrap_or_default());
        assert!(db.windows(info.accessor.len()).any(|w| w == info.accessor.as_bytes()));
        let secret = &token.as_bytes()[TOKEN_PREFIX.len()..];
        assert!(!db.windows(secret.len()).any(|w| w == secret));

        // Reopened, the token still works; revoked, it does not.
        drop(store);
        let store = store_in(dir.path()).await;
        assert_eq!(store.lookup(&token).await.unwrap().unwrap(), info);
        assert!(store.revoke(&token).await.unwrap());
        assert!(!store.revoke(&token).await.unwrap());
        assert!(store.lookup(&token).await.unwrap().is_none());
        drop(store);
        assert!(store_in(dir.path()).await.lookup(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_revocation_through_another_store_is_seen_within_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open_embedded(&dir.path().join("state.db")).unwrap();
        let one = TokenStore::open(state.clone(), None).await.unwrap();
        let two = TokenStore::open(state, None).await.unwrap();
        let (token, info) = one.create(&spec("bot", 0)).await.unwrap();
        // Made on one, known at once by the other.
        assert!(two.lookup(&token).await.unwrap().is_some());
        assert!(two.revoke_accessor(&info.accessor).await.unwrap());
        tokio::time::sleep(FRESH + Duration::from_millis(50)).await;
        assert!(one.lookup(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused_and_bootstrap_tokens_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let (token, _) = store.create(&spec("short", 1)).await.unwrap();
        assert!(store.lookup(&token).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(store.lookup(&token).await.unwrap().is_none());

        let root = TokenSpec {
            bootstrap: true,
            ..spec("root", 0)
        };
        let (old, _) = store.create(&root).await.unwrap();
        let chosen = "dev-root-token-0123456789";
        store.create_with_id(chosen, &spec("other", 0)).await.unwrap();
        assert_eq!(store.revoke_bootstrap().await.unwrap(), 1);
        assert!(store.lookup(&old).await.unwrap().is_none());
        assert_eq!(store.lookup(chosen).await.unwrap().unwrap().principal.name, "other");
        assert!(store.create_with_id("short", &spec("x", 0)).await.is_err());
        assert!(!store.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn renewal_extends_a_live_token_up_to_its_maximum_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let capped = TokenSpec {
            max_ttl_seconds: 7200,
            ..spec("capped", 60)
        };
        let (token, info) = store.create(&capped).await.unwrap();
        let created = info.created_unix;
        assert_eq!(info.expires_unix, Some(created + 60));
        assert_eq!(info.max_expires_unix, Some(created + 7200));
        assert!(info.renewable());

        // By the token, with an increment: an hour from now.
        let renewed = store.renew(TokenRef::Token(&token), 3600).await.unwrap().unwrap();
        let expires = renewed.expires_unix.unwrap();
        assert!((created + 3600..=created + 3602).contains(&expires), "{expires}");
        // By accessor, asking for more than the maximum: capped, and no longer renewable.
        let renewed = store
            .renew(TokenRef::Accessor(&info.accessor), 86_400)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renewed.expires_unix, Some(created + 7200));
        assert!(!renewed.renewable());
        // Persisted: a reopened store has the new expiry.
        drop(store);
        let store = store_in(dir.path()).await;
        assert_eq!(
            store.lookup(&token).await.unwrap().unwrap().expires_unix,
            Some(created + 7200)
        );

        // Without an increment, the creation TTL again (shortening is allowed, as in Vault).
        let renewed = store.renew(TokenRef::Token(&token), 0).await.unwrap().unwrap();
        assert!(renewed.expires_unix.unwrap() <= now_unix() + 60);

        // Unknown, expired or never-expiring tokens.
        assert!(store.renew(TokenRef::Token("tvs.nope"), 60).await.unwrap().is_none());
        assert!(store.renew(TokenRef::Accessor("nope"), 60).await.unwrap().is_none());
        let (forever, _) = store.create(&spec("forever", 0)).await.unwrap();
        let err = store.renew(TokenRef::Token(&forever), 60).await.unwrap_err();
        assert!(err.to_string().contains("never expires"), "{err}");
    }

    #[tokio::test]
    async fn tokens_of_an_earlier_token_file_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let salt = "ab".repeat(32);
        let token = "tvs.an-old-token-from-tokens-json";
        let file = serde_json::json!({
            "format": 1,
            "salt": salt,
            "tokens": [{
                "hash": hash(&hex::decode(&salt).unwrap(), token),
                "accessor": "old-accessor",
                "principal": "legacy-bot",
                "groups": ["apps"],
                "created_unix": now_unix(),
            }],
        });
        fs::write(dir.path().join("tokens.json"), file.to_string()).unwrap();
        let store = store_in(dir.path()).await;
        assert_eq!(store.lookup(token).await.unwrap().unwrap().principal.name, "legacy-bot");
        assert!(!dir.path().join("tokens.json").exists());
        assert!(dir.path().join("tokens.json.imported").exists());
        // Imported once: the state store has it after a restart.
        drop(store);
        assert!(store_in(dir.path()).await.lookup(token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_damaged_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tokens.json"), "{not json").unwrap();
        let state = StateStore::open_embedded(&dir.path().join("state.db")).unwrap();
        let e = TokenStore::open(state, Some(&dir.path().join("tokens.json")))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
