//! A hand-rolled HTTP/2 client for one gRPC call over the unix socket, so that a test controls
//! every byte the server sees: the `:authority` (even one no HTTP library would send) and the
//! request body (even one that does not decode).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// What came back for stream 1.
#[derive(Debug, Default)]
pub struct Reply {
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
    /// The gRPC message bytes (the 5-byte length prefix removed).
    pub message: Vec<u8>,
    /// RST_STREAM or GOAWAY error code, if the call was cut off.
    pub reset: Option<u32>,
}

impl Reply {
    fn field(&self, name: &str) -> Option<&str> {
        self.trailers.iter().chain(&self.headers).find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `grpc-status` of the trailers (or of a trailers-only answer).
    pub fn status(&self) -> Option<i32> {
        self.field("grpc-status").map(|s| s.parse().unwrap())
    }

    /// `grpc-message`, percent-decoded.
    pub fn status_message(&self) -> String {
        let raw = self.field("grpc-message").unwrap_or_default().as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                out.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 3;
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}

/// One HTTP/2 frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Calls `method` (`/csi.v1.Identity/Probe`) with `body` as the request message, sending
/// `authority` as `:authority` (`None`: no such field at all).
pub fn call(sock: &Path, authority: Option<&[u8]>, method: &str, body: &[u8]) -> Reply {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b":scheme", b"http")];
    fields.push((b":path", method.as_bytes()));
    if let Some(a) = authority {
        fields.push((b":authority", a));
    }
    fields.extend([(&b"content-type"[..], &b"application/grpc"[..]), (b"te", b"trailers")]);
    let block = loona_hpack::Encoder::new().encode(fields);
    let mut grpc = vec![0];
    grpc.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    grpc.extend_from_slice(body);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, 1, &block));
    out.extend(frame(DATA, END_STREAM, 1, &grpc));
    s.write_all(&out).unwrap();
    read_reply(&mut s)
}

fn read_reply(s: &mut UnixStream) -> Reply {
    let mut decoder = loona_hpack::Decoder::new();
    let mut reply = Reply::default();
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            break; // the server closed the connection
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let mut payload = vec![0; len];
        s.read_exact(&mut payload).unwrap();
        match kind {
            SETTINGS if flags & 1 == 0 => s.write_all(&frame(SETTINGS, 1, 0, &[])).unwrap(),
            HEADERS => {
                assert!(flags & END_HEADERS != 0, "the server's headers fit one frame");
                let list: Vec<(String, String)> = decoder
                    .decode(&payload)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect();
                if reply.headers.is_empty() { reply.headers = list } else { reply.trailers = list }
            }
            DATA => data.extend_from_slice(&payload),
            RST_STREAM | GOAWAY => {
                let code = &payload[payload.len() - 4..];
                reply.reset = Some(u32::from_be_bytes(code.try_into().unwrap()));
                break;
            }
            _ => {}
        }
        if matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0 {
            break;
        }
    }
    if data.len() >= 5 {
        reply.message = data[5..].to_vec();
    }
    reply
}
