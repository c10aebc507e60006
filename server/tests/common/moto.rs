//! A local S3-compatible server for the S3 backup tests: moto's `moto_server` (PyPI
//! `moto[server]`) on a free 127.0.0.1 port, killed on drop. Without `moto_server` on PATH a
//! test prints a loud SKIPPED line and returns, unless `SILT_REQUIRE_S3=1` makes it fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// Credentials moto accepts when it does not check them.
pub const KEY_ID: &str = "testing";
/// See [`KEY_ID`].
pub const SECRET: &str = "testing";

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    port: u16,
}

fn installed() -> bool {
    Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the S3 tests can run: `moto_server` is installed. Otherwise prints the SKIPPED
/// line and returns false, or panics when `SILT_REQUIRE_S3=1`.
pub fn available(test: &str) -> bool {
    if installed() {
        return true;
    }
    if std::env::var("SILT_REQUIRE_S3").is_ok_and(|v| v == "1") {
        panic!("{test}: moto_server not installed and SILT_REQUIRE_S3=1");
    }
    eprintln!(
        "\n!!!!! {test}: SKIPPED: moto_server not installed (pip install 'moto[server]') !!!!!\n"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts a server (`None`: not installed, see [`available`]). `auth_free_actions`:
    /// `Some(n)` makes moto check credentials (against its IAM users) after its first `n`
    /// requests.
    pub fn start(test: &str, auth_free_actions: Option<u32>) -> Option<Moto> {
        if !available(test) {
            return None;
        }
        let port = free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = auth_free_actions {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("start moto_server");
        let m = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // A plain connect: with auth on, an HTTP request would use up a free action.
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(m)
    }

    /// One unsigned HTTP/1.1 request (moto without auth takes them): the status code.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        out.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad answer {out:?}")))
    }

    /// Creates `bucket` (object_store cannot) with a plain PUT.
    pub fn create_bucket(&self, bucket: &str) {
        let code = self.request("PUT", &format!("/{bucket}")).unwrap();
        assert_eq!(code, 200, "creating bucket {bucket}");
    }

    /// The environment of a `silt-admin` talking to this server with `key`/`secret`.
    pub fn env_with(&self, key: &str, secret: &str) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), key.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// [`Moto::env_with`] the default test credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_with(KEY_ID, SECRET)
    }

    /// An [`object_store`] builder for this server (the tests' own target).
    pub fn builder(&self) -> object_store::aws::AmazonS3Builder {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(REGION)
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .with_allow_http(true)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
