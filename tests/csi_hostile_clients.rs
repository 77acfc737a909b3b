//! Clients that try to make `strata-csi serve` hold memory or connections: hundreds of
//! connections that each open an HTTP/2 header block and never finish it, against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::raw::{
    CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS, frame,
};
use csi_support::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use strata::csi::proto::{self as p};

const HOSTILE: usize = 500;
const MIB: u64 = 1024 * 1024;
/// The most the server may hold while the hostile clients are connected.
const PEAK_MAX: u64 = 64 * MIB;
/// How far above its resident size at rest the server may stay once they are gone.
const AFTER_MARGIN: u64 = 4 * MIB;
/// The connection limit of `serve` when no `--max-connections` is given.
const DEFAULT_LIMIT: usize = 256;

const ENHANCE_YOUR_CALM: u32 = 0xb;
const FRAME: usize = 16 * 1024;

/// The preface, an empty SETTINGS, and a header block of `block` bytes that never ends: a
/// HEADERS frame without END_HEADERS and CONTINUATIONs without it either.
fn unfinished_block(block: usize) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let mut left = block;
    let mut kind = HEADERS;
    while left > 0 {
        let n = left.min(FRAME);
        out.extend(frame(kind, 0, 1, &vec![b'x'; n]));
        kind = CONTINUATION;
        left -= n;
    }
    out
}

/// What one hostile connection saw.
#[derive(Debug)]
struct Outcome {
    /// The server ended the connection (end of file or reset) before the test let go of it.
    closed: bool,
    /// The error code of the server's GOAWAY, if it sent one.
    goaway: Option<u32>,
}

/// The error code of the first GOAWAY in what the server wrote.
fn goaway_code(mut b: &[u8]) -> Option<u32> {
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        if b.len() < 9 + len {
            return None;
        }
        if b[3] == GOAWAY && len >= 8 {
            return Some(u32::from_be_bytes(b[13..17].try_into().unwrap()));
        }
        b = &b[9 + len..];
    }
    None
}

/// Connects, sends `bytes` (as much as the server takes), reports on `sent`, then holds the
/// connection and reads what the server says until the server closes it or `release` is set.
fn hostile(sock: PathBuf, bytes: Arc<Vec<u8>>, sent: mpsc::Sender<()>, release: Arc<AtomicBool>) -> Outcome {
    let mut s = UnixStream::connect(&sock).expect("connect (the listen backlog takes them all)");
    s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    // A server that closes the connection makes this fail: that is the point.
    let _ = s.write_all(&bytes);
    sent.send(()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (mut heard, mut buf) = (Vec::new(), [0u8; 4096]);
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => heard.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if release.load(Ordering::SeqCst) {
                    break false;
                }
            }
            Err(_) => break true,
        }
    };
    Outcome { closed, goaway: goaway_code(&heard) }
}

/// The hostile clients, each on a thread of its own.
struct Horde {
    threads: Vec<std::thread::JoinHandle<Outcome>>,
    release: Arc<AtomicBool>,
}

impl Horde {
    /// Starts `HOSTILE` connections that each send `bytes`; returns once every one has sent
    /// them or been cut off.
    fn start(sock: &Path, bytes: Vec<u8>) -> Horde {
        raise_fd_limit();
        let bytes = Arc::new(bytes);
        let release = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let threads = (0..HOSTILE)
            .map(|_| {
                let (sock, bytes, tx, release) = (sock.to_owned(), bytes.clone(), tx.clone(), release.clone());
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || hostile(sock, bytes, tx, release))
                    .unwrap()
            })
            .collect();
        for _ in 0..HOSTILE {
            rx.recv_timeout(Duration::from_secs(300)).expect("every hostile client sent its bytes");
        }
        Horde { threads, release }
    }

    /// Lets go of the connections still open and returns what each one saw.
    fn finish(self) -> Vec<Outcome> {
        self.release.store(true, Ordering::SeqCst);
        self.threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

/// Lets this process open as many files as its hard limit allows: the tests here hold 500
/// sockets each, and may run side by side, over a soft limit of 1024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the rlimit passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(lim.rlim_cur >= 2048, "this test needs 2048 open files; the hard limit is {}", lim.rlim_cur);
}

