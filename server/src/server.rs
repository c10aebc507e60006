//! A running server: the listener (Raft and client frames on one port), the node's replicas,
//! the checkpoint timer, and a graceful shutdown that stops accepting, joins every task and
//! closes every replica.
//!
//! Layer: top, with [`crate::dispatch`]; it opens the [`Node`], starts its [`Services`] and
//! hands every decoded client request to [`Services::handle`].

use crate::config::ServerConfig;
use crate::dispatch::Services;
use crate::error::{Error, Result};
use crate::node::{Node, NodeOptions};
use crate::proto::{ClientRequest, ClientResponse};
use siltdb_replica::transport::frame::{self, Frame, FrameKind};
use siltdb_replica::transport::{
    handle_raft_frame, serve, FaultHook, FrameHandler, RaftHost, RaftService, Reply,
    TransportMetrics,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound on joining the listener and timer tasks at shutdown.
pub const SHUTDOWN_TASKS_MAX: Duration = Duration::from_secs(20);

struct Handler {
    raft: Arc<RaftService>,
    node: Arc<Node>,
    services: Arc<Services>,
}

impl FrameHandler for Handler {
    fn handle(self: Arc<Self>, request: Frame) -> Reply {
        Box::pin(async move {
            match request.kind {
                FrameKind::RaftRequest => handle_raft_frame(&self.raft, request).await,
                FrameKind::ClientRequest => {
                    let resp = match frame::decode_payload::<ClientRequest>(&request.payload) {
                        Ok(req) => self.services.handle(&self.node, req).await,
                        Err(e) => {
                            ClientResponse::Error(crate::error::ServerError::InvalidArgument(
                                format!("undecodable request: {e}"),
                            ))
                        }
                    };
                    let payload = match frame::encode_payload(&resp) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(error = %e, "response not encodable");
                            frame::encode_payload(&ClientResponse::Error(
                                crate::error::ServerError::Internal(e.to_string()),
                            ))
                            .ok()?
                        }
                    };
                    Some(Frame {
                        kind: FrameKind::ClientResponse,
                        request_id: request.request_id,
                        payload,
                    })
                }
                _ => None,
            }
        })
    }
}

/// A started server.
pub struct Server {
    node: Arc<Node>,
    services: Arc<Services>,
    addr: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds, opens the node's replicas and starts serving. Must run inside a tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Error::io(&config.listen, e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io(&config.listen, e))?
            .to_string();
        let addr = config.advertise.clone().unwrap_or(bound);
        let fault = Arc::new(FaultHook::default());
        let metrics = Arc::new(TransportMetrics::default());
        let node = Node::open(
            NodeOptions {
                node_id: config.node_id,
                addr: addr.clone(),
                data_dir: config.data_dir.clone(),
                raft: config.raft_config(),
                request_timeout: config.request_timeout(),
                memtable_size_bytes: config.memtable_size_bytes,
                allow_fault_injection: config.allow_fault_injection,
                resources: Some(config.engine_resources()?),
            },
            Arc::clone(&fault),
            Arc::clone(&metrics),
        )
        .await?;
        let services = Arc::new(Services::start(&node)?);
        let raft = Arc::new(RaftService::new(
            Arc::clone(&node) as Arc<dyn RaftHost>,
            fault,
            metrics,
        ));
        let (stop, rx) = watch::channel(false);
        let handler = Arc::new(Handler {
            raft,
            node: Arc::clone(&node),
            services: Arc::clone(&services),
        });
        let mut tasks = vec![tokio::spawn(serve(listener, handler, rx.clone()))];
        if config.checkpoint_interval_ms > 0 {
            tasks.push(tokio::spawn(checkpoint_timer(
                Arc::clone(&node),
                Duration::from_millis(config.checkpoint_interval_ms),
                config.checkpoint_decrees_min,
                rx.clone(),
            )));
        }
        if let Some(listen) = &config.metrics_listen {
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| Error::io(listen, e))?;
            let bound = l.local_addr().map_err(|e| Error::io(listen, e))?;
            tracing::info!(%bound, "metrics endpoint listening");
            eprintln!("silt-server metrics on {bound}");
            tasks.push(tokio::spawn(crate::metrics::serve(
                l,
                Arc::clone(&node),
                rx.clone(),
            )));
        }
        if config.node_failure_grace_ms > 0 {
            tasks.push(tokio::spawn(crate::failure::run(
                Arc::clone(&node),
                Duration::from_millis(config.node_failure_grace_ms),
                rx,
            )));
        }
        if let Some(path) = &config.addr_file {
            write_addr_file(path, &addr)?;
        }
        tracing::info!(node_id = config.node_id, %addr, "silt-server listening");
        Ok(Server {
            node,
            services,
            addr,
            stop,
            tasks,
        })
    }

    /// The address the server advertises.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node's services.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops accepting, joins the tasks (bounded by [`SHUTDOWN_TASKS_MAX`]) and closes every
    /// replica.
    pub async fn shutdown(self) -> Result<()> {
        tracing::info!("shutting down");
        let _ = self.stop.send(true);
        for t in self.tasks {
            match tokio::time::timeout(SHUTDOWN_TASKS_MAX, t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
                Err(_) => tracing::error!("server task did not stop in time"),
            }
        }
        let r = self.services.close(&self.node).await;
        tracing::info!(ok = r.is_ok(), "replicas closed");
        r
    }
}

async fn checkpoint_timer(
    node: Arc<Node>,
    every: Duration,
    decrees_min: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => node.checkpoint_due(decrees_min).await,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Writes `addr` to `path` atomically (temp file + rename).
fn write_addr_file(path: &std::path::Path, addr: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.as_bytes()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
