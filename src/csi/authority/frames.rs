//! The client-to-server HTTP/2 byte stream, frame by frame: header blocks (HEADERS plus their
//! CONTINUATIONs) are collected and rewritten, everything else is copied as it comes. What is
//! held at once is bounded by h2's own limits (see [`super::MAX_HEADER_LIST`]).
//!
//! A client whose first header block h2 takes as it is (kubelet and the Go sidecars send
//! `localhost`) gets that block handed over unchanged, and from then on every frame of its
//! connection is copied as it comes, header blocks included (only frame headers are read, to
//! know whether a header block is open): h2's decoder then shares the client's context, and a
//! header block costs no decoding here. A client that needs its authority rewritten keeps having
//! every block rewritten: h2's dynamic table then stays empty, and the two contexts never meet.

use super::error::Error;
use super::hpack::Transcoder;
use super::limits::{HEAD_LEN, MAX_FRAME, MAX_HEADER_LIST};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which a client sends before its first frame.
const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// The largest frame h2 takes (its SETTINGS_MAX_FRAME_SIZE), so the largest one that is waited
/// for whole, and the size of the frames a rewritten block leaves in.
const FRAME: usize = MAX_FRAME as usize;
/// The most a header block may weigh encoded, and the decoded size past which h2 refuses it.
const BLOCK: usize = MAX_HEADER_LIST as usize;
/// The most CONTINUATION frames without END_HEADERS that one block may have: h2's own rule
/// (`calc_max_continuation_frames`: a quarter more than a block of the largest size needs,
/// and at least 5), which h2 cannot apply itself since it only sees the rewritten block.
const MAX_CONTINUATIONS: usize = {
    let need = if BLOCK / FRAME > 1 { BLOCK / FRAME } else { 1 };
    let allowed = need + need / 4;
    if allowed > 5 { allowed } else { 5 }
};
/// Rewritten bytes past which [`Rewriter::feed`] stops and lets h2 take them first.
const OUT_ROOM: usize = FRAME;
/// RFC 7541 static table entry 16, `accept-encoding: gzip, deflate`: 60 bytes of header list
/// (15 + 13 + 32) for one byte of block.
const STATIC_60: u8 = 0x80 | 16;

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
    /// CONTINUATION frames without END_HEADERS so far.
    continuations: usize,
}

/// What one [`Rewriter::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fed {
    /// Bytes of the input used; the rest must be offered again, with more after it.
    pub(super) used: usize,
    /// It stopped for lack of room: the rest may hold whole frames, to offer again once the
    /// output has been taken.
    pub(super) full: bool,
}

/// What is done with the connection's header blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocks {
    /// None seen yet: the first decides.
    Undecided,
    /// Copied as they come (the first needed no rewrite).
    Copied,
    /// Each decoded and written again.
    Rewritten,
}

#[derive(Debug)]
pub(super) struct Rewriter {
    state: State,
    pending: Option<Pending>,
    hpack: Transcoder,
    blocks: Blocks,
    /// A header block copied as it comes is open (HEADERS without END_HEADERS so far).
    copying_block: bool,
    /// Units (the preface, a frame, a whole header block) finished so far.
    units: u64,
}

impl Rewriter {
    pub(super) fn new() -> Rewriter {
        Rewriter {
            state: State::Copy(PREFACE_LEN),
            pending: None,
            hpack: Transcoder::new(),
            blocks: Blocks::Undecided,
            copying_block: false,
            units: 0,
        }
    }

    /// Whether the stream stands between two units: no frame begun, no header block open.
    pub(super) fn at_rest(&self) -> bool {
        matches!(self.state, State::Head | State::Copy(0)) && self.pending.is_none() && !self.copying_block
    }

    /// How many units (the preface, a frame, a whole header block) have been finished.
    pub(super) fn units(&self) -> u64 {
        self.units
    }

