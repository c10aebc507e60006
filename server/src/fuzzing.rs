//! Fuzz entry points of the server crate's decoders, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/server_request.rs`) and the stable corpus replay
//! (`server/tests/fuzz_corpus.rs`).
//!
//! Layer: test support (the decoders it drives are the client crate's).
//!
//! `server_request` feeds the bytes to every decoder a server or client runs on input from the
//! network or a data directory: the bincode payloads of [`ClientRequest`] and
//! [`ClientResponse`] (what a connection carries after its frame was checked), and the JSON of
//! a stored [`TableLayout`]. A decoded value must re-encode and decode to the same value; a
//! decoded layout must validate or be refused, never panic, and a valid one must place every
//! partition on nodes it lists.
//!
//! `server_handshake` drives what a connection's first bytes reach: the frame decoder (with
//! its size cap), the [`Hello`]/[`HelloReply`] payloads, the keyring's authentication of a
//! decoded hello, the token-file parser on the bytes as text, the role check of a decoded
//! request and the Redis endpoint's AUTH. A hello is accepted exactly when it carries one of
//! the keyring's secrets, with that secret's role; a request is refused exactly below its role.

use crate::auth::{Keyring, Role, Secret};
use crate::layout::{NodeInfo, TableLayout};
use crate::meta::MetaRequest;
use crate::proto::{ClientRequest, ClientResponse};
use siltdb_client::auth::{Hello, HelloReply};
use siltdb_client::frame::{decode_frame, FrameKind, MAX_FRAME_SIZE_BYTES};
use siltdb_replica::transport::frame::{decode_payload, encode_payload};
use siltdb_replica::WriteOp;

/// A fuzz target body: panics only on a bug.
pub type Target = fn(&[u8]);

/// Every server fuzz target: `(name, entry point)`.
pub const TARGETS: &[(&str, Target)] = &[
    ("server_request", server_request),
    ("server_handshake", server_handshake),
];

/// The secrets of the keyring [`server_handshake`] authenticates against.
const FUZZ_SECRETS: [(Role, &[u8]); 3] = [
    (Role::Admin, b"fuzz-admin-secret-0001"),
    (Role::ReadWrite, b"fuzz-writer-secret-001"),
    (Role::ReadOnly, b"fuzz-reader-secret-001"),
];

fn fuzz_keyring() -> Keyring {
    Keyring::new(
        FUZZ_SECRETS
            .iter()
            .map(|(r, s)| (*r, Secret::new(s.to_vec()).expect("a long enough secret")))
            .collect(),
    )
}

