//! Why the adapter ends a connection: its client broke HTTP/2 framing, HPACK or the limits.

use super::limits::{HEAD_LEN, MAX_FRAME, MAX_HEADER_LIST};

/// What ends a connection whose client breaks HTTP/2 framing, HPACK or the server's limits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HPACK: {0}")]
    Hpack(String),
    #[error("header block of stream {stream}: {bytes} bytes or more, over the {MAX_HEADER_LIST} allowed")]
    BlockTooLarge { stream: u32, bytes: usize },
    #[error("header block of stream {stream}: more than {max} CONTINUATION frames")]
    TooManyContinuations { stream: u32, max: usize },
    #[error("header frame of {len} bytes: over the {MAX_FRAME} allowed")]
    FrameTooLarge { head: [u8; HEAD_LEN], len: usize },
    #[error("HTTP/2 framing: {0}")]
    Framing(&'static str),
}