    /// Rewrites what it can of `input` onto `out`, stopping once `out` holds [`OUT_ROOM`] bytes.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Fed, Error> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            if out.len() >= OUT_ROOM {
                return Ok(Fed { used, full: !rest.is_empty() });
            }
            match self.state {
                State::Copy(0) => {
                    self.units += 1;
                    self.state = State::Head;
                }
                State::Copy(n) => {
                    let k = n.min(rest.len());
                    if k == 0 {
                        return Ok(Fed { used, full: false });
                    }
                    out.extend_from_slice(&rest[..k]);
                    used += k;
                    self.state = State::Copy(n - k);
                }
                State::Head => {
                    if rest.len() < HEAD_LEN {
                        return Ok(Fed { used, full: false });
                    }
                    let head = Head::parse(rest);
                    used += HEAD_LEN;
                    self.state = self.after_head(head, &rest[..HEAD_LEN], out)?;
                }
                State::Block(head) => {
                    if rest.len() < head.len {
                        return Ok(Fed { used, full: false });
                    }
                    self.block_frame(head, &rest[..head.len], out)?;
                    used += head.len;
                    self.state = State::Head;
                }
            }
        }
    }

    fn after_head(&mut self, head: Head, raw: &[u8], out: &mut Vec<u8>) -> Result<State, Error> {
        if self.blocks == Blocks::Copied {
            if head.kind == HEADERS || head.kind == CONTINUATION {
                self.copying_block = head.flags & END_HEADERS == 0;
            }
            out.extend_from_slice(raw);
            return Ok(State::Copy(head.len));
        }
        let ours = head.kind == HEADERS || (head.kind == CONTINUATION && self.pending.is_some());
        if ours {
            if head.len > FRAME {
                let mut bytes = [0; HEAD_LEN];
                bytes.copy_from_slice(raw);
                return Err(Error::FrameTooLarge { head: bytes, len: head.len });
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
                continued(p, head, payload)?;
                p
            }
            _ => return Err(Error::Framing("HEADERS or CONTINUATION out of sequence")),
        };
        if head.flags & END_HEADERS != 0 {
            if self.blocks == Blocks::Undecided && self.hpack.acceptable_as_is(&pending.block)? {
                emit(pending, &pending.block, out);
                self.blocks = Blocks::Copied;
            } else {
                let block = self.hpack.transcode(&pending.block)?;
                emit(pending, &block, out);
                self.blocks = Blocks::Rewritten;
            }
            self.pending = None;
            self.units += 1;
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
    if body.len() > BLOCK {
        return Err(Error::BlockTooLarge { stream: head.stream, bytes: body.len() });
    }
    Ok(Pending {
        stream: head.stream,
        end_stream: head.flags & END_STREAM != 0,
        priority,
        block: body.to_vec(),
        continuations: 0,
    })
}

/// Adds a CONTINUATION's payload to the block, within h2's limits on size and frame count.
fn continued(p: &mut Pending, head: Head, payload: &[u8]) -> Result<(), Error> {
    if head.flags & END_HEADERS == 0 {
        p.continuations += 1;
        if p.continuations > MAX_CONTINUATIONS {
            return Err(Error::TooManyContinuations { stream: p.stream, max: MAX_CONTINUATIONS });
        }
    }
    let bytes = p.block.len() + payload.len();
    if bytes > BLOCK {
        return Err(Error::BlockTooLarge { stream: p.stream, bytes });
    }
    p.block.extend_from_slice(payload);
    Ok(())
}

/// What h2 is handed in place of the rest of a client's stream once the adapter refuses it, so
/// that h2 itself ends the connection with the error RFC 9113 names, and its GOAWAY (naming the
/// last stream it processed) reaches the client before the close:
/// - a block over the limit, or in too many frames: ENHANCE_YOUR_CALM, for a peer "exhibiting a
///   behavior that might be generating excessive load" (sections 7 and 10.5). h2 answers it to a
///   block whose decoded list is over four times its header-list limit; the block handed here
///   decodes to eight times the limit, in one-byte references to the static table (which leave
///   h2's dynamic table alone).
/// - a header frame longer than the frame size: FRAME_SIZE_ERROR (section 4.2), which h2 answers
///   to the frame's header alone.
/// - broken framing or HPACK: PROTOCOL_ERROR, which h2 answers to a CONTINUATION that continues
///   nothing (section 6.10), as it answers a block it cannot decode.
pub(super) fn refusal(e: &Error, out: &mut Vec<u8>) {
    match e {
        Error::BlockTooLarge { stream, .. } | Error::TooManyContinuations { stream, .. } => {
            let block = vec![STATIC_60; 8 * BLOCK / 60 + 1];
            let p = Pending {
                stream: (*stream).max(1),
                end_stream: true,
                priority: None,
                block: Vec::new(),
                continuations: 0,
            };
            emit(&p, &block, out);
        }
        Error::FrameTooLarge { head, .. } => out.extend_from_slice(head),
        Error::Framing(_) | Error::Hpack(_) => {
            Head { len: 0, kind: CONTINUATION, flags: END_HEADERS, stream: 1 }.write(out)
        }
    }
}

/// Writes the rewritten block as one HEADERS frame and as many CONTINUATIONs as it needs.
fn emit(p: &Pending, block: &[u8], out: &mut Vec<u8>) {
    let prio_len = if p.priority.is_some() { PRIORITY_LEN } else { 0 };
    let first = block.len().min(FRAME - prio_len);
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
        (chunk, rest) = rest.split_at(rest.len().min(FRAME));
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
            let used = r.feed(&pending, &mut out).unwrap().used;
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

    /// Feeds `input` whole, offering the rest again as long as the rewriter stops for room.
    fn feed_all(r: &mut Rewriter, input: &[u8]) -> Result<Vec<u8>, Error> {
        let (mut out, mut all, mut at) = (Vec::new(), Vec::new(), 0);
        loop {
            let fed = r.feed(&input[at..], &mut out)?;
            at += fed.used;
            all.append(&mut out);
            if !fed.full {
                return Ok(all);
            }
        }
    }

    #[test]
    fn a_block_larger_than_a_frame_leaves_in_frames_h2_accepts() {
        // Five references to a 3,500-byte entry of the client's table: 5 bytes on the wire, 17.5 KB
        // decoded (the fifth takes the list past the limit, for h2 to refuse), leaving as 17.5 KB
        // of literals. A list under the limit is always shorter than a frame.
        let big = vec![b'v'; 3500];
        let mut enc = loona_hpack::Encoder::new();
        // A socket path for authority: the connection's blocks are rewritten from the first on.
        let first = enc.encode([(&b":authority"[..], &b"/run/csi.sock"[..]), (b"x-big", &big[..])]);
        let again = enc.encode((0..5).map(|_| (&b"x-big"[..], &big[..])));
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &again));
        let out = feed_all(&mut Rewriter::new(), &input).unwrap();
        let got = frames(&out[PREFACE_LEN..]);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(h, _)| h.len <= FRAME));
        assert_eq!((got[1].0.kind, got[1].0.flags, got[1].0.stream), (HEADERS, END_STREAM, 3));
        assert_eq!((got[2].0.kind, got[2].0.flags, got[2].0.stream), (CONTINUATION, END_HEADERS, 3));
        let whole: Vec<u8> = got[1..].iter().flat_map(|(_, p)| p.clone()).collect();
        let fields = loona_hpack::Decoder::new().decode(&whole).unwrap();
        assert_eq!(fields.len(), 5);
        assert!(fields.iter().all(|(_, v)| *v == big));
    }

    #[test]
    fn a_client_whose_first_block_needs_nothing_has_its_connection_copied_as_it_comes() {
        let mut enc = loona_hpack::Encoder::new();
        let first = enc.encode([(&b":authority"[..], &b"localhost"[..]), (b":path", b"/csi.v1.Node/A")]);
        // The second block refers to the client's dynamic table; h2, which saw the first block
        // as it was, shares that table.
        let second = enc.encode([(&b":authority"[..], &b"localhost"[..]), (b":path", b"/csi.v1.Node/A")]);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        input.extend(frame(HEADERS, 0, 3, &second[..1]));
        input.extend(frame(CONTINUATION, END_HEADERS | PADDED, 3, &second[1..]));
        let mut r = Rewriter::new();
        let out = feed_all(&mut r, &input).unwrap();
        assert_eq!(out, input, "every byte as the client sent it");
        assert!(r.at_rest(), "the copied block's end was seen");
        let open = feed_all(&mut r, &frame(HEADERS, 0, 5, &second[..1])).unwrap();
        assert_eq!(open.len(), HEAD_LEN + 1);
        assert!(!r.at_rest(), "a copied header block left open is not a rest");
    }

    /// An encoded header block of exactly `total` bytes: one literal field `x-big`.
    fn block_of(total: usize) -> Vec<u8> {
        let value = total - 10;
        let n = value - 127;
        let mut b = vec![0x00, 5];
        b.extend_from_slice(b"x-big");
        b.extend_from_slice(&[0x7f, u8::try_from(n & 0x7f | 0x80).unwrap(), u8::try_from(n >> 7).unwrap()]);
        b.extend(std::iter::repeat_n(b'v', value));
        assert_eq!(b.len(), total);
        b
    }

    /// The preface, then `block` as a HEADERS frame of 10,000 bytes and a CONTINUATION.
    fn split_block(block: &[u8]) -> Vec<u8> {
        let (a, b) = block.split_at(10_000);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, END_STREAM, 1, a));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        input
    }

    #[test]
    fn a_block_of_exactly_the_limit_passes_and_one_byte_more_is_refused() {
        let out = feed_all(&mut Rewriter::new(), &split_block(&block_of(BLOCK))).unwrap();
        let got = frames(&out[PREFACE_LEN..]);
        let whole: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
        let fields = loona_hpack::Decoder::new().decode(&whole).unwrap();
        assert_eq!(fields[0].1.len(), BLOCK - 10);
        assert_eq!(got.last().unwrap().0.flags & END_HEADERS, END_HEADERS);

        let err = feed_all(&mut Rewriter::new(), &split_block(&block_of(BLOCK + 1))).unwrap_err();
        assert!(matches!(err, Error::BlockTooLarge { stream: 1, bytes } if bytes == BLOCK + 1), "{err}");
        // h2 is handed a block it answers with GOAWAY ENHANCE_YOUR_CALM: a decoded list over
        // four times its limit, in the stream's own HEADERS frame, sizes counted as h2 does.
        let mut out = Vec::new();
        refusal(&err, &mut out);
        let got = frames(&out);
        assert_eq!((got[0].0.kind, got[0].0.stream), (HEADERS, 1));
        assert_eq!(got.last().unwrap().0.flags & END_HEADERS, END_HEADERS);
        let whole: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
        let fields = loona_hpack::Decoder::new().decode(&whole).unwrap();
        let size: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert!(size > 4 * BLOCK, "{size}");
        assert!(out.len() < BLOCK, "{}", out.len());
    }

    #[test]
    fn continuations_are_bounded_as_h2_bounds_them() {
        let with = |n: usize| {
            let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            input.extend(frame(HEADERS, 0, 1, &[0x82]));
            for _ in 0..n {
                input.extend(frame(CONTINUATION, 0, 1, &[]));
            }
            input.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x84]));
            feed_all(&mut Rewriter::new(), &input)
        };
        assert_eq!(MAX_CONTINUATIONS, 5);
        let out = with(MAX_CONTINUATIONS).unwrap();
        let got = frames(&out[PREFACE_LEN..]);
        assert_eq!(got.len(), 1);
        // No authority to rewrite: the block leaves as it came, in one frame.
        assert_eq!(got[0].1, [0x82, 0x84]);
        assert!(matches!(with(MAX_CONTINUATIONS + 1), Err(Error::TooManyContinuations { stream: 1, .. })));
    }

    #[test]
    fn feed_stops_once_the_output_has_a_frame_of_bytes() {
        // 1,500 PINGs (17 bytes each): two feeds' worth.
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..1500 {
            input.extend(frame(0x6, 0, 0, &[0; 8]));
        }
        let mut r = Rewriter::new();
        let mut out = Vec::new();
        let fed = r.feed(&input, &mut out).unwrap();
        assert!(fed.full);
        assert!(out.len() >= OUT_ROOM && out.len() < OUT_ROOM + 17, "{}", out.len());
        assert!(!r.at_rest() || fed.used == out.len());
        let mut rest = Vec::new();
        let again = r.feed(&input[fed.used..], &mut rest).unwrap();
        assert!(!again.full);
        assert_eq!(fed.used + again.used, input.len());
        assert_eq!([out, rest].concat(), input);
        assert!(r.at_rest());
        assert_eq!(r.units(), 1501);
    }

    #[test]
    fn broken_sequences_end_the_connection() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let open = frame(HEADERS, 0, 1, &[0x82]); // :method GET, no END_HEADERS
        let ping = frame(0x6, 0, 0, &[0; 8]);
        let other_stream = frame(CONTINUATION, END_HEADERS, 3, &[0x84]);
        let too_big = {
            let mut h = Vec::new();
            Head { len: FRAME + 1, kind: HEADERS, flags: 0, stream: 1 }.write(&mut h);
            h
        };
        let bad_pad = frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82]);
        // What h2 is handed instead: a CONTINUATION that continues nothing (PROTOCOL_ERROR), or
        // the oversized frame's header (FRAME_SIZE_ERROR).
        let stray = frame(CONTINUATION, END_HEADERS, 1, &[]);
        for (what, tail, refused) in [
            ("ping inside a block", [open.clone(), ping].concat(), stray.clone()),
            ("continuation of another stream", [open, other_stream].concat(), stray.clone()),
            ("huge frame", too_big.clone(), too_big),
            ("padding longer than the frame", bad_pad, stray),
        ] {
            let input = [preface.clone(), tail].concat();
            let err = Rewriter::new().feed(&input, &mut Vec::new()).unwrap_err();
            let mut out = Vec::new();
            refusal(&err, &mut out);
            assert_eq!(out, refused, "{what}: {err}");
        }
    }
}
