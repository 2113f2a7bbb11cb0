//! Authentication: who is calling. An HTTP request authenticates with a
//! token (`X-Vault-Token: <token>` or `Authorization: Bearer <token>`) from
//! the [`TokenStore`], or, over mutual TLS, with a client certificate mapped
//! by [`ClientCertMap`]. Either way the result is a Cedar
//! [`Principal`](crate::Principal); what it may do is then up to the
//! policies on the access path.

mod certs;
mod tokens;

pub use certs::{common_name, ClientCertMap};
pub use tokens::{TokenError, TokenInfo, TokenRef, TokenSpec, TokenStore, FRESH, TOKEN_PREFIX};

/// The principal of the root token `tresor server` creates: name `root`,
/// group `admins` (which the example policies let do everything).
pub fn root_principal() -> crate::Principal {
    crate::Principal {
        name: "root".into(),
        groups: vec!["admins".into()],
        attributes: Default::default(),
    }
}
