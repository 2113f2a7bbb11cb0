//! Talk to PostgreSQL from a Tresor plugin: the client the `postgres`
//! generator and the `postgres-kv` provider share.
//!
//! - [`url`] reads the mount's `connection_url`
//!   (`postgresql://user@host:5432/db?sslmode=verify-full`), strictly;
//! - [`connect::open`] opens the TCP connection (inside the sandbox, only
//!   to what the mount's `grants.sockets` lists);
//! - [`tls::Tls`] protects it as `sslmode` says, with the CA of config key
//!   `ca_pem` ([`tls::CA_KEY`]);
//! - [`wire::Client`] logs in (SCRAM-SHA-256, MD5 or cleartext) and runs
//!   simple queries and parameterized extended-protocol queries;
//! - [`mask`] hides passwords in the server's messages.
//!
//! # TLS
//!
//! `sslmode` must be given in the URL; it means what it means for libpq:
//!
//! | `sslmode`     | connection | server certificate |
//! |---------------|------------|--------------------|
//! | `disable`     | plaintext  | — (loopback or a network you trust only) |
//! | `require`     | TLS        | not checked: protects against passive eavesdropping only, not against someone who can intercept the connection and pose as the server |
//! | `verify-ca`   | TLS        | chain checked against `ca_pem`, and its dates |
//! | `verify-full` | TLS        | as `verify-ca`, and it must name the URL's host (DNS name or IP address) |
//!
//! `prefer` and `allow` are refused: they may end up in plaintext without
//! saying so, which a secrets manager must not do. A URL without `sslmode`
//! is refused too (libpq's default is `prefer`), with an error saying what
//! to write; there is no implicit default. `ca_pem` is the PEM of the CA
//! (one or more `CERTIFICATE` blocks, inline in the mount's config:
//! plugins cannot read files); it is required by `verify-ca` and
//! `verify-full` and refused with `disable` and `require`, which would not
//! use it. It is the only trust anchor: no public roots. `verify-ca` and
//! `verify-full` need the mount's clock grant to check certificate dates.
//!
//! The handshake is PostgreSQL's: an `SSLRequest`, the server's one-byte
//! answer (`S`: TLS follows on the same TCP connection; `N`: the server
//! has `ssl = off`, [`tls::TlsError::ServerTlsOff`]), then the TLS
//! handshake, and the start-up message and password exchange over TLS.
//! SCRAM-SHA-256 runs without channel binding. Client certificates are not
//! supported.
//!
//! TLS is [rustls](https://docs.rs/rustls) with the pure-Rust
//! [`rustls_rustcrypto`] provider (RustCrypto's AES-GCM,
//! ChaCha20-Poly1305, X25519, P-256/P-384 ECDSA, RSA and Ed25519). `ring`,
//! rustls' usual provider, does not build for `wasm32-wasip2` without
//! clang and a wasm C sysroot (it compiles C and assembly), nor does
//! `aws-lc-rs`; the plugins build with the Rust toolchain alone.
//! `rustls-rustcrypto` is young (0.0.x, not independently audited); the
//! provider is chosen in one place ([`tls::Tls::new`]), so it can be
//! swapped when `ring` builds for the target.
//!
//! Everything is plain blocking Rust over `Read + Write`, so the same code
//! runs natively in tests against a real server. Nothing here logs, and no
//! error built here quotes a password.

pub mod connect;
mod mask;
pub mod tls;
pub mod url;
pub mod wire;

pub use mask::mask;
pub use tls::{Stream, Tls, TlsError};
