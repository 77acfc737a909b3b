//! Unix connections polled for reading only. Tokio registers a socket for reading and writing
//! (edge-triggered), and a unix socket signals its writer every time the peer reads what it
//! sent (`unix_write_space`): each answer woke the polling thread a second time, for nothing, when
//! the client read it. Here a connection is polled for room to write only while a write waits
//! for it, which a CSI answer (a few hundred bytes, against a socket buffer of 200 KiB) never
//! does; that second registration (a duplicate of the descriptor) goes once the write is done.

use super::slots::Accept;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A unix listener whose connections are [`Conn`]s.
#[derive(Debug)]
pub struct Listener(tokio::net::UnixListener);

impl Listener {
    pub fn new(listener: tokio::net::UnixListener) -> Listener {
        Listener(listener)
    }
}

impl Accept for Listener {
    type Io = Conn;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Conn>> {
        let (stream, _) = ready!(self.0.poll_accept(cx))?;
        Poll::Ready(Conn::new(stream))
    }
}

/// A server connection polled for reading, and for room to write only while a write waits.
#[derive(Debug)]
pub struct Conn {
    socket: AsyncFd<UnixStream>,
    /// The socket's second descriptor, registered for room to write while a write waits.
    room: Option<AsyncFd<OwnedFd>>,
}

impl Conn {
    fn new(stream: tokio::net::UnixStream) -> io::Result<Conn> {
        // Out of tokio's registration (it stays non-blocking), into one for reading only.
        let socket = register(stream.into_std()?, Interest::READABLE)?;
        Ok(Conn { socket, room: None })
    }

    /// Writes with `write` what the socket takes now, waiting for room when it takes nothing.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.socket.get_ref()) {
                Ok(n) => {
                    self.room = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.room.is_none() {
                let second = self.socket.get_ref().as_fd().try_clone_to_owned()?;
                self.room = Some(register(second, Interest::WRITABLE)?);
            }
            let Some(room) = &self.room else { continue };
            // Cleared only as of what this guard saw; the loop writes again before waiting.
            ready!(room.poll_write_ready(cx))?.clear_ready();
        }
    }
}

/// Registers `io`, which owns its descriptor, with the reactor for `interest`.
fn register<T: AsRawFd>(io: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `io` owns its descriptor (a `UnixStream` or an `OwnedFd`): it stays open and the
    // same for as long as the `AsyncFd` holds it, and this module never swaps it for another.
    unsafe { AsyncFd::register_with_interest(io, interest) }.map_err(io::Error::from)
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.socket.poll_read_ready(cx))?;
            // SAFETY: the kernel only writes into the unfilled part, and exactly the `n` bytes
            // it reports are marked initialized and filled below.
            let spare = unsafe { buf.unfilled_mut() };
            let room = spare.len();
            match guard.try_io(|socket| {
                rustix::io::read(socket.get_ref(), spare).map(|(got, _)| got.len()).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    if n > 0 && n < room {
                        // A stream socket's read stops short only once it has taken all there
                        // was: the next read would be EAGAIN. Data arriving since is a new
                        // event, which this clear (as of the event it saw) leaves standing.
                        guard.clear_ready();
                    }
                    // SAFETY: `read` wrote these `n` bytes of the unfilled part.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, |mut socket| socket.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, |mut socket| socket.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (tokio::net::UnixStream, Conn) {
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        (client, Conn::new(server).unwrap())
    }

    #[tokio::test]
    async fn reads_and_writes_both_ways() {
        let (mut client, mut conn) = pair().await;
        client.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
        conn.write_all(b"answer").await.unwrap();
        let mut back = [0u8; 6];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"answer");
        assert!(conn.room.is_none(), "a write the socket took at once registers nothing");
    }

    #[tokio::test]
    async fn a_write_larger_than_the_socket_buffer_waits_for_room_and_arrives_whole() {
        let (mut client, mut conn) = pair().await;
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            conn.write_all(&sent).await.unwrap();
            conn.shutdown().await.unwrap();
            conn
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got == big, "{} of {} bytes, or in another order", got.len(), big.len());
        let conn = writer.await.unwrap();
        assert!(conn.room.is_none(), "the registration for room goes once the write is done");
    }

    #[tokio::test]
    async fn a_closed_peer_ends_the_read_and_fails_the_write() {
        let (client, mut conn) = pair().await;
        drop(client);
        let mut rest = Vec::new();
        assert_eq!(conn.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(conn.write_all(b"x").await.is_err(), "nobody reads");
    }
}
