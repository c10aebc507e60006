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
