//! Re-encodes a client's header block: decoded with the client's HPACK context, written back
//! with literals that never touch the receiver's dynamic table, the authority made acceptable.

use super::error::Error;
use super::limits::MAX_HEADER_LIST;

/// What stands in for an authority that is not an RFC 3986 authority (the value kubelet sends).
const STAND_IN: &[u8] = b"localhost";
/// The dynamic table size h2 advertises (the HTTP/2 default: tonic leaves hyper's
/// `header_table_size` unset), which binds the client's encoder.
const TABLE_SIZE: usize = 4096;
/// HPACK's per-field overhead in the header list size (RFC 7541 section 4.1).
const FIELD_OVERHEAD: usize = 32;

pub(super) struct Transcoder {
    decoder: loona_hpack::Decoder<'static>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder").finish_non_exhaustive()
    }
}

impl Transcoder {
    pub(super) fn new() -> Transcoder {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Transcoder { decoder }
    }

    /// Whether h2 takes the block as it is: every `:authority` in it is one h2 accepts. Decodes
    /// the block with the client's context (which stays in step, as for [`Transcoder::transcode`]).
    pub(super) fn acceptable_as_is(&mut self, block: &[u8]) -> Result<bool, Error> {
        let mut fine = true;
        self.decoder
            .decode_with_cb(block, |name, value| {
                if &*name == b":authority" && !acceptable(&value) {
                    fine = false;
                }
            })
            .map_err(|e| Error::Hpack(e.to_string()))?;
        Ok(fine)
    }

    /// The block, decoded and written again as literals without indexing, up to and including
    /// the field that brings the header list to [`MAX_HEADER_LIST`]: h2 refuses a list that
    /// reaches it (431 and REFUSED_STREAM), so what follows is decoded only to keep the client's
    /// HPACK context, and never held. What is written is thus at most the limit plus one field
    /// (a literal no longer than the block, or a dynamic table entry of at most 4 KiB).
    pub(super) fn transcode(&mut self, block: &[u8]) -> Result<Vec<u8>, Error> {
        let limit = MAX_HEADER_LIST as usize;
        let mut out = Vec::with_capacity(block.len() * 2);
        let mut size = 0usize;
        self.decoder
            .decode_with_cb(block, |name, value| {
                if size >= limit {
                    return;
                }
                let value = if &*name == b":authority" && !acceptable(&value) { STAND_IN } else { &value };
                size += name.len() + value.len() + FIELD_OVERHEAD;
                literal(&name, value, &mut out);
            })
            .map_err(|e| Error::Hpack(e.to_string()))?;
        Ok(out)
    }
}

/// Whether h2 takes this authority as it is.
fn acceptable(authority: &[u8]) -> bool {
    http::uri::Authority::try_from(authority).is_ok()
}

/// A literal header field without indexing, with a literal name, neither string Huffman-coded.
fn literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    string(name, out);
    string(value, out);
}

/// A string literal (H bit clear) with its length as a 7-bit-prefix integer.
fn string(s: &[u8], out: &mut Vec<u8>) {
    const PREFIX_MAX: u8 = 127;
    match u8::try_from(s.len()) {
        Ok(n) if n < PREFIX_MAX => out.push(n),
        _ => {
            out.push(PREFIX_MAX);
            let mut n = s.len() - usize::from(PREFIX_MAX);
            while n >= 0x80 {
                out.push(low7(n) | 0x80);
                n >>= 7;
            }
            out.push(low7(n));
        }
    }
    out.extend_from_slice(s);
}

/// The low seven bits of `n`: one digit of an HPACK integer.
fn low7(n: usize) -> u8 {
    n.to_le_bytes()[0] & 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes what `transcode` wrote with a fresh decoder: literals need no shared state.
    fn fields(block: &[u8]) -> Vec<(String, String)> {
        let mut d = loona_hpack::Decoder::new();
        let list = d.decode(block).unwrap();
        list.into_iter().map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())).collect()
    }

    #[test]
    fn bad_authorities_become_localhost_and_good_ones_stay() {
        let mut enc = loona_hpack::Encoder::new();
        let mut t = Transcoder::new();
        let long = "x".repeat(300);
        for (given, expect) in [
            ("/var/lib/kubelet/plugins/x/csi.sock", "localhost"),
            ("", "localhost"),
            ("localhost", "localhost"),
            ("strata:10000", "strata:10000"),
        ] {
            // The same encoder for every block: later blocks refer to its dynamic table.
            let block = enc.encode([
                (&b":method"[..], &b"POST"[..]),
                (b":authority", given.as_bytes()),
                (b"x-long", long.as_bytes()),
            ]);
            let got = fields(&t.transcode(&block).unwrap());
            assert_eq!(got[0], (":method".into(), "POST".into()));
            assert_eq!(got[1], (":authority".into(), expect.into()), "{given:?}");
            assert_eq!(got[2].1, long);
        }
    }

    /// The header list size of a block, as h2 counts it.
    fn list_size(block: &[u8]) -> usize {
        fields(block).iter().map(|(n, v)| n.len() + v.len() + FIELD_OVERHEAD).sum()
    }

    #[test]
    fn an_amplified_block_reaches_h2_cut_but_over_the_limit_and_the_context_stays_in_step() {
        let limit = MAX_HEADER_LIST as usize;
        let mut enc = loona_hpack::Encoder::new();
        let big = vec![b'a'; 3000];
        let mut t = Transcoder::new();
        t.transcode(&enc.encode([(&b"x-big"[..], &big[..])])).unwrap();
        // Each repeat is one byte on the wire (an index) but 3 KB decoded: 1.2 MB in all.
        let many: Vec<_> = (0..400).map(|_| (&b"x-big"[..], &big[..])).collect();
        let block = enc.encode(many);
        assert!(block.len() < 1000);
        let out = t.transcode(&block).unwrap();
        // Enough for h2 to refuse the stream (it does from the limit on), and no more.
        assert!(list_size(&out) >= limit, "{}", list_size(&out));
        assert!(list_size(&out) < limit + 3100, "{}", list_size(&out));
        assert!(out.len() < limit + 3100, "{}", out.len());
        // The fields it left out were decoded all the same: the next block, which refers to the
        // client's table, comes out right.
        let next = enc.encode([(&b"x-big"[..], &big[..]), (b"x-after", b"ok")]);
        let got = fields(&t.transcode(&next).unwrap());
        assert_eq!(got, [("x-big".into(), String::from_utf8(big).unwrap()), ("x-after".into(), "ok".into())]);
    }

    #[test]
    fn long_strings_use_the_integer_continuation() {
        let mut out = Vec::new();
        string(&[b'v'; 1000], &mut out);
        assert_eq!(
            &out[..3],
            &[127, u8::try_from((1000 - 127) & 0x7f | 0x80).unwrap(), u8::try_from((1000 - 127) >> 7).unwrap()]
        );
        assert_eq!(
            fields(&{
                let mut b = Vec::new();
                literal(b"k", &[b'v'; 1000], &mut b);
                b
            })[0]
                .1
                .len(),
            1000
        );
    }
}
