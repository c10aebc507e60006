//! Authentication of the Redis endpoint: on a server with a token file, a connection must
//! send `AUTH <secret>` (or `AUTH <user> <secret>`, or `HELLO <v> AUTH <user> <secret>`; the
//! user name is ignored) before any other command but `AUTH`, `HELLO` and `QUIT`, which are
//! refused with `-NOAUTH Authentication required.`. The secret's role then bounds the commands:
//! writes need read-write, everything else read-only.

use super::resp::Reply;
use crate::auth::{Keyring, Role, Secret};

/// The refusal of a command sent before AUTH.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// The refusal of a wrong secret.
pub const WRONGPASS: &str =
    "WRONGPASS authentication failed: invalid username-password pair or user is disabled.";

/// Commands that change data (they need the read-write role).
const WRITE_COMMANDS: &[&str] = &[
    "set", "setnx", "getdel", "del", "expire", "pexpire", "persist", "incr", "incrby", "decr",
    "decrby", "mset", "hset", "hdel",
];

/// The lowest role that may run command `name` (lowercase); `None` for the commands allowed
/// before AUTH.
pub fn command_role(name: &str) -> Option<Role> {
    match name {
        "auth" | "hello" | "quit" => None,
        n if WRITE_COMMANDS.contains(&n) => Some(Role::ReadWrite),
        _ => Some(Role::ReadOnly),
    }
}

/// The refusal of `name` on a connection granted `role` (`None` = not authenticated), or
/// `None` when it may run.
pub fn refusal(name: &str, role: Option<Role>) -> Option<Reply> {
    let needed = command_role(name)?;
    match role {
        None => Some(Reply::Error(NOAUTH.into())),
        Some(r) if r < needed => Some(Reply::Error(format!(
            "NOPERM authentication failed: a {r} token may not run the '{name}' command"
        ))),
        Some(_) => None,
    }
}

/// The role `secret` grants, or the WRONGPASS refusal.
pub fn check(keyring: &Keyring, secret: &[u8]) -> Result<Role, Reply> {
    let wrong = || Reply::Error(WRONGPASS.into());
    let secret = Secret::new(secret.to_vec()).map_err(|_| wrong())?;
    keyring.authenticate(Some(&secret)).map_err(|_| wrong())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_need_auth_and_writes_need_read_write() {
        assert!(refusal("auth", None).is_none());
        assert!(refusal("hello", None).is_none());
        assert!(matches!(refusal("get", None), Some(Reply::Error(e)) if e == NOAUTH));
        assert!(matches!(refusal("ping", None), Some(Reply::Error(e)) if e == NOAUTH));
        assert!(refusal("get", Some(Role::ReadOnly)).is_none());
        assert!(
            matches!(refusal("set", Some(Role::ReadOnly)), Some(Reply::Error(e)) if e.starts_with("NOPERM"))
        );
        assert!(refusal("set", Some(Role::ReadWrite)).is_none());
        for w in WRITE_COMMANDS {
            assert_eq!(command_role(w), Some(Role::ReadWrite), "{w}");
        }
        let k = Keyring::new(vec![(
            Role::ReadOnly,
            Secret::new(b"reader-secret-0001".to_vec()).unwrap(),
        )]);
        assert_eq!(check(&k, b"reader-secret-0001").ok(), Some(Role::ReadOnly));
        assert!(check(&k, b"short").is_err());
        assert!(check(&k, b"reader-secret-0002").is_err());
    }
}