/// The first frame of a connection and what it leads to; see the module docs.
pub fn server_handshake(data: &[u8]) {
    let keyring = fuzz_keyring();
    let mut payloads = vec![data.to_vec()];
    match decode_frame(data) {
        Ok(Some((frame, used))) => {
            assert!(used <= data.len() && used <= MAX_FRAME_SIZE_BYTES + 8);
            if frame.kind == FrameKind::Hello || frame.kind == FrameKind::ClientRequest {
                payloads.push(frame.payload);
            }
        }
        Ok(None) => assert!(data.len() < MAX_FRAME_SIZE_BYTES + 8),
        Err(_) => {}
    }
    for p in &payloads {
        if let Ok(hello) = decode_payload::<Hello>(p) {
            let verdict = keyring.authenticate(hello.token.as_ref());
            let expected = hello.token.as_ref().and_then(|t| {
                FUZZ_SECRETS
                    .iter()
                    .find(|(_, s)| Secret::new(s.to_vec()).is_ok_and(|s| s.matches(t)))
                    .map(|(r, _)| *r)
            });
            match (verdict, expected) {
                (Ok(role), Some(want)) => assert_eq!(role, want),
                (Err(reason), None) => assert!(reason.contains(crate::auth::AUTH_FAILED)),
                (got, want) => panic!("hello authenticated as {got:?}, expected {want:?}"),
            }
        }
        if let Ok(reply) = decode_payload::<HelloReply>(p) {
            let again = encode_payload(&reply).expect("a decoded reply re-encodes");
            assert_eq!(decode_payload::<HelloReply>(&again).ok(), Some(reply));
        }
        if let Ok(req) = decode_payload::<ClientRequest>(p) {
            let needed = crate::auth::required_role(&req);
            for role in Role::ALL {
                assert_eq!(
                    crate::auth::permission_error(&req, role).is_some(),
                    role < needed
                );
            }
        }
        let _ = crate::redis::auth::check(&keyring, p);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Keyring::parse(&text, std::path::Path::new("fuzz")) {
        // Every secret of a parsed file grants its role (the highest, if listed twice).
        assert!(k.counts().iter().sum::<usize>() >= 1);
        if let Some(s) = k.admin_secret() {
            assert_eq!(k.authenticate(Some(s)), Ok(Role::Admin));
        }
    }
}

/// Most partitions a fuzzed valid layout is walked over.
const MAX_PARTITIONS_WALKED: u32 = 256;

/// Decodes `data` as every server-side message and stored layout; see the module docs.
pub fn server_request(data: &[u8]) {
    if let Ok(req) = decode_payload::<ClientRequest>(data) {
        let again = encode_payload(&req).expect("a decoded request re-encodes");
        let back: ClientRequest = decode_payload(&again).expect("request round trip");
        assert_eq!(format!("{req:?}"), format!("{back:?}"));
        if let ClientRequest::CreateTable(l) | ClientRequest::UpdateTable(l) = &req {
            walk_layout(l);
        }
    }
    if let Ok(resp) = decode_payload::<ClientResponse>(data) {
        let again = encode_payload(&resp).expect("a decoded response re-encodes");
        let back: ClientResponse = decode_payload(&again).expect("response round trip");
        assert_eq!(format!("{resp:?}"), format!("{back:?}"));
    }
    if let Ok(layout) = serde_json::from_slice::<TableLayout>(data) {
        walk_layout(&layout);
    }
}

fn walk_layout(l: &TableLayout) {
    if l.validate().is_err() {
        return;
    }
    for p in 0..l.partition_count.min(MAX_PARTITIONS_WALKED) {
        let replicas = l.replicas(p);
        assert!(
            !replicas.is_empty(),
            "partition {p} of a valid layout has no replica"
        );
        for n in &replicas {
            assert!(
                l.nodes.contains(n),
                "partition {p} placed on an unlisted node"
            );
        }
        let _ = l.partition_of(&p.to_le_bytes());
    }
}

/// The generated seed corpus: `(target, name, bytes)`.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let nodes: Vec<NodeInfo> = (1..=3)
        .map(|id| NodeInfo {
            id,
            addr: format!("127.0.0.1:{}", 7100 + id),
        })
        .collect();
    let layout = TableLayout::new("t", 1, 8, 3, nodes.clone());
    let moved = layout
        .with_replica_moved(
            2,
            3,
            &NodeInfo {
                id: 4,
                addr: "127.0.0.1:7104".into(),
            },
        )
        .expect("a valid move");
    let enc = |v: &ClientRequest| encode_payload(v).expect("seed encodes");
    let mut out = vec![
        (
            "server_request",
            "write",
            enc(&ClientRequest::Write {
                table: "t".into(),
                partition: 3,
                ops: vec![
                    WriteOp::Put {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                    },
                    WriteOp::Delete { key: b"d".to_vec() },
                ],
            }),
        ),
        (
            "server_request",
            "scan",
            enc(&ClientRequest::Scan {
                table: "t".into(),
                partition: 0,
                start: b"a".to_vec(),
                end: Some(b"z".to_vec()),
                limit: 100,
                partition_count: 0,
            }),
        ),
        (
            "server_request",
            "create-table",
            enc(&ClientRequest::CreateTable(layout.clone())),
        ),
        (
            "server_request",
            "update-table",
            enc(&ClientRequest::UpdateTable(moved.clone())),
        ),
        (
            "server_request",
            "meta-move",
            enc(&ClientRequest::Meta(MetaRequest::MoveReplica {
                table: "t".into(),
                partition: 2,
                from: 3,
                to: 4,
                catch_up_ms: 1000,
            })),
        ),
        (
            "server_request",
            "response-rows",
            encode_payload(&ClientResponse::Rows {
                rows: vec![(b"k".to_vec(), b"v".to_vec())],
                resume_from: Some(b"l".to_vec()),
            })
            .expect("seed encodes"),
        ),
    ];
    out.push((
        "server_request",
        "layout-json",
        serde_json::to_vec_pretty(&moved).expect("layout json"),
    ));
    let frame = |kind: FrameKind, payload: Vec<u8>| {
        siltdb_client::frame::encode_frame(&siltdb_client::frame::Frame {
            kind,
            request_id: 1,
            payload,
        })
        .expect("seed frame")
    };
    let hello = |secret: Option<&[u8]>| Hello {
        token: secret.map(|s| Secret::new(s.to_vec()).expect("seed secret")),
    };
    let hello_frame = |secret| {
        frame(
            FrameKind::Hello,
            encode_payload(&hello(secret)).expect("seed hello"),
        )
    };
    out.push((
        "server_handshake",
        "hello-admin",
        hello_frame(Some(FUZZ_SECRETS[0].1)),
    ));
    out.push((
        "server_handshake",
        "hello-reader",
        hello_frame(Some(FUZZ_SECRETS[2].1)),
    ));
    out.push(("server_handshake", "hello-none", hello_frame(None)));
    out.push((
        "server_handshake",
        "hello-wrong",
        hello_frame(Some(b"not-a-known-secret-01")),
    ));
    out.push((
        "server_handshake",
        "reply-refused",
        encode_payload(&HelloReply::Refused {
            reason: "authentication failed: wrong token".into(),
        })
        .expect("seed reply"),
    ));
    out.push((
        "server_handshake",
        "request-checkpoint",
        frame(
            FrameKind::ClientRequest,
            enc(&ClientRequest::Checkpoint { table: "t".into() }),
        ),
    ));
    out.push((
        "server_handshake",
        "length-4gib",
        vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 5],
    ));
    out.push((
        "server_handshake",
        "http-get",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ));
    out.push((
        "server_handshake",
        "token-file",
        b"# roles\nadmin fuzz-admin-secret-0001\nread-only fuzz-reader-secret-001\n".to_vec(),
    ));
    out
}

/// Writes [`seeds`] under `corpus_dir/<target>/seed-<name>`.
pub fn write_seeds(corpus_dir: &std::path::Path) -> std::io::Result<usize> {
    siltdb::fuzzing::corpus::write_seeds(corpus_dir, &seeds())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arbitrary bytes and every single-byte corruption and truncation of the seeds.
    #[test]
    fn decoders_survive_arbitrary_and_mutated_bytes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            server_request(&bytes);
            server_handshake(&bytes);
        }
        for (_, _, seed) in seeds() {
            for (_, target) in TARGETS {
                target(&seed);
                for i in 0..seed.len() {
                    target(&seed[..i]);
                    let mut m = seed.clone();
                    m[i] ^= 1 << (next() % 8);
                    target(&m);
                    m[i] = next() as u8;
                    target(&m);
                }
            }
        }
    }
}
