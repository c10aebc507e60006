//! The accept loop: one task per connection, request/response frames in order, a bounded
//! number of connections, and a shutdown that stops accepting and joins every task.
//!
//! Every connection starts with the handshake (`siltdb_client::auth`): its first frame must
//! arrive within [`MAX_HANDSHAKE`]; a hello is answered by [`FrameHandler::authenticate`]
//! (refused: the refusal is sent and the connection closed). A first frame that is no hello is
//! served as a connection without a secret would be: with the role `authenticate(None)` grants,
//! or, refused, answered by [`FrameHandler::refuse`] and closed. Every later request is handed
//! to the handler with the connection's role. Garbage, an oversized length or a truncated frame
//! closes that connection only.

use super::frame::{self, Frame, FrameKind};
use siltdb_client::auth::{Hello, HelloReply, Role};
use siltdb_client::tls::{Stream, TlsServer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Most connections a listener serves at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for connection tasks before aborting them.
pub const MAX_SHUTDOWN_JOIN: Duration = Duration::from_secs(10);
/// An idle connection (no request) is closed after this long.
pub const MAX_CONNECTION_IDLE: Duration = Duration::from_secs(300);
/// A connection whose first frame (the hello) has not arrived after this long is closed.
pub const MAX_HANDSHAKE: Duration = Duration::from_secs(10);

/// A boxed response future.
pub type Reply = Pin<Box<dyn Future<Output = Option<Frame>> + Send>>;

/// Answers request frames. `None` closes the connection (e.g. a response frame sent as a
/// request).
pub trait FrameHandler: Send + Sync + 'static {
    /// The answer to `frame`, sent on a connection granted `role`.
    fn handle(self: Arc<Self>, frame: Frame, role: Role) -> Reply;

    /// The role a connection presenting `hello` (`None`: a first frame that is no hello) is
    /// granted, or why it is refused (the reason should contain
    /// `siltdb_client::auth::AUTH_FAILED`). Default: no authentication, every connection admin.
    fn authenticate(&self, hello: Option<&Hello>) -> Result<Role, String> {
        let _ = hello;
        Ok(Role::Admin)
    }

    /// The answer to `request`, the first frame of a connection refused for `reason`, sent
    /// before closing it. Default: none (the connection is just closed).
    fn refuse(&self, request: &Frame, reason: &str) -> Option<Frame> {
        let _ = (request, reason);
        None
    }
}

/// Serves `listener` until `shutdown` becomes true, then joins every connection task.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn FrameHandler>,
    shutdown: watch::Receiver<bool>,
) {
    serve_tls(listener, handler, shutdown, None).await
}

/// [`serve`], every connection speaking TLS with `tls` when set (its TLS handshake bounded by
/// [`MAX_HANDSHAKE`]; a connection that is not TLS is closed).
pub async fn serve_tls(
    listener: TcpListener,
    handler: Arc<dyn FrameHandler>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<TlsServer>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit reached; closing");
                    continue;
                };
                let h = Arc::clone(&handler);
                let sd = shutdown.clone();
                let tls = tls.clone();
                tasks.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let stream = match tls {
                        None => Some(Stream::Plain(stream)),
                        Some(t) => match tokio::time::timeout(MAX_HANDSHAKE, t.accept(stream)).await {
                            Ok(Ok(s)) => Some(s),
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                None
                            }
                            Err(_) => None,
                        },
                    };
                    if let Some(stream) = stream {
                        connection(stream, h, sd).await;
                    }
                    drop(permit);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
    drop(listener);
    let joined = tokio::time::timeout(MAX_SHUTDOWN_JOIN, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        tracing::warn!("connection tasks did not finish in time; aborting them");
        tasks.shutdown().await;
    }
}

async fn connection(
    mut stream: Stream,
    handler: Arc<dyn FrameHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some((role, pending)) = handshake(&mut stream, handler.as_ref(), &mut shutdown).await
    else {
        return;
    };
    let mut pending = pending;
    loop {
        let request = match pending.take() {
            Some(f) => f,
            None => {
                if *shutdown.borrow() {
                    return;
                }
                let next = tokio::select! {
                    _ = shutdown.changed() => return,
                    r = tokio::time::timeout(MAX_CONNECTION_IDLE, frame::read_frame(&mut stream)) => r,
                };
                match next {
                    Err(_) | Ok(Ok(None)) => return,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "closing connection after a bad frame");
                        return;
                    }
                    Ok(Ok(Some(f))) => f,
                }
            }
        };
        if !matches!(
            request.kind,
            FrameKind::RaftRequest | FrameKind::ClientRequest
        ) {
            return;
        }
        // A request in progress finishes even during shutdown (bounded by MAX_SHUTDOWN_JOIN).
        let Some(reply) = Arc::clone(&handler).handle(request, role).await else {
            return;
        };
        if let Err(e) = frame::write_frame(&mut stream, &reply).await {
            tracing::debug!(error = %e, "closing connection after a write error");
            return;
        }
    }
}

/// Reads the first frame (bounded by [`MAX_HANDSHAKE`]) and authenticates the connection:
/// `Some((role, frame to serve first))`, or `None` when the connection is to be closed.
async fn handshake(
    stream: &mut Stream,
    handler: &dyn FrameHandler,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Role, Option<Frame>)> {
    let first = tokio::select! {
        _ = shutdown.changed() => return None,
        r = tokio::time::timeout(MAX_HANDSHAKE, frame::read_frame(stream)) => r,
    };
    let first = match first {
        Err(_) | Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "closing connection after a bad first frame");
            return None;
        }
        Ok(Ok(Some(f))) => f,
    };
    if first.kind != FrameKind::Hello {
        return match handler.authenticate(None) {
            Ok(role) => Some((role, Some(first))),
            Err(reason) => {
                tracing::debug!(%reason, "refusing a connection without a hello");
                if let Some(reply) = handler.refuse(&first, &reason) {
                    let _ = frame::write_frame(stream, &reply).await;
                }
                None
            }
        };
    }
    let verdict = match frame::decode_payload::<Hello>(&first.payload) {
        Ok(hello) => handler.authenticate(Some(&hello)),
        Err(e) => Err(format!(
            "{}: undecodable hello: {e}",
            siltdb_client::auth::AUTH_FAILED
        )),
    };
    let reply = match &verdict {
        Ok(role) => HelloReply::Accepted { role: *role },
        Err(reason) => HelloReply::Refused {
            reason: reason.clone(),
        },
    };
    let payload = frame::encode_payload(&reply).ok()?;
    let answer = Frame {
        kind: FrameKind::HelloReply,
        request_id: first.request_id,
        payload,
    };
    if let Err(e) = frame::write_frame(stream, &answer).await {
        tracing::debug!(error = %e, "closing connection after a write error");
        return None;
    }
    match verdict {
        Ok(role) => Some((role, None)),
        Err(reason) => {
            tracing::info!(%reason, "refused a connection");
            None
        }
    }
}
