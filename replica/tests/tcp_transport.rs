//! A 3-replica group whose Raft traffic runs over the TCP transport on 127.0.0.1: replication,
//! a network partition made by the transport's fault hook (the isolated primary cannot commit;
//! the majority elects a new one; healing converges), and a lagging replica learning a
//! checkpoint streamed file by file over TCP.

mod common;

use common::*;
use openraft::Raft;
use parking_lot::RwLock;
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::replica::Replica;
use siltdb_replica::transport::{
    serve, FaultHook, RaftHost, RaftOnlyHandler, RaftService, TcpNetworkFactory, TransportMetrics,
};
use siltdb_replica::{Decree, Gpid};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Default)]
struct Host {
    id: u64,
    rafts: RwLock<HashMap<Gpid, Raft<TypeConfig>>>,
}

impl RaftHost for Host {
    fn node_id(&self) -> u64 {
        self.id
    }
    fn raft(&self, gpid: Gpid) -> Option<Raft<TypeConfig>> {
        self.rafts.read().get(&gpid).cloned()
    }
}

/// One node: a listener serving Raft for its host, with its fault hook and counters.
struct Node {
    id: u64,
    addr: String,
    host: Arc<Host>,
    fault: Arc<FaultHook>,
    metrics: Arc<TransportMetrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_node(id: u64) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let host = Arc::new(Host {
        id,
        ..Host::default()
    });
    let fault = Arc::new(FaultHook::default());
    let metrics = Arc::new(TransportMetrics::default());
    let service = Arc::new(RaftService::new(
        Arc::clone(&host) as Arc<dyn RaftHost>,
        Arc::clone(&fault),
        Arc::clone(&metrics),
    ));
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::new(RaftOnlyHandler(service)), rx));
    Node {
        id,
        addr,
        host,
        fault,
        metrics,
        stop,
        task,
    }
}

async fn open_on(node: &Node, dir: &Path) -> Replica {
    let mut o = options(dir, node.id, None);
    o.raft.heartbeat_interval = 100;
    o.raft.election_timeout_min = 800;
    o.raft.election_timeout_max = 1600;
    let net = TcpNetworkFactory::new(
        GPID,
        node.id,
        Arc::clone(&node.fault),
        Arc::clone(&node.metrics),
    );
    let r = Replica::open_with_network(o, net)
        .await
        .expect("open replica");
    node.host.rafts.write().insert(GPID, r.raft().clone());
    r
}

async fn stop_replica(node: &Node, r: Replica) {
    node.host.rafts.write().remove(&GPID);
    r.close().await.unwrap();
}

async fn start_group(dir: &Path) -> (Vec<Node>, Vec<Option<Replica>>) {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(id).await);
    }
    let mut rs = Vec::new();
    for n in &nodes {
        rs.push(Some(open_on(n, dir).await));
    }
    let members: BTreeMap<u64, openraft::BasicNode> = nodes
        .iter()
        .map(|n| (n.id, openraft::BasicNode::new(n.addr.clone())))
        .collect();
    assert!(rs[0]
        .as_ref()
        .unwrap()
        .initialize_with(members)
        .await
        .unwrap());
    (nodes, rs)
}

async fn stop_all(nodes: Vec<Node>, rs: Vec<Option<Replica>>) {
    for (n, r) in nodes.iter().zip(rs) {
        if let Some(r) = r {
            stop_replica(n, r).await;
        }
    }
    for n in nodes {
        n.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(15), n.task)
            .await
            .expect("listener stops")
            .unwrap();
    }
}

fn live(rs: &[Option<Replica>]) -> Vec<&Replica> {
    rs.iter().flatten().collect()
}

