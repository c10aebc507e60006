//! The TCP transport: Raft traffic between nodes (and, for the server crate, client traffic)
//! as length-prefixed, checksummed frames on tokio.
//!
//! Why a framed protocol with serde/bincode rather than tonic/gRPC: every message is already a
//! serde type (openraft's RPCs with its `serde` feature, our `Mutation`), so bincode encodes
//! them with no schema to keep in sync, no protoc and no code generation in the build, and one
//! dependency stack (tokio, serde) the workspace already has. What gRPC would add — HTTP/2
//! multiplexing, streaming — we need in a simple form only: one outstanding request per
//! connection, with a connection per replication stream, and snapshot streaming as a sequence
//! of acknowledged chunk frames (which gives flow control and per-chunk timeouts for free).
//!
//! Files: [`frame`] (wire format, fuzz-safe decoder) and [`conn`] (client connection: lazy
//! connect, reconnect, timeouts), both in the client crate; [`message`] (Raft RPC envelopes), [`network`] (openraft's
//! network traits; snapshot sending), [`receiver`] (snapshot staging), [`service`] (routing
//! by gpid), [`serve`](mod@serve) (accept loop with bounded connections and shutdown), [`fault`] (the
//! partition hook), [`metrics`].

pub mod fault;
pub mod message;
pub mod metrics;
pub mod network;
pub mod receiver;
pub mod serve;
pub mod service;

/// The client connection (re-exported from the client crate, which owns the wire protocol).
pub use siltdb_client::conn;
/// The wire format of frames (re-exported from the client crate, which owns the wire protocol).
pub use siltdb_client::frame;

pub use conn::{CallError, FramedConn};
pub use fault::FaultHook;
pub use frame::{Frame, FrameError, FrameKind, MAX_FRAME_SIZE_BYTES};
pub use message::{RaftEnvelope, RaftRequest, RaftResponse, Refusal};
pub use metrics::{TransportMetrics, TransportMetricsSnapshot};
pub use network::TcpNetworkFactory;
pub use serve::{serve, serve_tls, FrameHandler, Reply};
pub use service::{RaftHost, RaftService};

use std::sync::Arc;

/// A [`FrameHandler`] serving only Raft requests through a [`RaftService`] (a node without
/// client traffic, as in the replica crate's tests).
pub struct RaftOnlyHandler(pub Arc<RaftService>);

impl FrameHandler for RaftOnlyHandler {
    fn handle(self: Arc<Self>, request: Frame, _role: siltdb_client::auth::Role) -> Reply {
        Box::pin(async move { handle_raft_frame(&self.0, request).await })
    }
}

/// Decodes a Raft request frame, serves it and encodes the answer; `None` for another kind or
/// an undecodable payload (the connection is closed).
pub async fn handle_raft_frame(service: &RaftService, request: Frame) -> Option<Frame> {
    if request.kind != FrameKind::RaftRequest {
        return None;
    }
    let env: RaftEnvelope = match frame::decode_payload(&request.payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(error = %e, "undecodable raft request");
            return None;
        }
    };
    let resp = service.handle(env).await;
    let payload = match frame::encode_payload(&resp) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "raft response not encodable");
            return None;
        }
    };
    Some(Frame {
        kind: FrameKind::RaftResponse,
        request_id: request.request_id,
        payload,
    })
}
