//! Cluster security through the binaries (issue 19): tokens and roles on every request kind,
//! Raft peers, silt-admin, the Redis endpoint; garbage, oversized and truncated frames; bulk-load
//! path confinement.

mod common;

use common::*;
use siltdb_server::auth::roles::sample_requests;
use siltdb_server::auth::{Role, Secret, AUTH_FAILED};
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::{Client, ClientOptions, ServerError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-secret-0123456789";
const WRITER: &str = "writer-secret-0123456789";
const READER: &str = "reader-secret-0123456789";

/// A directory holding the server's multi-role token file and one secret file per role.
struct Tokens {
    dir: tempfile::TempDir,
}

impl Tokens {
    fn new() -> Tokens {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("server-tokens"),
            format!("# roles\nadmin {ADMIN}\nread-write {WRITER}\n\nread-only {READER}\n"),
        )
        .unwrap();
        for (name, s) in [("admin", ADMIN), ("writer", WRITER), ("reader", READER)] {
            std::fs::write(dir.path().join(name), format!("{s}\n")).unwrap();
        }
        std::fs::write(dir.path().join("wrong"), "wrong-secret-0123456789").unwrap();
        Tokens { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_file(&self) -> String {
        self.path("server-tokens").display().to_string()
    }
}

fn client(c: &Cluster, secret: Option<&str>) -> Client {
    let token = secret.map(|s| Secret::new(s.as_bytes().to_vec()).unwrap());
    let mut o =
        ClientOptions::new(c.procs.iter().map(|p| p.addr.clone()).collect()).with_token(token);
    o.deadline = Duration::from_secs(60);
    o.rpc_timeout = Duration::from_secs(8);
    Client::new(o)
}

async fn call(cl: &Client, addr: &str, req: &ClientRequest) -> ClientResponse {
    cl.call_with_timeout(addr, req, Duration::from_secs(8))
        .await
        .unwrap_or_else(|e| panic!("transport failure on {req:?}: {e}"))
}

fn admin_cli(c: &Cluster, token: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut all: Vec<String> = Vec::new();
    if let Some(t) = token {
        all.extend(["--token-file".into(), t.display().to_string()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let (ok, out, err) = silt_admin(&c.addr(1), &refs);
    (ok, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_and_roles_guard_every_request_kind_and_raft() {
    let tokens = Tokens::new();
    let file = tokens.server_file();
    // Three nodes: the table's Rafts elect and replicate only if peers authenticate.
    let c = Cluster::start_bare(3, &["--auth-token-file", &file]);
    let admin = client(&c, Some(ADMIN));
    admin
        .create_table(&c.layout)
        .await
        .expect("create table as admin");
    admin.put(TABLE, b"k1", b"v1").await.expect("admin put");

    let writer = client(&c, Some(WRITER));
    writer.put(TABLE, b"k2", b"v2").await.expect("writer put");
    assert_eq!(
        writer.get(TABLE, b"k1").await.unwrap(),
        Some(b"v1".to_vec())
    );
    let reader = client(&c, Some(READER));
    assert_eq!(
        reader.get(TABLE, b"k2").await.unwrap(),
        Some(b"v2".to_vec())
    );
    let e = reader
        .put(TABLE, b"k3", b"v3")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(AUTH_FAILED) && e.contains("permission denied"),
        "{e}"
    );

    // Every request kind: refused without a token, with a wrong one, and below its role.
    let anonymous = client(&c, None);
    let wrong = client(&c, Some("wrong-secret-0123456789"));
    let by_role = [(Role::ReadOnly, &reader), (Role::ReadWrite, &writer)];
    let addr = c.addr(1);
    for (req, needed) in sample_requests() {
        for (who, cl) in [("no token", &anonymous), ("wrong token", &wrong)] {
            match call(cl, &addr, &req).await {
                ClientResponse::Error(ServerError::Unauthenticated(m)) => {
                    let shown = ServerError::Unauthenticated(m).to_string();
                    assert!(shown.contains(AUTH_FAILED), "{shown}");
                }
                other => panic!("{who}: {req:?} answered {other:?}"),
            }
        }
        for (role, cl) in by_role {
            if role >= needed {
                continue;
            }
            match call(cl, &addr, &req).await {
                ClientResponse::Error(e @ ServerError::PermissionDenied(_)) => {
                    assert!(e.to_string().contains(AUTH_FAILED), "{e}");
                }
                other => panic!("{role}: {req:?} answered {other:?}"),
            }
        }
    }
    // The reads a reader may send are served.
    assert!(matches!(
        call(&reader, &addr, &ClientRequest::Stats).await,
        ClientResponse::Stats(_)
    ));

    // A Raft peer without the token: its hello is refused, and a vote sent without a hello
    // gets no answer; with the admin token the same vote is answered.
    raft_peer_refused(&addr);

    // silt-admin: refused without a token or with a wrong one (non-zero exit), served with the
    // admin token from --token-file or SILT_TOKEN_FILE, refused below the role.
    let (ok, out) = admin_cli(&c, None, &["tables"]);
    assert!(!ok && out.contains(AUTH_FAILED), "{out}");
    let (ok, out) = admin_cli(&c, Some(&tokens.path("wrong")), &["tables"]);
    assert!(!ok && out.contains(AUTH_FAILED), "{out}");
    let (ok, out) = admin_cli(&c, Some(&tokens.path("admin")), &["tables"]);
    assert!(ok && out.contains(TABLE), "{out}");
    let env_run = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_silt-admin"))
            .args(["--addr", &addr, "--timeout-ms", "5000", "tables"])
            .env("SILT_TOKEN_FILE", tokens.path("reader"))
            .output()
            .unwrap()
    });
    assert!(env_run.status.success(), "{env_run:?}");
    let (ok, out) = admin_cli(
        &c,
        Some(&tokens.path("reader")),
        &["checkpoint", "--table", TABLE],
    );
    assert!(!ok && out.contains(AUTH_FAILED), "{out}");
}

fn raw_frame(kind: siltdb_client::frame::FrameKind, payload: Vec<u8>) -> Vec<u8> {
    siltdb_client::frame::encode_frame(&siltdb_client::frame::Frame {
        kind,
        request_id: 7,
        payload,
    })
    .unwrap()
}

/// Reads one frame (bounded): `None` when the server closed the connection instead.
fn read_answer(s: &mut TcpStream) -> Option<siltdb_client::frame::Frame> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((f, _))) = siltdb_client::frame::decode_frame(&buf) {
            return Some(f);
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no answer and no close: {e}"),
        }
    }
}

fn hello(secret: Option<&str>) -> Vec<u8> {
    let h = siltdb_client::auth::Hello {
        token: secret.map(|s| Secret::new(s.as_bytes().to_vec()).unwrap()),
    };
    raw_frame(
        siltdb_client::frame::FrameKind::Hello,
        siltdb_client::frame::encode_payload(&h).unwrap(),
    )
}

fn raft_peer_refused(addr: &str) {
    use siltdb_client::auth::HelloReply;
    use siltdb_client::frame::{decode_payload, encode_payload, FrameKind};
    use siltdb_replica::transport::{RaftEnvelope, RaftRequest};
    let vote = RaftEnvelope {
        gpid: siltdb_client::Gpid {
            app_id: 4242,
            partition_index: 0,
        },
        from: 9,
        to: 1,
        body: RaftRequest::Vote(openraft::raft::VoteRequest::new(
            openraft::Vote::new(1_000, 9),
            None,
        )),
    };
    let vote = raw_frame(FrameKind::RaftRequest, encode_payload(&vote).unwrap());

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&vote).unwrap();
    assert!(
        read_answer(&mut s).is_none(),
        "a vote without a hello was answered"
    );

    for (secret, refused) in [(None, true), (Some("wrong-secret-0123456789"), true)] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&hello(secret)).unwrap();
        let f = read_answer(&mut s).expect("a hello reply");
        assert_eq!(f.kind, FrameKind::HelloReply);
        match decode_payload::<HelloReply>(&f.payload).unwrap() {
            HelloReply::Refused { reason } => assert!(refused && reason.contains(AUTH_FAILED)),
            other => panic!("{other:?}"),
        }
        let _ = s.write_all(&vote);
        assert!(read_answer(&mut s).is_none(), "a refused peer was answered");
    }
    // A read-write token is no peer either.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&hello(Some(WRITER))).unwrap();
    let f = read_answer(&mut s).unwrap();
    assert_eq!(
        decode_payload::<HelloReply>(&f.payload).unwrap(),
        HelloReply::Accepted {
            role: Role::ReadWrite
        }
    );
    s.write_all(&vote).unwrap();
    assert!(
        read_answer(&mut s).is_none(),
        "a read-write connection's vote was answered"
    );

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&hello(Some(ADMIN))).unwrap();
    assert!(read_answer(&mut s).is_some());
    s.write_all(&vote).unwrap();
    let f = read_answer(&mut s).expect("the admin's vote is answered");
    assert_eq!(f.kind, FrameKind::RaftResponse);
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends `bytes` (then, with `close`, shuts the write side) and expects the server to close
/// the connection, after at most a hello refusal, within the handshake bound.
fn expect_closed(addr: &str, bytes: &[u8], close: bool) {
    use siltdb_client::auth::HelloReply;
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(bytes);
    if close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    if let Some(f) = read_answer(&mut s) {
        match siltdb_client::frame::decode_payload::<HelloReply>(&f.payload) {
            Ok(HelloReply::Refused { reason }) => assert!(reason.contains(AUTH_FAILED)),
            other => panic!("answered {other:?} to {:?}", &bytes[..bytes.len().min(16)]),
        }
        assert!(
            read_answer(&mut s).is_none(),
            "not closed after the refusal"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_oversized_and_truncated_frames_close_one_connection() {
    let tokens = Tokens::new();
    let file = tokens.server_file();
    for auth in [false, true] {
        let extra: Vec<&str> = if auth {
            vec!["--auth-token-file", &file]
        } else {
            vec![]
        };
        let c = Cluster::start_bare(1, &extra);
        let cl = client(&c, auth.then_some(ADMIN));
        cl.create_table(&c.layout).await.expect("create table");
        let addr = c.addr(1);
        let pid = c.proc(1).pid().unwrap();
        // A long-lived good connection survives every bad one.
        cl.put(TABLE, b"before", b"1").await.unwrap();

        let mut four_gib = vec![0xff; 4];
        four_gib.extend_from_slice(&[0; 4]);
        let mut big_hello = raw_frame(siltdb_client::frame::FrameKind::Hello, vec![]);
        // A hello whose payload claims a secret of 2^60 bytes.
        let mut payload = vec![1u8];
        payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
        big_hello.clear();
        big_hello.extend(raw_frame(siltdb_client::frame::FrameKind::Hello, payload));
        let mut truncated = hello(Some(ADMIN));
        truncated.truncate(truncated.len() - 5);
        let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let cases: [(&str, &[u8], bool); 5] = [
            ("4 GiB length prefix", &four_gib, false),
            ("hello claiming 2^60 bytes", &big_hello, false),
            ("truncated frame", &truncated, true),
            ("HTTP request", &http, false),
            ("garbage", &garbage, false),
        ];
        let rss_before = rss_kib(pid);
        for round in 0..50 {
            for (name, bytes, close) in &cases {
                let t = Instant::now();
                expect_closed(&addr, bytes, *close);
                assert!(t.elapsed() < Duration::from_secs(15), "{name}");
            }
            if round % 10 == 0 {
                assert!(
                    matches!(
                        call(&cl, &addr, &ClientRequest::Stats).await,
                        ClientResponse::Stats(_)
                    ),
                    "round {round}"
                );
            }
        }
        cl.put(TABLE, b"after", b"2").await.unwrap();
        assert_eq!(cl.get(TABLE, b"before").await.unwrap(), Some(b"1".to_vec()));
        let rss_after = rss_kib(pid);
        eprintln!("auth={auth}: rss {rss_before} KiB -> {rss_after} KiB after 250 bad connections");
        assert!(
            rss_after < rss_before + 64 * 1024,
            "memory grew from {rss_before} to {rss_after} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_loads_are_confined_to_the_root() {
    let tokens = Tokens::new();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("bulk-root");
    let outside = base.path().join("outside");
    for d in [&root, &outside] {
        for p in 0..PARTITIONS {
            std::fs::create_dir_all(d.join("load").join(p.to_string())).unwrap();
        }
    }
    let root_s = root.display().to_string();
    let file = tokens.server_file();
    let c = Cluster::start_bare(
        1,
        &["--auth-token-file", &file, "--bulk-load-root", &root_s],
    );
    let cl = client(&c, Some(ADMIN));
    cl.create_table(&c.layout).await.unwrap();
    let admin = tokens.path("admin");
    let traversal = format!("{root_s}/../outside/load");
    let (ok, out) = admin_cli(
        &c,
        Some(&admin),
        &["start-bulk-load", "--table", TABLE, "--dir", &traversal],
    );
    assert!(!ok && out.contains("traversal"), "{out}");
    let elsewhere = outside.join("load").display().to_string();
    let (ok, out) = admin_cli(
        &c,
        Some(&admin),
        &["start-bulk-load", "--table", TABLE, "--dir", &elsewhere],
    );
    assert!(!ok && out.contains("outside the bulk-load root"), "{out}");
    std::os::unix::fs::symlink(outside.join("load"), root.join("escape")).unwrap();
    let link = root.join("escape").display().to_string();
    let (ok, out) = admin_cli(
        &c,
        Some(&admin),
        &["start-bulk-load", "--table", TABLE, "--dir", &link],
    );
    assert!(!ok && out.contains("outside the bulk-load root"), "{out}");
    // Inside the root the request passes the confinement (and fails later: no metadata).
    let inside = root.join("load").display().to_string();
    let (ok, out) = admin_cli(
        &c,
        Some(&admin),
        &["start-bulk-load", "--table", TABLE, "--dir", &inside],
    );
    assert!(
        !ok && out.contains("lacks") && !out.contains("outside"),
        "{out}"
    );
    // A writer may not start one at all.
    let (ok, out) = admin_cli(
        &c,
        Some(&tokens.path("writer")),
        &["start-bulk-load", "--table", TABLE, "--dir", &inside],
    );
    assert!(!ok && out.contains(AUTH_FAILED), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_endpoint_requires_auth() {
    use redis::Commands;
    let tokens = Tokens::new();
    let file = tokens.server_file();
    let c = Cluster::start_bare(
        1,
        &[
            "--auth-token-file",
            &file,
            "--redis-listen",
            "127.0.0.1:0",
            "--redis-table",
            TABLE,
            "--redis-addr-file",
            "{dir}/redis-addr",
        ],
    );
    client(&c, Some(ADMIN))
        .create_table(&c.layout)
        .await
        .unwrap();
    let f = c.proc(1).dir.join("redis-addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&f) {
            break a;
        }
        assert!(Instant::now() < deadline, "no redis address");
        std::thread::sleep(Duration::from_millis(20));
    };
    let connect = |url: String| {
        redis::Client::open(url)
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(10))
    };
    tokio::task::block_in_place(|| {
        let mut anon = connect(format!("redis://{addr}/")).unwrap();
        let e = anon.get::<_, Option<String>>("k").unwrap_err();
        assert_eq!(e.code(), Some("NOAUTH"), "{e}");
        let e = redis::cmd("AUTH")
            .arg("wrong-secret-0123456789")
            .query::<String>(&mut anon)
            .unwrap_err();
        assert!(e.to_string().contains(AUTH_FAILED), "{e}");
        redis::cmd("AUTH")
            .arg(WRITER)
            .query::<String>(&mut anon)
            .unwrap();
        let _: () = anon.set("k", "v").unwrap();
        assert_eq!(anon.get::<_, String>("k").unwrap(), "v");

        // The password in the URL: the crate sends AUTH <user> <secret> itself.
        let mut reader = connect(format!("redis://reader:{READER}@{addr}/")).unwrap();
        assert_eq!(reader.get::<_, String>("k").unwrap(), "v");
        let e = reader.set::<_, _, ()>("k", "w").unwrap_err();
        assert!(e.to_string().to_uppercase().contains("NOPERM"), "{e}");
        assert!(connect(format!("redis://x:wrong-secret-0123456789@{addr}/")).is_err());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_stalled_handshake_is_closed() {
    let c = Cluster::start_bare(1, &[]);
    let addr = c.addr(1);
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled.write_all(&hello(None)[..5]).unwrap();
    tokio::task::block_in_place(|| {
        for s in [&mut silent, &mut stalled] {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = [0u8; 16];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => panic!("not closed: {other:?}"),
            }
        }
    });
    let took = started.elapsed();
    let bound = siltdb_replica::transport::serve::MAX_HANDSHAKE;
    assert!(
        took >= bound && took < bound + Duration::from_secs(10),
        "{took:?}"
    );
    // And the server still serves.
    assert!(matches!(
        call(&client(&c, None), &addr, &ClientRequest::Stats).await,
        ClientResponse::Stats(_)
    ));
}

#[test]
fn a_short_secret_stops_the_server_and_no_token_file_warns() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "admin long-enough-secret-0001\nread-only short\n").unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_silt-server"))
            .args(["--node-id", "1", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--addr-file")
            .arg(dir.path().join("addr"))
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let tokens_s = tokens.display().to_string();
    let out = run(&["--auth-token-file", &tokens_s])
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&tokens_s) && err.contains("line 2"), "{err}");

    // Without a token file the server starts and says it is unauthenticated.
    let mut child = run(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("addr").exists() {
        assert!(Instant::now() < deadline, "no address file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
}

/// A CA and a certificate it signed for 127.0.0.1, written as PEM files under `dir`:
/// `(ca, cert, key)`.
fn tls_files(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn tls_client(c: &Cluster, secret: &str, ca: &Path) -> Client {
    let tls = siltdb_client::tls::TlsClient::from_ca_file(ca).unwrap();
    let mut o = ClientOptions::new(c.procs.iter().map(|p| p.addr.clone()).collect())
        .with_token(Some(Secret::new(secret.as_bytes().to_vec()).unwrap()))
        .with_tls(Some(tls));
    o.deadline = Duration::from_secs(60);
    o.rpc_timeout = Duration::from_secs(8);
    Client::new(o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_on_and_off() {
    let tokens = Tokens::new();
    let file = tokens.server_file();
    let (ca, cert, key) = tls_files(tokens.dir.path(), "good");
    let (other_ca, _, _) = tls_files(tokens.dir.path(), "other");
    let (ca_s, cert_s, key_s) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    // Three TLS nodes: the table's Rafts replicate over TLS.
    let c = Cluster::start_bare(
        3,
        &[
            "--auth-token-file",
            &file,
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
            "--tls-ca",
            &ca_s,
        ],
    );
    let admin = tls_client(&c, ADMIN, &ca);
    admin
        .create_table(&c.layout)
        .await
        .expect("create table over TLS");
    admin.put(TABLE, b"k", b"v").await.unwrap();
    let reader = tls_client(&c, READER, &ca);
    assert_eq!(reader.get(TABLE, b"k").await.unwrap(), Some(b"v".to_vec()));
    let addr = c.addr(1);

    // Plain TCP to a TLS server, and a client trusting another CA, are refused.
    let e = client(&c, Some(ADMIN))
        .call_with_timeout(&addr, &ClientRequest::Stats, Duration::from_secs(5))
        .await;
    assert!(e.is_err(), "plain TCP answered: {e:?}");
    let e = tls_client(&c, ADMIN, &other_ca)
        .call_with_timeout(&addr, &ClientRequest::Stats, Duration::from_secs(5))
        .await;
    assert!(e.is_err(), "an untrusted certificate was accepted: {e:?}");
    // TLS does not replace the token.
    let tls = siltdb_client::tls::TlsClient::from_ca_file(&ca).unwrap();
    let anon = Client::new(ClientOptions::new(vec![addr.clone()]).with_tls(Some(tls)));
    assert!(matches!(
        call(&anon, &addr, &ClientRequest::Stats).await,
        ClientResponse::Error(ServerError::Unauthenticated(_))
    ));

    // silt-admin with --tls-ca and a token; without --tls-ca it fails.
    let admin_file = tokens.path("admin");
    let (ok, out) = admin_cli(&c, Some(&admin_file), &["--tls-ca", &ca_s, "tables"]);
    assert!(ok && out.contains(TABLE), "{out}");
    let (ok, out) = admin_cli(&c, Some(&admin_file), &["tables"]);
    assert!(!ok, "{out}");

    // TLS off: a TLS client to a plain server fails, and the server keeps serving.
    let plain = Cluster::start_bare(1, &[]);
    let e = tls_client(&plain, ADMIN, &ca)
        .call_with_timeout(
            &plain.addr(1),
            &ClientRequest::Stats,
            Duration::from_secs(5),
        )
        .await;
    assert!(e.is_err(), "{e:?}");
    assert!(matches!(
        call(&client(&plain, None), &plain.addr(1), &ClientRequest::Stats).await,
        ClientResponse::Stats(_)
    ));
}
