//! Cluster security: who may connect ([`keyring`]: the secrets of `--auth-token-file` and the
//! role each grants) and what each role may ask ([`roles`]: the one table from request kind to
//! the lowest role allowed to send it).
//!
//! Layer: node infrastructure (read by [`crate::server`], which authenticates every connection
//! and checks every request before [`crate::dispatch`] sees it). The handshake and the
//! vocabulary (roles, secrets) are the client crate's (`siltdb_client::auth`).

pub mod keyring;
pub mod roles;

pub use keyring::Keyring;
pub use roles::{permission_error, required_role};
pub use siltdb_client::auth::{Role, Secret, AUTH_FAILED};

use siltdb_client::tls::TlsClient;
use siltdb_client::ClientOptions;

/// What a node presents on its own outgoing connections (peers, meta pushes, moves, bulk
/// loads, duplication, the Redis endpoint's client): its admin secret and its TLS settings.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The first admin secret of the token file; `None` without one.
    pub token: Option<Secret>,
    /// TLS of outgoing connections; `None`: plain TCP.
    pub tls: Option<TlsClient>,
}

impl Credentials {
    /// `opts` presenting these credentials.
    pub fn apply(&self, opts: ClientOptions) -> ClientOptions {
        opts.with_token(self.token.clone())
            .with_tls(self.tls.clone())
    }
}
