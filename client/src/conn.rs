//! One client-side TCP connection carrying request/response frames, one request at a time.
//!
//! The connection is opened lazily and reopened after any failure. A call whose future is
//! dropped mid-flight (openraft cancels an AppendEntries after its heartbeat interval) leaves
//! the stream in an unknown state, so the connection marks itself busy before sending and
//! discards the stream on the next call if that mark is still set. Every call is bounded by its
//! timeout, connect included.
//!
//! A fresh stream starts with the handshake ([`crate::auth`]): a hello frame carrying the
//! connection's secret (or none), answered by the role it grants or a refusal, which fails the
//! call with [`CallError::Unauthenticated`].

use super::auth::{Hello, HelloReply, Role, Secret};
use super::frame::{self, Frame, FrameError, FrameKind};
use super::tls::{Stream, TlsClient};
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest a TCP connect may take (also bounded by the call's own timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached (connect refused or timed out).
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The call did not complete in time.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// The address.
        addr: String,
        /// The bound that expired.
        timeout: Duration,
    },
    /// The message does not fit in a frame.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The server refused the connection's credentials (the reason says "authentication
    /// failed").
    #[error("connection to {addr}: {reason}")]
    Unauthenticated {
        /// The address.
        addr: String,
        /// The server's reason.
        reason: String,
    },
    /// The stream failed or the peer answered something malformed.
    #[error("connection to {addr}: {reason}")]
    Broken {
        /// The address.
        addr: String,
        /// What failed.
        reason: String,
    },
}

/// A lazily connected, self-healing request/response connection.
#[derive(Debug)]
pub struct FramedConn {
    addr: String,
    stream: Option<Stream>,
    tls: Option<TlsClient>,
    in_flight: bool,
    next_request_id: u64,
    token: Option<Secret>,
    role: Option<Role>,
}

impl FramedConn {
    /// A connection to `addr` (`host:port`), not yet opened.
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_token(addr, None)
    }

    /// A connection to `addr` that presents `token` in its handshake, not yet opened.
    pub fn with_token(addr: impl Into<String>, token: Option<Secret>) -> Self {
        Self {
            addr: addr.into(),
            stream: None,
            tls: None,
            in_flight: false,
            next_request_id: 1,
            token,
            role: None,
        }
    }

    /// This connection speaking TLS ([`crate::tls`]) when `tls` is set.
    pub fn with_tls(mut self, tls: Option<TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// The role the server granted in the last handshake (`None` before one).
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// The peer address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True when a stream is open (for connect counters).
    pub fn is_connected(&self) -> bool {
        self.stream.is_some() && !self.in_flight
    }

    /// Sends `payload` as a `kind` frame and returns the response payload, which must come back
    /// as `expect` with the same request id. Bounded by `timeout`.
    pub async fn call(
        &mut self,
        kind: FrameKind,
        expect: FrameKind,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        if self.in_flight {
            // The previous call was abandoned mid-flight.
            self.stream = None;
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let req = Frame {
            kind,
            request_id,
            payload,
        };
        let bytes = frame::encode_frame(&req).map_err(|e| CallError::TooLarge(e.to_string()))?;
        self.in_flight = true;
        let r = tokio::time::timeout(timeout, self.exchange(&bytes)).await;
        let result = match r {
            Err(_) => Err(CallError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(resp)) if resp.kind != expect || resp.request_id != request_id => Err(self
                .broken(format!(
                    "answer {:?}#{} to {:?}#{request_id}",
                    resp.kind, resp.request_id, kind
                ))),
            Ok(Ok(resp)) => Ok(resp.payload),
        };
        self.in_flight = false;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn broken(&self, reason: impl Into<String>) -> CallError {
        CallError::Broken {
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    /// Sends the hello on the fresh stream and reads the server's answer.
    async fn handshake(&mut self) -> Result<(), CallError> {
        let hello = Hello {
            token: self.token.clone(),
        };
        let payload =
            frame::encode_payload(&hello).map_err(|e| CallError::TooLarge(e.to_string()))?;
        let bytes = frame::encode_frame(&Frame {
            kind: FrameKind::Hello,
            request_id: 0,
            payload,
        })
        .map_err(|e| CallError::TooLarge(e.to_string()))?;
        let reply = self.send_and_read(&bytes).await?;
        if reply.kind != FrameKind::HelloReply {
            return Err(self.broken(format!("answer {:?} to the hello", reply.kind)));
        }
        match frame::decode_payload::<HelloReply>(&reply.payload) {
            Ok(HelloReply::Accepted { role }) => {
                self.role = Some(role);
                Ok(())
            }
            Ok(HelloReply::Refused { reason }) => Err(CallError::Unauthenticated {
                addr: self.addr.clone(),
                reason,
            }),
            Err(e) => Err(self.broken(format!("hello answer: {e}"))),
        }
    }

    async fn exchange(&mut self, bytes: &[u8]) -> Result<Frame, CallError> {
        if self.stream.is_none() {
            let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| CallError::Connect {
                    addr: self.addr.clone(),
                    reason: format!("timed out after {CONNECT_TIMEOUT:?}"),
                })?
                .map_err(|e| CallError::Connect {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })?;
            s.set_nodelay(true)
                .map_err(|e| self.broken(format!("nodelay: {e}")))?;
            let stream = match &self.tls {
                None => Stream::Plain(s),
                Some(tls) => tls
                    .connect(&self.addr, s)
                    .await
                    .map_err(|e| self.broken(format!("TLS handshake: {e}")))?,
            };
            self.stream = Some(stream);
            self.handshake().await?;
        }
        self.send_and_read(bytes).await
    }

    async fn send_and_read(&mut self, bytes: &[u8]) -> Result<Frame, CallError> {
        use tokio::io::AsyncWriteExt;
        let addr = self.addr.clone();
        let broken = |e: String| CallError::Broken {
            addr: addr.clone(),
            reason: e,
        };
        let Some(stream) = self.stream.as_mut() else {
            return Err(broken("no stream".into()));
        };
        stream
            .write_all(bytes)
            .await
            .map_err(|e| broken(e.to_string()))?;
        match frame::read_frame(stream).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(broken("closed by peer".into())),
            Err(FrameError::Io(e)) => Err(broken(e.to_string())),
            Err(e) => Err(broken(e.to_string())),
        }
    }
}