async fn wait_applied_all(rs: &[&Replica], decree: u64) {
    for r in rs {
        r.wait_applied(Decree(decree)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_primary_cannot_commit_and_healing_converges() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, rs) = start_group(dir.path()).await;
    let l = wait_leader(&live(&rs), None).await;
    let leader = rs[l].as_ref().unwrap();
    let mut last = 0;
    for i in 0..30 {
        last = write(leader, put(i, 0)).await;
    }
    wait_applied_all(&live(&rs), last).await;
    for r in live(&rs) {
        assert_eq!(
            r.get(&key(29)).unwrap(),
            Some(value(29, 0)),
            "replica {}",
            r.id()
        );
    }

    // Cut the primary off from both peers, on its own node only: the hook drops both ways.
    let old = leader.id();
    for n in &nodes {
        if n.id != old {
            nodes[l].fault.partition(old, n.id);
        }
    }
    // The isolated primary cannot commit: its write never completes.
    let stuck = tokio::time::timeout(Duration::from_secs(3), leader.write(put(1000, 0))).await;
    assert!(
        !matches!(stuck, Ok(Ok(_))),
        "a write on the isolated primary was acknowledged: {stuck:?}"
    );
    // The majority elects a new primary and accepts writes.
    let others: Vec<&Replica> = live(&rs).into_iter().filter(|r| r.id() != old).collect();
    let n = wait_leader(&others, Some(old)).await;
    for i in 30..60 {
        last = write(others[n], put(i, 1)).await;
    }
    assert!(nodes[l].metrics.snapshot().rpcs_dropped > 0);

    // Heal: the old primary steps down, drops its unacknowledged entry and catches up.
    nodes[l].fault.heal_all();
    wait_applied_all(&live(&rs), last).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader.leader() == Some(old) {
        assert!(Instant::now() < deadline, "old primary did not step down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in live(&rs) {
        for i in 0..60 {
            let want = value(i, u64::from(i >= 30));
            assert_eq!(
                r.get(&key(i)).unwrap(),
                Some(want),
                "replica {} key {i}",
                r.id()
            );
        }
        assert_eq!(r.get(&key(1000)).unwrap(), None, "replica {}", r.id());
    }
    stop_all(nodes, rs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_learns_a_checkpoint_streamed_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, mut rs) = start_group(dir.path()).await;
    let l = wait_leader(&live(&rs), None).await;
    for i in 0..20 {
        write(rs[l].as_ref().unwrap(), put(i, 0)).await;
    }
    let f = (l + 1) % 3;
    let r = rs[f].take().unwrap();
    stop_replica(&nodes[f], r).await;
    let leader = rs[l].as_ref().unwrap();
    for i in 20..300 {
        write(leader, put(i, 0)).await;
    }
    let ck = leader.checkpoint().await.unwrap().expect("a checkpoint");
    leader.purge_log().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader.plog().stats().purged.map(|p| p.index) != Some(ck.0) {
        assert!(Instant::now() < deadline, "leader log not purged to {ck:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = open_on(&nodes[f], dir.path()).await;
    let mut last = 0;
    for i in 300..340 {
        last = write(leader, put(i, 0)).await;
    }
    back.wait_applied(Decree(last)).await.unwrap();
    assert!(
        back.state_machine().checkpoints().decrees().contains(&ck.0),
        "the learner installed checkpoint {ck:?}"
    );
    let sent = nodes[l].metrics.snapshot();
    let got = nodes[f].metrics.snapshot();
    assert!(
        sent.snapshots_sent >= 1 && sent.snapshot_bytes_sent > 0,
        "{sent:?}"
    );
    assert!(got.snapshots_received >= 1, "{got:?}");
    assert_eq!(got.snapshot_bytes_received, sent.snapshot_bytes_sent);
    for i in 0..340 {
        assert_eq!(back.get(&key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    // No staging directory is left behind.
    let staging: Vec<_> = std::fs::read_dir(dir.path().join(format!("r{}", nodes[f].id)))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("learn."))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    rs[f] = Some(back);
    stop_all(nodes, rs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_connection_and_the_node_keeps_serving() {
    use siltdb_replica::transport::frame::{self, Frame, FrameKind, MAX_FRAME_SIZE_BYTES};
    use siltdb_replica::transport::{RaftEnvelope, RaftRequest, RaftResponse, Refusal};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start_node(1).await;
    // Reads until the server closes the connection (bounded).
    async fn closed_after(addr: &str, bytes: &[u8]) -> bool {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
    // Garbage, a length above the limit, a bad checksum, an undecodable payload.
    assert!(closed_after(&node.addr, &[0xff; 64]).await);
    let mut huge = ((MAX_FRAME_SIZE_BYTES + 1) as u32).to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 4]);
    assert!(closed_after(&node.addr, &huge).await);
    let junk = Frame {
        kind: FrameKind::RaftRequest,
        request_id: 1,
        payload: vec![0xee; 40],
    };
    let mut bad_crc = frame::encode_frame(&junk).unwrap();
    bad_crc[4] ^= 1;
    assert!(closed_after(&node.addr, &bad_crc).await);
    assert!(closed_after(&node.addr, &frame::encode_frame(&junk).unwrap()).await);
    // A response frame sent as a request.
    let resp = Frame {
        kind: FrameKind::RaftResponse,
        ..junk
    };
    assert!(closed_after(&node.addr, &frame::encode_frame(&resp).unwrap()).await);

    // The node still answers a well-formed request: no such partition, wrong node.
    let mut conn = siltdb_replica::transport::FramedConn::new(node.addr.clone());
    for (to, want) in [
        (1, Refusal::NoSuchPartition),
        (9, Refusal::WrongNode { this: 1 }),
    ] {
        let env = RaftEnvelope {
            gpid: Gpid::new(7, 7),
            from: 2,
            to,
            body: RaftRequest::Vote(openraft::raft::VoteRequest::new(
                openraft::Vote::new(1, 2),
                None,
            )),
        };
        let bytes = conn
            .call(
                FrameKind::RaftRequest,
                FrameKind::RaftResponse,
                frame::encode_payload(&env).unwrap(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        match frame::decode_payload::<RaftResponse>(&bytes).unwrap() {
            RaftResponse::Refused(r) => assert_eq!(r, want),
            other => panic!("{other:?}"),
        }
    }
    node.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), node.task)
        .await
        .unwrap()
        .unwrap();
}
