//! At most so many connections at once: past the limit the listener is not polled, so further
//! connections wait in the kernel's listen backlog until one closes, and are served then. Once a
//! burst of connections is over, the memory they freed is given back to the system.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tokio_util::sync::PollSemaphore;

/// A listener whose connections [`Limited`] hands out.
pub trait Accept {
    type Io;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>>;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        tokio::net::UnixListener::poll_accept(self, cx).map_ok(|(io, _)| io)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        tokio::net::TcpListener::poll_accept(self, cx).map_ok(|(io, _)| io)
    }
}

/// Open connections that make a burst, and how few must be left for it to be over. glibc keeps
/// what a burst freed (measured: 256 stalled connections leave 4.5 MiB resident after they are
/// all gone, against 0.2 MiB after a `malloc_trim`), so it is asked to give it back then; a node's
/// usual handful of connections never makes a burst.
const BURST: usize = 64;
const QUIET: usize = 16;

/// The connections of a listener, no more than `max` open at once.
pub struct Limited<L> {
    listener: L,
    slots: PollSemaphore,
    /// A slot taken for the next connection accepted.
    slot: Option<OwnedSemaphorePermit>,
    count: Arc<Count>,
    /// Every slot is taken (said once in the log per time it happens).
    full: bool,
}

/// What the connections share to tell how many are open.
#[derive(Debug)]
struct Count {
    slots: Arc<Semaphore>,
    max: usize,
    /// As many as [`BURST`] have been open since memory was last given back.
    burst: AtomicBool,
}

impl Count {
    fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }
}

impl<L> std::fmt::Debug for Limited<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limited").field("count", &self.count).field("full", &self.full).finish_non_exhaustive()
    }
}

impl<L> Limited<L> {
    pub fn new(listener: L, max: usize) -> Limited<L> {
        let semaphore = Arc::new(Semaphore::new(max));
        let count = Arc::new(Count { slots: semaphore.clone(), max, burst: AtomicBool::new(false) });
        Limited { listener, slots: PollSemaphore::new(semaphore), slot: None, count, full: false }
    }

    /// Says in the log that every slot is taken, once until half of them are free again.
    fn note_full(&mut self) {
        if !self.full {
            self.full = true;
            tracing::warn!(
                max = self.count.max,
                "connection limit reached: new connections wait until others close (--max-connections)"
            );
        }
    }
}

impl<L: Accept + Unpin> Stream for Limited<L> {
    type Item = io::Result<Slot<L::Io>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.slot.is_none() {
            match this.slots.poll_acquire(cx) {
                Poll::Ready(Some(slot)) => this.slot = Some(slot),
                // The semaphore is never closed.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.note_full();
                    return Poll::Pending;
                }
            }
        }
        let io = ready!(this.listener.poll_accept(cx))?;
        if this.count.open() >= BURST {
            this.count.burst.store(true, Ordering::Relaxed);
        }
        let count = this.count.clone();
        Poll::Ready(this.slot.take().map(|slot| Ok(Slot { io, slot: Some(slot), count })))
    }
}

/// An accepted connection, holding its slot until it is dropped.
#[derive(Debug)]
pub struct Slot<S> {
    io: S,
    slot: Option<OwnedSemaphorePermit>,
    count: Arc<Count>,
}

impl<S> Drop for Slot<S> {
    fn drop(&mut self) {
        drop(self.slot.take());
        if self.count.open() <= QUIET && self.count.burst.swap(false, Ordering::Relaxed) {
            give_back_memory();
        }
    }
}

/// Returns the free memory of every malloc arena to the system.
fn give_back_memory() {
    #[cfg(target_env = "gnu")]
    {
        let begun = std::time::Instant::now();
        // SAFETY: malloc_trim only releases free memory the allocator holds; it takes the arena
        // locks itself, and any thread may call it at any time.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!(took = ?begun.elapsed(), "a burst of connections is over: freed memory given back");
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Slot<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slot<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
