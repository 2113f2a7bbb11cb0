//! Talk to PostgreSQL from a Tresor plugin: the client the `postgres`
//! generator and the `postgres-kv` provider share.
//!
//! - [`url`] reads the mount's `connection_url`
//!   (`postgresql://user@host:5432/db?sslmode=disable`), strictly;
//! - [`connect::open`] opens the TCP connection (inside the sandbox, only
//!   to what the mount's `grants.sockets` lists);
//! - [`wire::Client`] logs in (SCRAM-SHA-256, MD5 or cleartext) and runs
//!   simple queries and parameterized extended-protocol queries;
//! - [`mask`] hides passwords in the server's messages.
//!
//! TLS is not supported yet: connection URLs must say `sslmode=disable`.
//!
//! Everything is plain blocking Rust over `Read + Write`, so the same code
//! runs natively in tests against a real server. Nothing here logs, and no
//! error built here quotes a password.

pub mod connect;
mod mask;
pub mod url;
pub mod wire;

pub use mask::mask;
