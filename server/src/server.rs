//! A running server: the listener (Raft and client frames on one port), the node's replicas
//! (each with its own periodic checkpoint task, configured from [`ServerConfig::maintenance`]),
//! the node's timers, and a graceful shutdown that stops accepting, joins every task and
//! closes every replica.
//!
//! Layer: top, with [`crate::dispatch`]; it opens the [`Node`], starts its [`Services`] and
//! hands every decoded client request to [`Services::handle`].
//!
//! Security: with a token file every connection must authenticate in its handshake
//! ([`crate::auth`]); Raft frames need the admin role and every client request the role
//! [`crate::auth::required_role`] names, checked here before dispatch.

use crate::auth::{Keyring, Role, AUTH_FAILED};
use crate::config::ServerConfig;
use crate::dispatch::Services;
use crate::error::{Error, Result};
use crate::node::{Node, NodeOptions};
use crate::proto::{ClientRequest, ClientResponse};
use siltdb_client::tls::{TlsClient, TlsServer};
use siltdb_replica::transport::frame::{self, Frame, FrameKind};
use siltdb_replica::transport::{
    handle_raft_frame, serve_tls, FaultHook, FrameHandler, RaftHost, RaftService, Reply,
    TransportMetrics,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound on joining the listener and timer tasks at shutdown.
pub const MAX_SHUTDOWN_TASKS: Duration = Duration::from_secs(20);

struct Handler {
    raft: Arc<RaftService>,
    node: Arc<Node>,
    services: Arc<Services>,
    keyring: Option<Arc<Keyring>>,
}

fn response_frame(request_id: u64, resp: &ClientResponse) -> Option<Frame> {
    let payload = match frame::encode_payload(resp) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "response not encodable");
            frame::encode_payload(&ClientResponse::Error(crate::error::ServerError::Internal(
                e.to_string(),
            )))
            .ok()?
        }
    };
    Some(Frame {
        kind: FrameKind::ClientResponse,
        request_id,
        payload,
    })
}

impl FrameHandler for Handler {
    fn authenticate(&self, hello: Option<&siltdb_client::auth::Hello>) -> Result<Role, String> {
        match &self.keyring {
            None => Ok(Role::Admin),
            Some(k) => k.authenticate(hello.and_then(|h| h.token.as_ref())),
        }
    }

    fn refuse(&self, request: &Frame, reason: &str) -> Option<Frame> {
        // A Raft peer gets no answer (the connection closes); a client learns why.
        (request.kind == FrameKind::ClientRequest).then_some(())?;
        let reason = if reason.contains(AUTH_FAILED) {
            reason.to_string()
        } else {
            format!("{AUTH_FAILED}: {reason}")
        };
        response_frame(
            request.request_id,
            &ClientResponse::Error(crate::error::ServerError::Unauthenticated(reason)),
        )
    }

    fn handle(self: Arc<Self>, request: Frame, role: Role) -> Reply {
        Box::pin(async move {
            match request.kind {
                FrameKind::RaftRequest if role < Role::Admin => {
                    tracing::info!(%role, "refused a Raft request from a non-admin connection");
                    None
                }
                FrameKind::RaftRequest => handle_raft_frame(&self.raft, request).await,
                FrameKind::ClientRequest => {
                    let resp = match frame::decode_payload::<ClientRequest>(&request.payload) {
                        Ok(req) => match crate::auth::permission_error(&req, role) {
                            Some(refusal) => {
                                self.node.count_error(&refusal);
                                ClientResponse::Error(refusal)
                            }
                            None => self.services.handle(&self.node, req).await,
                        },
                        Err(e) => {
                            ClientResponse::Error(crate::error::ServerError::InvalidArgument(
                                format!("undecodable request: {e}"),
                            ))
                        }
                    };
                    response_frame(request.request_id, &resp)
                }
                _ => None,
            }
        })
    }
}

/// A started server.
pub struct Server {
    keyring: Option<Arc<Keyring>>,
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
        let keyring = match &config.auth_token_file {
            Some(path) => {
                let k =
                    Keyring::from_file(path).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                let [ro, rw, admin] = k.counts();
                tracing::info!(
                    file = %path.display(),
                    admin,
                    read_write = rw,
                    read_only = ro,
                    "authentication on: every connection must present a token"
                );
                Some(Arc::new(k))
            }
            None => {
                tracing::warn!(
                    "no --auth-token-file: this server is UNAUTHENTICATED; anyone who reaches \
                     its port can read, write and administer the cluster"
                );
                None
            }
        };
        if config.bulk_load_root.is_none() {
            tracing::warn!(
                "no --bulk-load-root: bulk loads may read any absolute path on this host"
            );
        }
        let (tls_server, tls_client) = tls_settings(&config)?;
        let secret = keyring.as_ref().and_then(|k| k.admin_secret().cloned());
        if keyring.is_some() && secret.is_none() {
            tracing::warn!(
                "the token file has no admin secret: this node cannot reach its peers or push \
                 layouts"
            );
        }
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
                credentials: crate::auth::Credentials {
                    token: secret,
                    tls: tls_client,
                },
                bulk_load_root: config.bulk_load_root.clone(),
                maintenance: config.maintenance(),
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
            keyring: keyring.clone(),
        });
        let mut tasks = vec![tokio::spawn(serve_tls(
            listener,
            handler,
            rx.clone(),
            tls_server,
        ))];
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
                Arc::clone(&services),
                rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(envs_timer(Arc::clone(&node), rx.clone())));
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
            keyring,
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

    /// The secrets of `--auth-token-file` (`None`: unauthenticated).
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node's services.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops accepting, joins the tasks (bounded by [`MAX_SHUTDOWN_TASKS`]) and closes every
    /// replica.
    pub async fn shutdown(self) -> Result<()> {
        tracing::info!("shutting down");
        let _ = self.stop.send(true);
        for t in self.tasks {
            match tokio::time::timeout(MAX_SHUTDOWN_TASKS, t).await {
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

/// The app envs timer ([`crate::envs`]): scenarios re-applied, manual compactions run.
async fn envs_timer(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::envs::ENVS_TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => node.envs_tick().await,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The TLS acceptor and the client settings of the node's own connections, when configured.
fn tls_settings(config: &ServerConfig) -> Result<(Option<TlsServer>, Option<TlsClient>)> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok((None, None));
    };
    let bad = |e: siltdb_client::tls::TlsError| Error::InvalidArgument(e.to_string());
    let server = TlsServer::from_files(cert, key).map_err(bad)?;
    let client = TlsClient::from_ca_file(config.tls_ca.as_deref().unwrap_or(cert)).map_err(bad)?;
    tracing::info!(cert = %cert.display(), "TLS on: every connection must speak TLS");
    Ok((Some(server), Some(client)))
}

/// Writes `addr` to `path` atomically and durably ([`siltdb::fs::write_atomic`]).
fn write_addr_file(path: &std::path::Path, addr: &str) -> Result<()> {
    siltdb::fs::write_atomic(&siltdb::fs::StdFs, path, addr.as_bytes()).map_err(|e| match e {
        siltdb::Error::Io { path, source } => Error::io(path, source),
        other => Error::io(path, std::io::Error::other(other.to_string())),
    })
}
