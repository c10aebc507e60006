//! The accept loop: one task per connection, request/response frames in order, a bounded
//! number of connections, and a shutdown that stops accepting and joins every task.

use super::frame::{self, Frame, FrameKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Most connections a listener serves at once; more are closed at accept.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long shutdown waits for connection tasks before aborting them.
pub const SHUTDOWN_JOIN_MAX: Duration = Duration::from_secs(10);
/// An idle connection (no request) is closed after this long.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(300);

/// A boxed response future.
pub type Reply = Pin<Box<dyn Future<Output = Option<Frame>> + Send>>;

/// Answers request frames. `None` closes the connection (e.g. a response frame sent as a
/// request).
pub trait FrameHandler: Send + Sync + 'static {
    /// The answer to `frame`.
    fn handle(self: Arc<Self>, frame: Frame) -> Reply;
}

/// Serves `listener` until `shutdown` becomes true, then joins every connection task.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn FrameHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
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
                tasks.spawn(async move {
                    connection(stream, h, sd).await;
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
    let joined = tokio::time::timeout(SHUTDOWN_JOIN_MAX, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        tracing::warn!("connection tasks did not finish in time; aborting them");
        tasks.shutdown().await;
    }
}

async fn connection(
    mut stream: TcpStream,
    handler: Arc<dyn FrameHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = tokio::select! {
            _ = shutdown.changed() => return,
            r = tokio::time::timeout(CONNECTION_IDLE_MAX, frame::read_frame(&mut stream)) => r,
        };
        let request = match next {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "closing connection after a bad frame");
                return;
            }
            Ok(Ok(Some(f))) => f,
        };
        if !matches!(
            request.kind,
            FrameKind::RaftRequest | FrameKind::ClientRequest
        ) {
            return;
        }
        // A request in progress finishes even during shutdown (bounded by SHUTDOWN_JOIN_MAX).
        let Some(reply) = Arc::clone(&handler).handle(request).await else {
            return;
        };
        if let Err(e) = frame::write_frame(&mut stream, &reply).await {
            tracing::debug!(error = %e, "closing connection after a write error");
            return;
        }
    }
}
