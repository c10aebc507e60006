//! The secrets a server accepts, read from `--auth-token-file`.
//!
//! Format: a file whose whole content (trimmed) is one secret grants that secret the admin
//! role. Otherwise every line is `<role> <secret>` with role `admin`, `read-write` or
//! `read-only`; blank lines and lines starting with `#` are ignored. Every secret has at least
//! [`siltdb_client::auth::SECRET_LEN_MIN`] bytes, or the file is refused with its path and line. The first admin
//! secret is the node's own: it presents it on its outgoing peer and client connections.

use siltdb_client::auth::{read_bounded, AuthError, Role, Secret, AUTH_FAILED};
use std::path::Path;

/// `<role> <secret>`, or `None` when `line` does not start with a role name.
fn role_line(line: &str) -> Option<(Role, &str)> {
    line.split_once(char::is_whitespace)
        .and_then(|(r, s)| Role::parse(r).map(|r| (r, s.trim())))
}

/// The secrets of a server and the role of each.
#[derive(Debug, Clone)]
pub struct Keyring {
    entries: Vec<(Role, Secret)>,
}

impl Keyring {
    /// Reads a token file (see the module doc).
    pub fn from_file(path: &Path) -> Result<Keyring, AuthError> {
        let text = read_bounded(path)?;
        Self::parse(&text, path)
    }

    /// Parses the text of the token file `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Keyring, AuthError> {
        let meaningful: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let malformed = |line: usize, reason: String| AuthError::Malformed {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut entries = Vec::new();
        match meaningful.as_slice() {
            [] => return Err(malformed(1, "no secret".into())),
            [(line, only)] if role_line(only).is_none() => {
                entries.push((Role::Admin, Secret::from_line(only, path, *line)?));
            }
            lines => {
                for (line, l) in lines {
                    let Some((role, secret)) = role_line(l) else {
                        return Err(malformed(
                            *line,
                            "expected `<role> <secret>` with role admin, read-write or read-only"
                                .into(),
                        ));
                    };
                    entries.push((role, Secret::from_line(secret, path, *line)?));
                }
            }
        }
        Ok(Keyring { entries })
    }

    /// A keyring of these secrets (tests and embedders).
    pub fn new(entries: Vec<(Role, Secret)>) -> Keyring {
        Keyring { entries }
    }

    /// The role `token` grants, or why it is refused (the reason starts with
    /// [`AUTH_FAILED`]). Every secret is compared, in constant time, whatever matched.
    pub fn authenticate(&self, token: Option<&Secret>) -> Result<Role, String> {
        let Some(token) = token else {
            return Err(format!(
                "{AUTH_FAILED}: this server requires a token (silt-admin --token-file, \
                 ClientOptions::token)"
            ));
        };
        let mut granted: Option<Role> = None;
        for (role, secret) in &self.entries {
            if secret.matches(token) {
                granted = granted.max(Some(*role));
            }
        }
        granted.ok_or_else(|| format!("{AUTH_FAILED}: wrong token"))
    }

    /// The node's own secret: the first admin one (`None` if the file has no admin line).
    pub fn admin_secret(&self) -> Option<&Secret> {
        self.entries
            .iter()
            .find(|(r, _)| *r == Role::Admin)
            .map(|(_, s)| s)
    }

    /// How many secrets of each role, lowest role first (for the start-up log; no secret).
    pub fn counts(&self) -> [usize; 3] {
        let mut c = [0; 3];
        for (r, _) in &self.entries {
            c[*r as usize] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_single_secret_is_admin() {
        let k = Keyring::parse("  only-one-secret-here \n\n", Path::new("t")).unwrap();
        assert_eq!(
            k.authenticate(Some(&secret("only-one-secret-here"))),
            Ok(Role::Admin)
        );
        assert!(k
            .authenticate(Some(&secret("only-one-secret-herX")))
            .unwrap_err()
            .contains(AUTH_FAILED));
        assert!(k.authenticate(None).unwrap_err().contains(AUTH_FAILED));
        assert!(k.admin_secret().is_some());
    }

    #[test]
    fn role_lines_comments_and_errors() {
        let text = "# roles\nread-only reader-secret-0001\n\nread-write writer-secret-0001\nadmin admin-secret-00001\n";
        let k = Keyring::parse(text, Path::new("t")).unwrap();
        assert_eq!(
            k.authenticate(Some(&secret("reader-secret-0001"))),
            Ok(Role::ReadOnly)
        );
        assert_eq!(
            k.authenticate(Some(&secret("writer-secret-0001"))),
            Ok(Role::ReadWrite)
        );
        assert_eq!(
            k.authenticate(Some(&secret("admin-secret-00001"))),
            Ok(Role::Admin)
        );
        assert_eq!(k.counts(), [1, 1, 1]);
        assert!(k
            .admin_secret()
            .unwrap()
            .matches(&secret("admin-secret-00001")));

        let e = Keyring::parse("admin short\n", Path::new("/etc/t"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/t") && e.contains("line 1"), "{e}");
        let e = Keyring::parse(
            "admin long-enough-secret-1\nroot long-enough-secret-2\n",
            Path::new("f"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(Keyring::parse("tiny", Path::new("f")).is_err());
        assert!(Keyring::parse("# nothing\n\n", Path::new("f")).is_err());
    }
}
