//! The real `CryptProtectData` / `CryptUnprotectData` calls, their error
//! paths and the buffer handling. Run on Windows, or from Linux under Wine
//! with `tests/wine/run.sh`. Wine's DPAPI is not byte-compatible with
//! Windows' (its blobs do not open on Windows and back), so these tests check
//! the API contract, not the blob format.

use super::{protect, unprotect, PlatformError};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn must_fail(blob: &[u8], entropy: &[u8], what: &str) -> PlatformError {
    match unprotect(blob, entropy) {
        Err(e) => e,
        Ok(_) => panic!("{what}: unprotect succeeded"),
    }
}

#[test]
fn round_trip() {
    let secret = b"correct horse battery staple".to_vec();
    let blob = protect(secret.clone(), b"").expect("protect");
    assert!(blob.len() > secret.len(), "a DPAPI blob carries a header and a MAC");
    assert!(!contains(&blob, &secret), "the blob must not hold the plaintext");
    assert_eq!(unprotect(&blob, b"").expect("unprotect"), secret);
}

#[test]
fn protecting_twice_gives_different_blobs() {
    let a = protect(b"same".to_vec(), b"").expect("protect");
    let b = protect(b"same".to_vec(), b"").expect("protect");
    assert_ne!(a, b, "every blob has its own salt");
    assert_eq!(unprotect(&a, b"").expect("a"), b"same");
    assert_eq!(unprotect(&b, b"").expect("b"), b"same");
}

#[test]
fn round_trip_with_entropy() {
    let entropy = b"mount:legacy/app-1";
    let blob = protect(b"s3cr3t".to_vec(), entropy).expect("protect");
    assert_eq!(unprotect(&blob, entropy).expect("unprotect"), b"s3cr3t");
}

#[test]
fn wrong_entropy_fails() {
    let blob = protect(b"s3cr3t".to_vec(), b"entropy-1").expect("protect");
    for (entropy, what) in [
        (&b"entropy-2"[..], "other entropy"),
        (b"", "no entropy"),
        (b"entropy-1\0", "longer entropy"),
    ] {
        let e = must_fail(&blob, entropy, what);
        assert!(matches!(e, PlatformError::InvalidInput(_)), "{what}: {e:?}");
        assert!(e.message().contains("entropy differs"), "{what}: {e}");
        assert!(!e.message().contains("s3cr3t"), "{what}: the message leaks the value");
    }
    let plain = protect(b"s3cr3t".to_vec(), b"").expect("protect");
    let e = must_fail(&plain, b"unexpected", "entropy on a blob without");
    assert!(matches!(e, PlatformError::InvalidInput(_)), "{e:?}");
}

#[test]
fn tampered_blob_fails() {
    let blob = protect(b"s3cr3t value".to_vec(), b"e").expect("protect");

    let mut last = blob.clone();
    *last.last_mut().expect("non-empty") ^= 0x01;
    let e = must_fail(&last, b"e", "last byte flipped");
    assert!(matches!(e, PlatformError::InvalidInput(_)), "{e:?}");

    let truncated = &blob[..blob.len() - 8];
    let e = must_fail(truncated, b"e", "truncated");
    assert!(matches!(e, PlatformError::InvalidInput(_)), "{e:?}");

    let e = must_fail(b"this is not a DPAPI blob at all", b"e", "garbage");
    assert!(matches!(e, PlatformError::InvalidInput(_)), "{e:?}");
}

#[test]
fn no_single_byte_flip_yields_a_different_plaintext() {
    let value = b"0123456789abcdef0123456789abcdef".to_vec();
    let blob = protect(value.clone(), b"e").expect("protect");
    let mut failures = 0;
    for i in 0..blob.len() {
        let mut tampered = blob.clone();
        tampered[i] ^= 0x80;
        match unprotect(&tampered, b"e") {
            Ok(out) => assert_eq!(out, value, "flipping byte {i} of {} changed the plaintext", blob.len()),
            Err(_) => failures += 1,
        }
    }
    // The MAC and the ciphertext are most of the blob.
    assert!(
        failures * 2 > blob.len(),
        "only {failures} of {} flips were detected",
        blob.len()
    );
}

#[test]
fn empty_input() {
    let blob = protect(Vec::new(), b"").expect("protect empty");
    assert!(!blob.is_empty());
    assert_eq!(unprotect(&blob, b"").expect("unprotect empty"), b"");

    let blob = protect(Vec::new(), b"e").expect("protect empty with entropy");
    assert_eq!(unprotect(&blob, b"e").expect("unprotect empty with entropy"), b"");

    let e = must_fail(b"", b"", "empty blob");
    assert!(matches!(e, PlatformError::InvalidInput(_)), "{e:?}");
}

#[test]
fn binary_and_large_values() {
    let value: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let blob = protect(value.clone(), &[0, 1, 2, 255]).expect("protect 1 MiB");
    assert_eq!(unprotect(&blob, &[0, 1, 2, 255]).expect("unprotect 1 MiB"), value);
}
