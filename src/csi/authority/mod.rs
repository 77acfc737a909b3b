//! Lets any gRPC client talk to the unix socket, whatever it sends as HTTP/2 `:authority`.
//!
//! Over a unix socket the authority means nothing, and clients fill it differently: kubelet and
//! the Go sidecars send `localhost`, while Python grpcio, grpc-java, csc, older kubelets and Nomad
//! send the socket path (or nothing at all). h2 turns every `:authority` that is not an RFC 3986
//! authority into a stream reset (PROTOCOL_ERROR) while it converts the request, with no option to
//! relax it. [`AuthorityFix`] sits between the socket and h2 and rewrites the client's header
//! blocks before h2 sees them: each block is decoded with the client's HPACK context, an authority
//! h2 would refuse becomes `localhost`, and the block is re-encoded with literals only (never
//! indexed), so the dynamic table h2 keeps for the connection stays empty and in step. Every
//! other frame passes through byte for byte.

mod frames;
mod hpack;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What ends a connection whose client breaks HTTP/2 framing or HPACK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HPACK: {0}")]
    Hpack(String),
    #[error("header block of {0} bytes or more: over the {max} bytes allowed", max = frames::MAX_BLOCK)]
    BlockTooLarge(usize),
    #[error("HTTP/2 framing: {0}")]
    Framing(&'static str),
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A server-side connection whose incoming header blocks carry an authority h2 accepts.
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: frames::Rewriter,
    /// Bytes read but not yet rewritten (an incomplete frame).
    input: Vec<u8>,
    /// Rewritten bytes not yet handed to h2, from `taken` on.
    output: Vec<u8>,
    taken: usize,
    eof: bool,
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("input", &self.input.len())
            .field("output", &(self.output.len() - self.taken))
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            rewriter: frames::Rewriter::new(),
            input: Vec::new(),
            output: Vec::new(),
            taken: 0,
            eof: false,
        }
    }

    /// Hands rewritten bytes to `buf`; false if there were none.
    fn give(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let ready = &self.output[self.taken..];
        if ready.is_empty() || buf.remaining() == 0 {
            return false;
        }
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.taken += n;
        if self.taken == self.output.len() {
            self.output.clear();
            self.taken = 0;
        }
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.give(buf) || this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // A frame cut short by the end of the stream is dropped; h2 sees the end.
                this.eof = true;
                continue;
            }
            this.input.extend_from_slice(read.filled());
            let used = this
                .rewriter
                .feed(&this.input, &mut this.output)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            this.input.drain(..used);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
