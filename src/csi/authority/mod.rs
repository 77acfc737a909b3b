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
//!
//! What it holds for a client is bounded by h2's own limits, so h2's limits still apply: a
//! header block of at most [`MAX_HEADER_LIST`] bytes, a frame of at most [`MAX_FRAME`], and about
//! as much again of rewritten bytes waiting for h2. A client over them is refused the way h2
//! refuses one ([`frames::refusal`]); a client that stops in the middle of a frame or a header
//! block for [`STALL`] is disconnected.

mod error;
mod frames;
mod hpack;
mod limits;

pub use limits::{MAX_FRAME, MAX_HEADER_LIST};

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a client may take over one unit of its stream (the preface, a frame, or a header
/// block from its HEADERS to its END_HEADERS) once it has begun it. A client writes each at once;
/// one that stops half-way holds a connection (and what was buffered of it) for nothing. Idle
/// connections between frames are left alone: the sidecars keep theirs open for good.
pub const STALL: Duration = Duration::from_secs(10);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers that hold nothing are freed when larger than this, so an idle connection keeps
/// nothing of a burst.
const KEEP: usize = 4 * 1024;

/// A server-side connection whose incoming header blocks carry an authority h2 accepts.
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: frames::Rewriter,
    /// Bytes read but not yet rewritten (an incomplete frame, or frames waiting for room).
    input: Vec<u8>,
    /// `input` may hold whole frames that the rewriter left for lack of room.
    backlog: bool,
    /// Rewritten bytes not yet handed to h2, from `taken` on.
    output: Vec<u8>,
    taken: usize,
    /// No more is read from the client: it ended its stream, or was refused or stalled.
    eof: bool,
    /// When the unit under way must be finished, and the units finished when it was set.
    deadline: Option<(Instant, u64)>,
    timer: Option<Pin<Box<Sleep>>>,
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
            backlog: false,
            output: Vec::new(),
            taken: 0,
            eof: false,
            // The preface is the first unit.
            deadline: Some((Instant::now() + STALL, 0)),
            timer: None,
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
            self.taken = 0;
            release(&mut self.output);
        }
        true
    }

    /// Rewrites `bytes` (read from the client) after what `input` holds.
    fn rewrite(&mut self, bytes: &[u8]) {
        let fed = if self.input.is_empty() {
            let fed = self.rewriter.feed(bytes, &mut self.output);
            if let Ok(f) = &fed {
                self.input.extend_from_slice(&bytes[f.used..]);
            }
            fed
        } else {
            self.input.extend_from_slice(bytes);
            let fed = self.rewriter.feed(&self.input, &mut self.output);
            if let Ok(f) = &fed {
                self.input.drain(..f.used);
            }
            fed
        };
        match fed {
            Ok(f) => {
                self.backlog = f.full;
                if self.input.is_empty() {
                    release(&mut self.input);
                }
                self.watch();
            }
            Err(e) => {
                tracing::debug!(error = %e, "refusing an HTTP/2 client");
                frames::refusal(&e, &mut self.output);
                self.end();
            }
        }
    }

    /// Reads nothing more from the client: h2 gets what is left of the output, then the end.
    fn end(&mut self) {
        self.eof = true;
        self.backlog = false;
        self.input = Vec::new();
        self.deadline = None;
    }

    /// Sets the deadline of the unit under way when one begins; none between units.
    fn watch(&mut self) {
        if self.rewriter.at_rest() && self.input.is_empty() {
            self.deadline = None;
            return;
        }
        let units = self.rewriter.units();
        if self.deadline.is_none_or(|(_, begun)| begun != units) {
            self.deadline = Some((Instant::now() + STALL, units));
        }
    }

    /// Whether the unit under way is past its deadline (else the timer wakes the task then).
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((at, _)) = self.deadline else {
            return false;
        };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// Empties a buffer, and frees it unless it is small.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.give(buf) {
                return Poll::Ready(Ok(()));
            }
            if this.backlog {
                this.rewrite(&[]);
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            if Pin::new(&mut this.inner).poll_read(cx, &mut read)?.is_pending() {
                if !this.stalled(cx) {
                    return Poll::Pending;
                }
                tracing::debug!(stall = ?STALL, "disconnecting an HTTP/2 client stopped in the middle of a frame");
                this.end();
                continue;
            }
            if read.filled().is_empty() {
                // A frame cut short by the end of the stream is dropped; h2 sees the end.
                this.end();
                continue;
            }
            this.rewrite(read.filled());
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

#[cfg(test)]
mod tests {
    use super::error::Error;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A client socket, and the server's end of it behind the adapter.
    fn pair() -> (UnixStream, AuthorityFix<UnixStream>) {
        let (client, server) = UnixStream::pair().unwrap();
        (client, AuthorityFix::new(server))
    }

    #[tokio::test]
    async fn a_block_over_the_limit_is_refused_and_nothing_more_is_read() {
        let (mut client, mut fix) = pair();
        let hello = [PREFACE, &frame(0x4, 0, 0, &[])].concat();
        client.write_all(&hello).await.unwrap();
        client.write_all(&frame(0x1, 0, 1, &vec![b'x'; MAX_HEADER_LIST as usize])).await.unwrap();
        client.write_all(&frame(0x9, 0, 1, b"x")).await.unwrap();
        client.write_all(&frame(0x6, 0, 0, &[0; 8])).await.unwrap();
        // The client's end stays open: the end h2 sees is the adapter's doing.
        let mut seen = Vec::new();
        fix.read_to_end(&mut seen).await.unwrap();
        let mut refused = Vec::new();
        let bytes = MAX_HEADER_LIST as usize + 1;
        frames::refusal(&Error::BlockTooLarge { stream: 1, bytes }, &mut refused);
        assert_eq!(seen, [hello, refused].concat());
        assert!(fix.input.capacity() == 0 && fix.output.capacity() <= KEEP, "{fix:?}");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_stopped_in_a_header_block_is_let_go_after_the_stall_time() {
        let (mut client, mut fix) = pair();
        let hello = [PREFACE, &frame(0x4, 0, 0, &[])].concat();
        client.write_all(&hello).await.unwrap();
        client.write_all(&frame(0x1, 0, 1, &[0x82])).await.unwrap();
        let begun = Instant::now();
        let mut seen = Vec::new();
        let early = tokio::time::timeout(STALL - Duration::from_secs(1), fix.read_to_end(&mut seen)).await;
        assert!(early.is_err(), "ended before the stall time");
        fix.read_to_end(&mut seen).await.unwrap();
        assert!(begun.elapsed() >= STALL);
        assert_eq!(seen, hello);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_stopped_in_the_preface_is_let_go_but_an_idle_one_is_not() {
        let (mut client, mut fix) = pair();
        client.write_all(&PREFACE[..10]).await.unwrap();
        let mut seen = Vec::new();
        fix.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, &PREFACE[..10]);

        let (mut client, mut fix) = pair();
        // Whole frames a while apart: each is a unit of its own, and between them the client
        // may wait as long as it likes.
        let hello = [PREFACE, &frame(0x4, 0, 0, &[])].concat();
        client.write_all(&hello).await.unwrap();
        let ping = frame(0x6, 0, 0, &[0; 8]);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let idle = tokio::time::timeout(STALL * 6, fix.read_to_end(&mut seen)).await;
            assert!(idle.is_err(), "an idle client was let go");
            client.write_all(&ping[..4]).await.unwrap();
            let _ = tokio::time::timeout(STALL / 2, fix.read_to_end(&mut seen)).await;
            client.write_all(&ping[4..]).await.unwrap();
        }
        let _ = tokio::time::timeout(STALL * 6, fix.read_to_end(&mut seen)).await;
        assert_eq!(seen, [hello, ping.clone(), ping.clone(), ping].concat());
    }
}
