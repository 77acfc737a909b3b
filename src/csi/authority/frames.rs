//! The client-to-server HTTP/2 byte stream, frame by frame: header blocks (HEADERS plus their
//! CONTINUATIONs) are collected and rewritten, everything else is copied as it comes.

use super::Error;
use super::hpack::Transcoder;

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which a client sends before its first frame.
const PREFACE_LEN: usize = 24;
const HEAD_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may set, so h2 takes frames of this size.
const OUT_FRAME: usize = 16 * 1024;
/// The most a header block may weigh, encoded or decoded.
pub(super) const MAX_BLOCK: usize = 1024 * 1024;

/// One frame header.
#[derive(Debug, Clone, Copy)]
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Head {
    fn parse(b: &[u8]) -> Head {
        Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = self.len.to_be_bytes();
        out.extend_from_slice(&len[len.len() - 3..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&self.stream.to_be_bytes());
    }
}

#[derive(Debug)]
enum State {
    /// Copy this many more bytes as they are (the preface, or a frame's payload).
    Copy(usize),
    /// Waiting for a frame header.
    Head,
    /// Waiting for the whole payload of a HEADERS or CONTINUATION frame.
    Block(Head),
}

/// A header block being collected.
#[derive(Debug)]
struct Pending {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    block: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct Rewriter {
    state: State,
    pending: Option<Pending>,
    hpack: Transcoder,
}

impl Rewriter {
    pub(super) fn new() -> Rewriter {
        Rewriter { state: State::Copy(PREFACE_LEN), pending: None, hpack: Transcoder::new() }
    }

    /// Rewrites what it can of `input` onto `out` and returns how many bytes of `input` it used;
    /// the rest (an incomplete frame) must be offered again with more bytes after it.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Copy(0) => self.state = State::Head,
                State::Copy(n) => {
                    let k = n.min(rest.len());
                    if k == 0 {
                        return Ok(used);
                    }
                    out.extend_from_slice(&rest[..k]);
                    used += k;
                    self.state = State::Copy(n - k);
                }
                State::Head => {
                    if rest.len() < HEAD_LEN {
                        return Ok(used);
                    }
                    let head = Head::parse(rest);
                    used += HEAD_LEN;
                    self.state = self.after_head(head, &rest[..HEAD_LEN], out)?;
                }
                State::Block(head) => {
                    if rest.len() < head.len {
                        return Ok(used);
                    }
                    self.block_frame(head, &rest[..head.len], out)?;
                    used += head.len;
                    self.state = State::Head;
                }
            }
        }
    }

    fn after_head(&mut self, head: Head, raw: &[u8], out: &mut Vec<u8>) -> Result<State, Error> {
        let ours = head.kind == HEADERS || (head.kind == CONTINUATION && self.pending.is_some());
        if ours {
            if head.len > MAX_BLOCK {
                return Err(Error::BlockTooLarge(head.len));
            }
            return Ok(State::Block(head));
        }
        if self.pending.is_some() {
            return Err(Error::Framing("a header block interrupted by another frame"));
        }
        out.extend_from_slice(raw);
        Ok(State::Copy(head.len))
    }

    fn block_frame(&mut self, head: Head, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let pending = match (self.pending.as_mut(), head.kind) {
            (None, HEADERS) => self.pending.insert(start(head, payload)?),
            (Some(p), CONTINUATION) if p.stream == head.stream => {
                p.block.extend_from_slice(payload);
                p
            }
            _ => return Err(Error::Framing("HEADERS or CONTINUATION out of sequence")),
        };
        if pending.block.len() > MAX_BLOCK {
            return Err(Error::BlockTooLarge(pending.block.len()));
        }
        if head.flags & END_HEADERS != 0 {
            if let Some(p) = self.pending.take() {
                let block = self.hpack.transcode(&p.block)?;
                emit(&p, &block, out);
            }
        }
        Ok(())
    }
}

/// The header block that a HEADERS frame starts: its padding dropped, its priority kept.
fn start(head: Head, payload: &[u8]) -> Result<Pending, Error> {
    let mut body = payload;
    if head.flags & PADDED != 0 {
        let (&pad, rest) = body.split_first().ok_or(Error::Framing("padded HEADERS without a pad length"))?;
        let end = rest.len().checked_sub(usize::from(pad)).ok_or(Error::Framing("padding longer than HEADERS"))?;
        body = &rest[..end];
    }
    let mut priority = None;
    if head.flags & PRIORITY != 0 {
        let (p, rest) =
            body.split_first_chunk::<PRIORITY_LEN>().ok_or(Error::Framing("HEADERS too short for its priority"))?;
        priority = Some(*p);
        body = rest;
    }
    Ok(Pending { stream: head.stream, end_stream: head.flags & END_STREAM != 0, priority, block: body.to_vec() })
}

