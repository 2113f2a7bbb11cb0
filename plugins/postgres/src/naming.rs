//! What a generated credential is made of: the role name, the password and
//! the expiration timestamp PostgreSQL reads in `VALID UNTIL`.

use tresor_plugin_sdk::Error;
use zeroize::Zeroizing;

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`), in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 63;

/// Length of a generated password, in characters.
pub const PASSWORD_LEN: usize = 36;

/// The longest issue id a role name takes whole: with the 8-byte display
/// and role parts and 17 digits of seconds, the name stays within 63 bytes.
const MAX_ISSUE_ID_LEN: usize = 24;

/// Letters, digits and `-`: the password alphabet. Nothing in it needs
/// escaping inside an SQL string literal or a connection string.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";

/// Names a new role like Vault's default username template:
/// `v-<display name, 8>-<role, 8>-<issue id>-<unix seconds>`, at most 63
/// bytes. The issue id is the host's random part (24 letters and digits),
/// so the same request always names the same role: that is how `abandon`
/// finds a role whose lease the host never recorded. Characters of the
/// display or role name outside `[A-Za-z0-9_-]` become `_`, so the name
/// never needs more than double quotes around it.
pub fn role_name(display_name: &str, role: &str, issue_id: &str, now_ms: u64) -> Result<String, Error> {
    if issue_id.is_empty() || issue_id.len() > MAX_ISSUE_ID_LEN || !issue_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::invalid_input(format!(
            "the host's issue id must be 1 to {MAX_ISSUE_ID_LEN} letters and digits; \
             this plugin needs a Tresor host that sends one"
        )));
    }
    let mut name = format!(
        "v-{}-{}-{issue_id}-{}",
        name_part(display_name, 8),
        name_part(role, 8),
        now_ms / 1000
    );
    name.truncate(MAX_ROLE_NAME_LEN);
    Ok(name)
}

/// True when `name` could have come from [`role_name`]: non-empty, at most
/// 63 bytes of `[A-Za-z0-9_-]`. Revoke handles are checked with it before
/// they go into a statement.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_ROLE_NAME_LEN && name.bytes().all(is_name_byte)
}

/// A fresh password of [`PASSWORD_LEN`] letters, digits and `-` from the
/// operating system's CSPRNG.
pub fn password() -> Result<Zeroizing<String>, Error> {
    random_string(PASSWORD_ALPHABET, PASSWORD_LEN)
}

/// `expires_at_ms` as PostgreSQL reads a `timestamptz`, in UTC to the second
/// (rounded down, so the role never outlives its lease):
/// `2026-12-02 18:30:00+00`.
pub fn expiration(expires_at_ms: u64) -> Result<String, Error> {
    let seconds = i64::try_from(expires_at_ms / 1000)
        .map_err(|_| Error::invalid_input("the lease's expiration is out of range"))?;
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| {
        Error::invalid_input(format!(
            "the lease's expiration ({expires_at_ms} ms after the Unix epoch) is past the year 9999"
        ))
    })?;
    Ok(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The first `max` characters of `raw`, with characters outside
/// `[A-Za-z0-9_-]` replaced by `_`.
fn name_part(raw: &str, max: usize) -> String {
    raw.chars()
        .take(max)
        .map(|c| if c.is_ascii() && is_name_byte(c as u8) { c } else { '_' })
        .collect()
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols)
/// with the OS CSPRNG, by rejection sampling so no symbol is favoured.
fn random_string(alphabet: &[u8], len: usize) -> Result<Zeroizing<String>, Error> {
    // Accept bytes below the largest multiple of the alphabet size.
    let limit = 256 - 256 % alphabet.len();
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut pool = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        getrandom::fill(pool.as_mut())
            .map_err(|e| Error::internal(format!("the random number generator failed: {e}")))?;
        for &b in pool.iter() {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AbCdEfGhIjKlMnOpQrStUvW1";

    #[test]
    fn role_names_follow_vaults_template() {
        let name = role_name("alice", "readonly", ID, 1_764_700_200_123).expect("name");
        assert_eq!(name, format!("v-alice-readonly-{ID}-1764700200"));
        assert!(is_role_name(&name));
    }

    #[test]
    fn role_names_truncate_and_replace_odd_characters() {
        let name = role_name("alice@example.com", "a-very-long-role-name", ID, 0).expect("name");
        assert_eq!(name, format!("v-alice_ex-a-very-l-{ID}-0"));
        let name = role_name("Zoë \"x\"; DROP", "r", ID, 0).expect("name");
        assert!(name.starts_with("v-Zo___x__-r-"), "{name}");
        assert!(is_role_name(&name), "{name}");
    }

    #[test]
    fn role_names_never_exceed_63_bytes_and_keep_the_whole_issue_id() {
        let name = role_name(&"d".repeat(100), &"r".repeat(100), ID, u64::MAX).expect("name");
        assert!(name.len() <= MAX_ROLE_NAME_LEN, "{} bytes: {name}", name.len());
        assert!(name.contains(ID), "{name}");
        assert!(is_role_name(&name));
    }

    #[test]
    fn the_same_request_names_the_same_role_and_another_issue_id_another() {
        let first = role_name("a", "b", ID, 5_000).expect("name");
        assert_eq!(first, role_name("a", "b", ID, 5_000).expect("name"));
        assert_ne!(
            first,
            role_name("a", "b", "AbCdEfGhIjKlMnOpQrStUvW2", 5_000).expect("name")
        );
    }

    #[test]
    fn issue_ids_that_could_break_a_name_are_refused() {
        for bad in ["", "has-dash", "has space", "\"; DROP ROLE x; --", &"a".repeat(25)] {
            let err = role_name("a", "b", bad, 0).expect_err(bad);
            assert!(err.message().contains("issue id"), "{}", err.message());
        }
    }

    #[test]
    fn revoke_handles_are_checked() {
        assert!(is_role_name("v-a-b-0"));
        assert!(!is_role_name(""));
        assert!(!is_role_name("x\"; DROP ROLE postgres; --"));
        assert!(!is_role_name("a b"));
        assert!(!is_role_name(&"a".repeat(64)));
    }

    #[test]
    fn passwords_are_long_safe_and_fresh() {
        let a = password().expect("password");
        let b = password().expect("password");
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.len() >= 32);
        assert!(
            a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
            "{}",
            a.as_str()
        );
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn random_strings_use_the_whole_alphabet() {
        // 4000 draws from 63 symbols: every symbol shows up (the chance that
        // one does not is below 1e-25), and none outside it.
        let s = random_string(PASSWORD_ALPHABET, 4000).expect("random");
        for &c in PASSWORD_ALPHABET {
            assert!(s.as_bytes().contains(&c), "never drew {}", char::from(c));
        }
    }

    #[test]
    fn expirations_are_utc_timestamps_postgres_reads() {
        assert_eq!(expiration(0).ok().as_deref(), Some("1970-01-01 00:00:00+00"));
        // 2026-12-02 18:30:00 UTC, plus 999 ms that are dropped.
        assert_eq!(
            expiration(1_796_236_200_999).ok().as_deref(),
            Some("2026-12-02 18:30:00+00")
        );
        assert_eq!(
            expiration(951_782_400_000).ok().as_deref(),
            Some("2000-02-29 00:00:00+00")
        );
        assert!(matches!(expiration(u64::MAX), Err(Error::InvalidInput(_))));
    }
}