/// A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), in bytes.
fn status_bytes(pid: nix::unistd::Pid, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// How many sockets the process has open (its listener and the connections it accepted).
fn sockets(pid: nix::unistd::Pid) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The server's socket count once it has settled (no client connected).
fn settled_sockets(pid: nix::unistd::Pid) -> usize {
    let mut last = sockets(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = sockets(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// One ordinary call on a connection of its own, as kubelet makes them.
async fn plugin_info(s: &Server, wait: Duration) -> Result<String, String> {
    let call = async {
        let mut c = s.clients().await;
        c.id.get_plugin_info(p::GetPluginInfoRequest {}).await.map(|r| r.into_inner().name)
    };
    match tokio::time::timeout(wait, call).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {wait:?}")),
    }
}

/// The server's resident size at rest: after a first call, once it no longer changes much.
async fn rest_rss(s: &Server) -> u64 {
    plugin_info(s, Duration::from_secs(30)).await.unwrap();
    std::thread::sleep(Duration::from_secs(1));
    status_bytes(s.pid(), "VmRSS")
}

/// Waits up to 20 s for the resident size to come within `AFTER_MARGIN` of `rest`; returns it.
fn rss_after(pid: nix::unistd::Pid, rest: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rss = status_bytes(pid, "VmRSS");
        if rss <= rest + AFTER_MARGIN || Instant::now() > deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_megabyte_header_blocks_neither_grow_the_server_nor_stay() {
    let s = Server::start();
    let pid = s.pid();
    let rest = rest_rss(&s).await;

    // 500 connections, each sending ~1 MiB of a header block that never ends.
    let horde = Horde::start(&s.sock, unfinished_block(63 * FRAME));
    let during = status_bytes(pid, "VmRSS");
    let answer = plugin_info(&s, Duration::from_secs(60)).await;
    let peak = status_bytes(pid, "VmHWM");
    let outcomes = horde.finish();
    let after = rss_after(pid, rest);
    let closed = outcomes.iter().filter(|o| o.closed).count();
    let calm = outcomes.iter().filter(|o| o.goaway == Some(ENHANCE_YOUR_CALM)).count();
    eprintln!(
        "rest {}, with {HOSTILE} hostile connections {} (peak {}), after they closed {}; \
         closed by the server {closed}, with GOAWAY ENHANCE_YOUR_CALM {calm}",
        mib(rest),
        mib(during),
        mib(peak),
        mib(after)
    );
    assert_eq!(answer.as_deref(), Ok("strata.csi.dev"), "an ordinary call during the attack");
    assert!(peak < PEAK_MAX, "the server grew to {} (peak) under the attack", mib(peak));
    assert!(after <= rest + AFTER_MARGIN, "the server kept {} after the attack (rest: {})", mib(after), mib(rest));
    // Each block is refused once it passes the header-list limit, as a connection error.
    assert_eq!(calm, HOSTILE, "every hostile connection gets GOAWAY ENHANCE_YOUR_CALM: {outcomes:?}");
    assert_eq!(closed, HOSTILE, "the server closes every hostile connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_header_blocks_do_not_lock_other_clients_out() {
    let s = Server::start();
    let pid = s.pid();
    let rest = rest_rss(&s).await;
    let idle = settled_sockets(pid);

    // 500 connections that each start a small header block and then say nothing more.
    let horde = Horde::start(&s.sock, unfinished_block(100));
    std::thread::sleep(Duration::from_millis(500));
    let held = sockets(pid) - idle;
    // An ordinary client still gets its answer: the stalled connections are closed in time, and
    // the ones waiting behind them (this one too) are then accepted.
    let answer = plugin_info(&s, Duration::from_secs(90)).await;
    let peak = status_bytes(pid, "VmHWM");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && settled_sockets(pid) > idle {
        std::thread::sleep(Duration::from_millis(200));
    }
    let outcomes = horde.finish();
    let closed = outcomes.iter().filter(|o| o.closed).count();
    let after = rss_after(pid, rest);
    eprintln!(
        "connections held at once: {held}; peak {}; closed by the server {closed}; rest {}, after {}",
        mib(peak),
        mib(rest),
        mib(after)
    );
    assert!(held <= DEFAULT_LIMIT, "the server accepted {held} connections at once (limit {DEFAULT_LIMIT})");
    assert_eq!(answer.as_deref(), Ok("strata.csi.dev"), "an ordinary call behind the stalled connections");
    assert_eq!(closed, HOSTILE, "the server closes every connection that stalls in a header block");
    assert!(peak < PEAK_MAX, "peak {}", mib(peak));
    assert!(after <= rest + AFTER_MARGIN, "the server kept {} after the attack (rest: {})", mib(after), mib(rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_bounds_the_connections_accepted_at_once() {
    let s = Server::start_with(&["--max-connections", "2"]);
    let pid = s.pid();
    plugin_info(&s, Duration::from_secs(30)).await.unwrap();
    let idle = settled_sockets(pid);
    // Two well-behaved idle connections (preface and SETTINGS, nothing else) fill the server.
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    let held: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut c = UnixStream::connect(&s.sock).unwrap();
            c.write_all(&hello).unwrap();
            c
        })
        .collect();
    assert_eq!(settled_sockets(pid), idle + 2);
    // A third client waits in the listen backlog, not accepted, until one of them leaves.
    let waiting = tokio::spawn({
        let s_sock = s.endpoint();
        async move {
            let ep: strata::csi::server::Endpoint = s_sock.parse().unwrap();
            let ch = strata::csi::client::connect(&ep).await.unwrap();
            let mut id = strata::csi::proto::identity_client::IdentityClient::new(ch);
            id.probe(p::ProbeRequest {}).await.map(|_| ())
        }
    });
    assert_eq!(settled_sockets(pid), idle + 2, "a third connection was accepted over --max-connections 2");
    assert!(!waiting.is_finished(), "a third client was served over --max-connections 2");
    drop(held);
    let served = tokio::time::timeout(Duration::from_secs(30), waiting).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");

    let out = std::process::Command::new(BIN).args(["serve", "--max-connections", "0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-connections"), "{stderr}");
}

/// A GetPluginInfo request's header fields, with `big` added `times` times as `x-big`.
fn request_fields(big: &[u8], times: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/csi.v1.Identity/GetPluginInfo"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    fields.extend((0..times).map(|_| (b"x-big".to_vec(), big.to_vec())));
    fields
}

/// Per stream: its header fields (decoded in order) and the code of its RST_STREAM.
type Streams = std::collections::HashMap<u32, (Vec<(String, String)>, Option<u32>)>;

/// Reads the server's frames until stream `last` ends.
fn read_streams(c: &mut UnixStream, last: u32) -> Streams {
    let mut decoder = loona_hpack::Decoder::new();
    let mut seen = Streams::default();
    loop {
        let mut head = [0u8; 9];
        c.read_exact(&mut head).expect("the server keeps the connection");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes(head[5..9].try_into().unwrap());
        let mut payload = vec![0; len];
        c.read_exact(&mut payload).unwrap();
        let entry = seen.entry(stream).or_default();
        match kind {
            HEADERS => entry.0.extend(
                decoder
                    .decode(&payload)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())),
            ),
            RST_STREAM => entry.1 = Some(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            GOAWAY => panic!("GOAWAY: {payload:?}"),
            _ => {}
        }
        let ended = (matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0) || kind == RST_STREAM;
        if stream == last && ended {
            return seen;
        }
    }
}

#[test]
fn a_header_list_over_the_limit_is_refused_by_h2_and_the_connection_lives_on() {
    let s = Server::start();
    let mut c = UnixStream::connect(&s.sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Five references to a 4 KB entry of the client's table: 20 KB of header list in ~4 KB of
    // block. h2 refuses such a request with 431, and the connection goes on.
    let mut enc = loona_hpack::Encoder::new();
    let big = vec![b'a'; 4000];
    let over = enc.encode(request_fields(&big, 5).iter().map(|(n, v)| (&n[..], &v[..])));
    assert!(over.len() < 4200, "{}", over.len());
    let fine = enc.encode(request_fields(&big, 1).iter().map(|(n, v)| (&n[..], &v[..])));
    let empty = [0u8; 5];
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, 1, &over));
    out.extend(frame(DATA, END_STREAM, 1, &empty));
    out.extend(frame(HEADERS, END_HEADERS, 3, &fine));
    out.extend(frame(DATA, END_STREAM, 3, &empty));
    c.write_all(&out).unwrap();
    let seen = read_streams(&mut c, 3);
    let field = |stream: u32, name: &str| {
        seen.get(&stream).and_then(|(f, _)| f.iter().find(|(n, _)| n == name)).map(|(_, v)| v.clone())
    };
    assert_eq!(field(1, ":status").as_deref(), Some("431"), "{seen:?}");
    assert_eq!(field(3, ":status").as_deref(), Some("200"), "{seen:?}");
    assert_eq!(field(3, "grpc-status").as_deref(), Some("0"), "{seen:?}");
}
