//! The replica's socket to its master (plain or TLS) with its read buffer, the handshake's
//! request/reply steps, and why a replication session ends.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use vigil_resp::tls::{ReadHalf, WriteHalf};

use crate::stream::encode_command;

/// Why a replication session ended.
#[derive(Debug, Error)]
pub enum ReplError {
    /// The connection failed.
    #[error("connection to the master failed: {0}")]
    Io(#[from] std::io::Error),
    /// The master went quiet.
    #[error("no data from the master for {0:?} ({1}); reconnecting")]
    Timeout(Duration, &'static str),
    /// The master refused a step of the handshake.
    #[error("the master refused {step}: {reply}")]
    Refused {
        /// The step.
        step: &'static str,
        /// Its reply.
        reply: String,
    },
    /// The master sent something that is not the protocol.
    #[error("protocol error from the master: {0}")]
    Protocol(String),
    /// The snapshot of a full sync could not be loaded or stored.
    #[error("full sync failed: {0}")]
    Snapshot(String),
}

/// The socket to the master with a read buffer.
pub(super) struct Wire {
    pub(super) rd: ReadHalf,
    pub(super) wr: WriteHalf,
    pub(super) buf: BytesMut,
    pub(super) timeout: Duration,
}

impl Wire {
    pub(super) async fn fill(&mut self, what: &'static str) -> Result<usize, ReplError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(self.timeout, self.rd.read_buf(&mut self.buf))
            .await
            .map_err(|_| ReplError::Timeout(self.timeout, what))??;
        if n == 0 {
            return Err(ReplError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the master closed the connection",
            )));
        }
        Ok(n)
    }

    pub(super) async fn line(&mut self, what: &'static str) -> Result<String, ReplError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text.is_empty() {
                    // A keepalive newline.
                    continue;
                }
                return Ok(text);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ReplError::Protocol(format!("overlong reply to {what}")));
            }
            self.fill(what).await?;
        }
    }

    pub(super) async fn call(
        &mut self,
        args: &[&str],
        step: &'static str,
    ) -> Result<String, ReplError> {
        let mut out = Vec::new();
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        encode_command(&mut out, &args);
        vigil_resp::conn::write_flush(&mut self.wr, &out).await?;
        let reply = self.line(step).await?;
        if let Some(err) = reply.strip_prefix('-') {
            return Err(ReplError::Refused {
                step,
                reply: err.to_string(),
            });
        }
        Ok(reply)
    }

    pub(super) async fn ack(&mut self, offset: u64) -> Result<(), ReplError> {
        let mut out = Vec::with_capacity(48);
        encode_command(
            &mut out,
            &[
                Bytes::from_static(b"REPLCONF"),
                Bytes::from_static(b"ACK"),
                Bytes::from(offset.to_string()),
            ],
        );
        vigil_resp::conn::write_flush(&mut self.wr, &out).await?;
        Ok(())
    }
}

/// Most memory reserved for a full sync's snapshot before its bytes arrive.
const PAYLOAD_PREALLOC: usize = 16 * 1024 * 1024;

/// Reads `$<len>\r\n` and the snapshot bytes.
pub(super) async fn read_payload(w: &mut Wire) -> Result<Vec<u8>, ReplError> {
    let head = w.line("the snapshot header").await?;
    let len: usize = head
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ReplError::Protocol(format!("bad snapshot header {head:?}")))?;
    // The length is only what the master claims: the buffer grows with what arrives.
    let mut payload = Vec::with_capacity(len.min(PAYLOAD_PREALLOC));
    while payload.len() < len {
        if w.buf.is_empty() {
            w.fill("the snapshot").await?;
        }
        let take = (len - payload.len()).min(w.buf.len());
        payload.extend_from_slice(&w.buf.split_to(take));
    }
    Ok(payload)
}
