//! JSON bodies for the errors the HTTP layer answers by itself. A request
//! hyper cannot parse (a garbage request line, a malformed `Content-Length`,
//! an unknown `Transfer-Encoding`, a URI over 64 KiB, headers too large)
//! never reaches the router: hyper answers it with a bare status and closes
//! the connection, and offers no hook to shape that answer. The contract
//! says every error carries `{"error": {"code", "message"}}`, so the
//! listener wraps each connection in [`JsonErrorStream`], which recognises
//! that one answer on its way out — a 4xx head with `connection: close`,
//! `content-length: 0` and no `Content-Type`, which no handler of the
//! router ever writes (each error it answers has a JSON body) — and writes
//! the same status with the JSON body instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::serve::Listener;
use cairn_api::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use crate::error::ApiError;

/// A listener (TCP, or TLS over TCP) whose connections answer the HTTP
/// layer's own errors with the API's JSON error body. Over TLS it wraps
/// the decrypted side, where the HTTP bytes are.
pub struct JsonErrorListener<L = TcpListener>(pub L);

impl<L: Listener> Listener for JsonErrorListener<L> {
    type Io = JsonErrorStream<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = Listener::accept(&mut self.0).await;
        (JsonErrorStream::new(stream), address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// A connection that rewrites the HTTP layer's bare error answer (see the
/// module documentation) and passes everything else through unchanged.
pub struct JsonErrorStream<S> {
    inner: S,
    /// The rewritten answer still to be written, if one is on its way.
    replacement: Vec<u8>,
}

impl<S> JsonErrorStream<S> {
    fn new(inner: S) -> JsonErrorStream<S> {
        JsonErrorStream {
            inner,
            replacement: Vec::new(),
        }
    }
}

/// The answer to write instead of `head`, if `head` is the HTTP layer's
/// own bare error answer.
fn rewritten(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let lower = text.to_ascii_lowercase();
    let is_bare_error = text.starts_with("HTTP/1.1 4")
        && text.ends_with("\r\n\r\n")
        && lower.contains("\r\nconnection: close\r\n")
        && lower.contains("\r\ncontent-length: 0\r\n")
        && !lower.contains("\r\ncontent-type:");
    if !is_bare_error {
        return None;
    }
    let status_line = text.split("\r\n").next()?;
    let status: u16 = status_line.get(9..12)?.parse().ok()?;
    let (code, message) = match status {
        414 => (
            ErrorCode::UriTooLong,
            "the request's URI is longer than the server takes",
        ),
        431 => (
            ErrorCode::HeadersTooLarge,
            "the request's headers are larger than the server takes",
        ),
        _ => (
            ErrorCode::MalformedHttp,
            "the request is not well-formed HTTP/1.1 (request line, headers or framing); \
             the connection is closed",
        ),
    };
    let body = serde_json::to_vec(&ApiError::new(code, message).body()).ok()?;
    let mut answer = format!(
        "{status_line}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrorStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrorStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_empty() {
            match rewritten(buffer) {
                Some(answer) => self.replacement = answer,
                None => return Pin::new(&mut self.inner).poll_write(context, buffer),
            }
        }
        // Write the whole rewritten answer before reporting the original
        // as written; hyper calls again with the same bytes while pending.
        while !self.replacement.is_empty() {
            let this = &mut *self;
            match Pin::new(&mut this.inner).poll_write(context, &this.replacement) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => {
                    this.replacement.drain(..written);
                }
                other => return other,
            }
        }
        Poll::Ready(Ok(buffer.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bare_error_answer_is_rewritten() {
        let bare = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
                     date: Sun, 06 Dec 2026 03:26:03 GMT\r\n\r\n";
        let answer = String::from_utf8(rewritten(bare).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        assert!(
            answer.ends_with(r#"the connection is closed"}}"#),
            "{answer}"
        );
        let uri = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(rewritten(uri).unwrap())
            .unwrap()
            .contains("uri_too_long"));
        let handler = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                        content-length: 0\r\nconnection: close\r\n\r\n";
        assert_eq!(rewritten(handler), None);
        let ok = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(rewritten(ok), None);
        assert_eq!(rewritten(b"{\"facts\":[]}"), None);
    }
}
