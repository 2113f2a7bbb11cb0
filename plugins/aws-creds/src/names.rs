//! Names of what the plugin creates in AWS: IAM users, STS session names
//! and federated user names, in the style of Vault's AWS secrets engine
//! (`vault-<display>-<role>-<unix seconds>-<random>`), with the prefix
//! `tresor-`.
//!
//! Every name fits AWS's limits (64 characters for users and sessions, 32
//! for federated users) and charset (`A-Z a-z 0-9 + = , . @ _ -`): other
//! characters of the caller's display name or the role name become `_`,
//! and the display name and role are shortened so that the time and the
//! random part are always kept whole.

use tresor_plugin_sdk::Error;

use crate::settings::is_iam_name_byte;

/// The prefix of every name this plugin creates.
pub const PREFIX: &str = "tresor-";
/// IAM's longest user name, and STS's longest `RoleSessionName`.
pub const MAX_USER_NAME: usize = 64;
/// STS's longest `GetFederationToken` `Name`.
pub const MAX_FEDERATED_NAME: usize = 32;
/// Length of the random part.
pub const RANDOM_LEN: usize = 8;

/// `text` with every character IAM does not allow in names replaced by `_`.
pub fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| match u8::try_from(c) {
            Ok(b) if is_iam_name_byte(b) => c,
            _ => '_',
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// The name of a new IAM user (also used as STS `RoleSessionName`):
/// `tresor-<display>-<role>-<unix secs>-<random>`, at most 64 characters.
pub fn user_name(display_name: &str, role: &str, unix_secs: u64, random: &str) -> String {
    compose(MAX_USER_NAME, display_name, role, &format!("-{unix_secs}-{random}"))
}

/// The name of a federated user (STS `GetFederationToken` `Name`):
/// `tresor-<display>-<role>-<random>`, at most 32 characters.
pub fn federated_name(display_name: &str, role: &str, random: &str) -> String {
    compose(MAX_FEDERATED_NAME, display_name, role, &format!("-{random}"))
}

/// `PREFIX + display + "-" + role + tail`, shortening display and role
/// (the longer first, each to 16 characters at most) to fit `max`.
fn compose(max: usize, display_name: &str, role: &str, tail: &str) -> String {
    let display = sanitize(display_name);
    let role = sanitize(role);
    let budget = max.saturating_sub(PREFIX.len() + 1 + tail.len());
    let mut d = display.len().min(16);
    let mut r = role.len().min(16);
    while d + r > budget && d + r > 0 {
        if d >= r {
            d -= 1;
        } else {
            r -= 1;
        }
    }
    // `sanitize` leaves ASCII only, so byte offsets are character offsets.
    let name = format!("{PREFIX}{}-{}{tail}", &display[..d], &role[..r]);
    name[..name.len().min(max)].to_owned()
}

/// `len` random characters from `a-z0-9`, for unique names.
pub fn random(len: usize) -> Result<String, Error> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 32];
    while out.len() < len {
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no randomness for a credential name: {e}")))?;
        // 252 = 7 * 36: rejecting larger bytes keeps every character equally likely.
        for b in bytes.iter().filter(|&&b| b < 252) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    Ok(out)
}

/// The random part of an IAM user's name, taken from the host's issue id
/// (letters and digits) so that the same issue request always names the
/// same user: `abandon` finds a user whose lease was never recorded. IAM
/// names are case-insensitive, so it is lowercased.
pub fn from_issue_id(issue_id: &str) -> Result<String, Error> {
    if issue_id.len() < RANDOM_LEN || !issue_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid_input(format!(
            "the host's issue id must be at least {RANDOM_LEN} letters and digits; \
             this plugin needs a Tresor host that sends one"
        )));
    }
    Ok(issue_id[..RANDOM_LEN].to_ascii_lowercase())
}

/// True for a user name this plugin could have created: the `tresor-`
/// prefix, at most 64 characters of IAM's charset.
pub fn is_issued_user_name(name: &str) -> bool {
    name.starts_with(PREFIX) && crate::settings::is_iam_name(name, MAX_USER_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str, max: usize) -> bool {
        crate::settings::is_iam_name(name, max)
    }

    #[test]
    fn short_names_are_kept_whole() {
        assert_eq!(
            user_name("alice", "deploy", 1_796_150_612, "k3j9x2qa"),
            "tresor-alice-deploy-1796150612-k3j9x2qa"
        );
        assert_eq!(federated_name("alice", "ci", "k3j9x2qa"), "tresor-alice-ci-k3j9x2qa");
    }

    #[test]
    fn foreign_characters_become_underscores() {
        assert_eq!(sanitize("token:ab/cd é"), "token_ab_cd__");
        assert_eq!(sanitize(""), "unknown");
        assert_eq!(
            user_name("svc:ci/runner", "deploy", 1, "abcdefgh"),
            "tresor-svc_ci_runner-deploy-1-abcdefgh"
        );
    }

    #[test]
    fn long_names_fit_and_keep_time_and_random() {
        let display = "a-very-long-principal-name-from-an-identity-provider";
        let role = "role_with_a_name_longer_than_sixteen";
        let user = user_name(display, role, u64::MAX, "zzzzzzzz");
        assert!(user.len() <= MAX_USER_NAME, "{user}");
        assert!(user.ends_with(&format!("-{}-zzzzzzzz", u64::MAX)), "{user}");
        assert!(valid(&user, MAX_USER_NAME), "{user}");
        let typical = user_name(display, role, 1_796_150_612, "zzzzzzzz");
        assert_eq!(typical, "tresor-a-very-long-prin-role_with_a_name-1796150612-zzzzzzzz");
        let fed = federated_name(display, role, "zzzzzzzz");
        assert!(fed.len() <= MAX_FEDERATED_NAME, "{fed}");
        assert!(fed.starts_with("tresor-") && fed.ends_with("-zzzzzzzz"), "{fed}");
        assert!(valid(&fed, MAX_FEDERATED_NAME), "{fed}");
        for len in 0..80 {
            let d = "d".repeat(len);
            let n = user_name(&d, &d, 1_796_150_612, "abcdefgh");
            assert!(n.len() <= MAX_USER_NAME && valid(&n, MAX_USER_NAME), "{n}");
            let n = federated_name(&d, &d, "abcdefgh");
            assert!(n.len() <= MAX_FEDERATED_NAME && valid(&n, MAX_FEDERATED_NAME), "{n}");
        }
    }

    #[test]
    fn random_parts_are_alphanumeric_and_differ() {
        let a = random(RANDOM_LEN).expect("randomness");
        let b = random(RANDOM_LEN).expect("randomness");
        assert_eq!(a.len(), RANDOM_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(random(100).map(|r| r.len()).ok(), Some(100));
    }

    #[test]
    fn user_names_come_from_the_issue_id() {
        assert_eq!(from_issue_id("AbCd1234XyZ9876543210abc").expect("id"), "abcd1234");
        assert_eq!(
            from_issue_id("AbCd1234").expect("id"),
            from_issue_id("AbCd1234").expect("id")
        );
        for bad in ["", "short", "has-dash-1234", "\"; DROP x"] {
            assert!(from_issue_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recognizes_issued_names() {
        assert!(is_issued_user_name("tresor-alice-deploy-1796150612-k3j9x2qa"));
        assert!(!is_issued_user_name("admin"));
        assert!(!is_issued_user_name("tresor-a/b"));
        assert!(!is_issued_user_name("sts:assumed_role:arn"));
    }
}