/// Writes the rewritten block as one HEADERS frame and as many CONTINUATIONs as it needs.
fn emit(p: &Pending, block: &[u8], out: &mut Vec<u8>) {
    let prio_len = if p.priority.is_some() { PRIORITY_LEN } else { 0 };
    let first = block.len().min(OUT_FRAME - prio_len);
    let mut flags = if p.end_stream { END_STREAM } else { 0 };
    if p.priority.is_some() {
        flags |= PRIORITY;
    }
    let (mut chunk, mut rest) = block.split_at(first);
    let mut head = Head { len: prio_len + chunk.len(), kind: HEADERS, flags, stream: p.stream };
    loop {
        if rest.is_empty() {
            head.flags |= END_HEADERS;
        }
        head.write(out);
        if head.kind == HEADERS {
            out.extend_from_slice(p.priority.as_ref().map_or(&[][..], |b| &b[..]));
        }
        out.extend_from_slice(chunk);
        if rest.is_empty() {
            return;
        }
        (chunk, rest) = rest.split_at(rest.len().min(OUT_FRAME));
        head = Head { len: chunk.len(), kind: CONTINUATION, flags: 0, stream: p.stream };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Head { len: payload.len(), kind, flags, stream }.write(&mut out);
        out.extend_from_slice(payload);
        out
    }

    /// Splits a byte stream (after the preface) into frames.
    fn frames(mut b: &[u8]) -> Vec<(Head, Vec<u8>)> {
        let mut all = Vec::new();
        while !b.is_empty() {
            let h = Head::parse(b);
            all.push((h, b[HEAD_LEN..HEAD_LEN + h.len].to_vec()));
            b = &b[HEAD_LEN + h.len..];
        }
        all
    }

    #[test]
    fn a_split_padded_header_block_is_rewritten_and_the_rest_copied() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let block = loona_hpack::Encoder::new().encode([
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"/var/lib/kubelet/plugins/x/csi.sock"),
            (b":path", b"/csi.v1.Identity/Probe"),
        ]);
        let (a, b) = block.split_at(10);
        let mut first = vec![3]; // pad length
        first.extend_from_slice(&[0, 0, 0, 0, 15]); // priority: no dependency, weight 15
        first.extend_from_slice(a);
        first.extend_from_slice(&[0; 3]);
        let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let data = frame(0x0, END_STREAM, 1, b"\0\0\0\0\0");
        let mut input = preface.to_vec();
        input.extend(&settings);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &first));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        input.extend(&data);

        // One byte at a time: every frame boundary falls in the middle of a read.
        let mut r = Rewriter::new();
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        for byte in &input {
            pending.push(*byte);
            let used = r.feed(&pending, &mut out).unwrap();
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!(&out[..PREFACE_LEN], preface);
        let got = frames(&out[PREFACE_LEN..]);
        assert_eq!(got.len(), 3);
        assert_eq!(frame(got[0].0.kind, got[0].0.flags, 0, &got[0].1), settings);
        let (h, payload) = &got[1];
        assert_eq!((h.kind, h.flags, h.stream), (HEADERS, PRIORITY | END_HEADERS, 1));
        assert_eq!(&payload[..PRIORITY_LEN], &[0, 0, 0, 0, 15]);
        let fields = loona_hpack::Decoder::new().decode(&payload[PRIORITY_LEN..]).unwrap();
        assert_eq!(fields[1], (b":authority".to_vec(), b"localhost".to_vec()));
        assert_eq!(fields[2].1, b"/csi.v1.Identity/Probe");
        assert_eq!(frame(got[2].0.kind, got[2].0.flags, got[2].0.stream, &got[2].1), data);
    }

    #[test]
    fn a_large_block_leaves_in_frames_h2_accepts() {
        let big = vec![b'v'; 40_000];
        let block = loona_hpack::Encoder::new().encode([(&b"x-big"[..], &big[..])]);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &block));
        let mut out = Vec::new();
        assert_eq!(Rewriter::new().feed(&input, &mut out).unwrap(), input.len());
        let got = frames(&out[PREFACE_LEN..]);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(h, _)| h.len <= OUT_FRAME && h.stream == 3));
        assert_eq!(got[0].0.flags, END_STREAM);
        assert_eq!((got[1].0.kind, got[1].0.flags), (CONTINUATION, 0));
        assert_eq!((got[2].0.kind, got[2].0.flags), (CONTINUATION, END_HEADERS));
        let whole: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(loona_hpack::Decoder::new().decode(&whole).unwrap()[0].1, big);
    }

    #[test]
    fn broken_sequences_end_the_connection() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let open = frame(HEADERS, 0, 1, &[0x82]); // :method GET, no END_HEADERS
        let ping = frame(0x6, 0, 0, &[0; 8]);
        let other_stream = frame(CONTINUATION, END_HEADERS, 3, &[0x84]);
        let too_big = {
            let mut h = Vec::new();
            Head { len: MAX_BLOCK + 1, kind: HEADERS, flags: 0, stream: 1 }.write(&mut h);
            h
        };
        let bad_pad = frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82]);
        for (what, tail) in [
            ("ping inside a block", [open.clone(), ping].concat()),
            ("continuation of another stream", [open, other_stream].concat()),
            ("huge frame", too_big),
            ("padding longer than the frame", bad_pad),
        ] {
            let input = [preface.clone(), tail].concat();
            assert!(Rewriter::new().feed(&input, &mut Vec::new()).is_err(), "{what}");
        }
    }
}
