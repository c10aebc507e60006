//! The listener and the connections of the Redis endpoint.

use super::commands::{execute, Session, Shared};
use super::resp::{parse, Reply};
use crate::auth::Keyring;
use crate::client::Client;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes read from a connection at a time.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Most Redis connections served at once; more are closed at accept.
pub const MAX_REDIS_CONNECTIONS: usize = 1024;

/// Serves `table` over RESP on `listener` until the task is dropped; each connection runs in
/// its own task. With a `keyring`, connections must AUTH first ([`super::auth`]).
pub async fn serve(
    listener: TcpListener,
    client: Arc<Client>,
    table: String,
    keyring: Option<Arc<Keyring>>,
) {
    let shared = Arc::new(Shared::new(client, table, keyring));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_REDIS_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "redis connection limit reached; closing");
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, shared).await {
                        tracing::debug!(error = %e, "redis connection closed");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut session = Session::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut out = Vec::new();
    loop {
        // Answer every complete command buffered (pipelining), then write the replies at once.
        let mut used = 0;
        loop {
            match parse(&buf[used..]) {
                Ok(Some((cmd, n))) => {
                    used += n;
                    if cmd.is_empty() {
                        continue;
                    }
                    let reply = execute(&shared, &mut session, cmd).await;
                    reply.encode(&mut out, session.resp3);
                    if session.quit {
                        stream.write_all(&out).await?;
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Reply::err(format!("Protocol error: {e}")).encode(&mut out, session.resp3);
                    stream.write_all(&out).await?;
                    return Ok(());
                }
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
