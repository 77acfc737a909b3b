//! Serving the CSI services on a unix socket (or TCP) until SIGTERM or SIGINT, then draining the
//! calls in flight before exiting: the endpoint's syntax, the check before start that no other
//! server holds the socket, the socket file's life, and at most so many connections at once.

mod direct;
mod quiet;
mod slots;

use super::Driver;
use super::authority::AuthorityFix;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;

/// Mode of the socket: the sidecars (same user or group) may connect, nobody else.
const SOCKET_MODE: u32 = 0o660;

/// How many client connections are served at once unless `serve --max-connections` says
/// otherwise: kubelet opens one per call and each sidecar keeps one, so this is far more than a
/// node needs, and bounds what clients can make the server hold (see docs/security.md).
pub const MAX_CONNECTIONS: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoint {0:?}: use unix:///path/to/csi.sock or tcp://host:port")]
    Endpoint(String),
    #[error("{what} {path}: {source}")]
    Socket { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket { path: PathBuf },
    #[error("another server is listening at {path}; not starting a second one on it")]
    InUse { path: PathBuf },
    #[error("listen on {addr}: {source}")]
    Tcp { addr: String, source: std::io::Error },
    #[error("install signal handler: {0}")]
    Signal(std::io::Error),
}

/// Where the server listens (and a client connects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl FromStr for Endpoint {
    type Err = Error;

    /// `unix:///abs/path`, `unix:/abs/path`, a bare absolute path, or `tcp://host:port`.
    fn from_str(s: &str) -> Result<Endpoint, Error> {
        let bad = || Error::Endpoint(s.to_owned());
        if let Some(addr) = s.strip_prefix("tcp://") {
            return match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(Endpoint::Tcp(addr.to_owned()))
                }
                _ => Err(bad()),
            };
        }
        let path = s.strip_prefix("unix://").or_else(|| s.strip_prefix("unix:")).unwrap_or(s);
        if !path.starts_with('/') || path.len() < 2 {
            return Err(bad());
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Serves until the first SIGTERM or SIGINT, then stops accepting and lets calls in flight
/// finish; a second signal or `drain` elapsing ends the wait. At most `max_connections` are
/// served at once; further ones wait in the listen backlog until one closes.
pub async fn serve(
    driver: Arc<Driver>,
    endpoint: &Endpoint,
    drain: Duration,
    max_connections: usize,
) -> Result<(), Error> {
    let (stop_rx, force_rx) = on_signals(drain)?;
    let stop = async {
        let _ = stop_rx.await;
    };
    let (served, socket) = listen(direct::Services::new(driver), endpoint, max_connections, stop).await?;
    tokio::select! {
        () = served => {}
        _ = force_rx => {}
    };
    if let Some(socket) = socket {
        socket.remove();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers. The first signal fires the first receiver (stop
/// accepting, drain); a second signal or `drain` elapsing fires the second (stop waiting).
fn on_signals(drain: Duration) -> Result<(oneshot::Receiver<()>, oneshot::Receiver<()>), Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (force_tx, force_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let first = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
        tracing::info!(signal = first, "stopping: draining calls in flight");
        let _ = stop_tx.send(());
        tokio::select! {
            _ = term.recv() => tracing::warn!("second signal: not waiting for calls in flight"),
            _ = int.recv() => tracing::warn!("second signal: not waiting for calls in flight"),
            _ = tokio::time::sleep(drain) => tracing::warn!(?drain, "calls still in flight after the drain time"),
        }
        let _ = force_tx.send(());
    });
    Ok((stop_rx, force_rx))
}

/// Listens at `endpoint` and returns the server until `stop`, with the socket file it made (a
/// unix endpoint's).
async fn listen<'a>(
    services: direct::Services,
    endpoint: &Endpoint,
    max_connections: usize,
    stop: impl Future<Output = ()> + Send + 'a,
) -> Result<(Serving<'a>, Option<SocketFile>), Error> {
    Ok(match endpoint {
        Endpoint::Unix(path) => {
            let (listener, socket) = bind_unix(path)?;
            tracing::info!(%endpoint, "serving");
            // Any client may connect, whatever it sends as `:authority` (see `authority`).
            let listener = quiet::Listener::new(listener);
            let incoming = slots::Limited::new(listener, max_connections).map(|conn| conn.map(AuthorityFix::new));
            (Box::pin(direct::serve(services, incoming, stop)), Some(socket))
        }
        Endpoint::Tcp(addr) => {
            let incoming = slots::Limited::new(bind_tcp(addr).await?, max_connections);
            (Box::pin(direct::serve(services, incoming, stop)), None)
        }
    })
}

/// Listens on TCP at `addr`, warning that nothing authenticates its clients.
async fn bind_tcp(addr: &str) -> Result<tokio::net::TcpListener, Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Tcp { addr: addr.to_owned(), source })?;
    // The address bound (a port 0 resolved), and what TCP gives up: a unix socket's mode.
    let bound = listener.local_addr().map_or_else(|_| addr.to_owned(), |a| a.to_string());
    tracing::warn!(
        endpoint = %format!("tcp://{bound}"),
        "this TCP endpoint has no authentication: anyone who reaches it can create, mount and delete volumes"
    );
    tracing::info!(endpoint = %format!("tcp://{bound}"), "serving");
    Ok(listener)
}

/// The server future, whichever the transport.
type Serving<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The socket file this server made: removed at exit only if it is still that same file.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn remove(&self) {
        let same = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if same {
            crate::undo::log("remove the socket", std::fs::remove_file(&self.path));
        }
    }
}

/// Checks, before anything else starts, that the endpoint is free to serve on: a unix socket
/// path holds nothing, or a stale socket (see [`existing_socket`]). TCP is checked by binding.
pub fn preflight(endpoint: &Endpoint) -> Result<(), Error> {
    match endpoint {
        Endpoint::Unix(path) => existing_socket(path).map(drop),
        Endpoint::Tcp(_) => Ok(()),
    }
}

/// Whether `path` holds a stale socket (true) or nothing (false). A socket that a server still
/// accepts on is [`Error::InUse`]: removing it would orphan that server, which keeps running but
/// can no longer be reached. Only a refused connection proves the socket stale.
fn existing_socket(path: &Path) -> Result<bool, Error> {
    let io = |what| move |source| Error::Socket { what, path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(Error::InUse { path: path.to_owned() }),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(true),
            Err(e) => Err(io("connect to the existing socket")(e)),
        },
        Ok(_) => Err(Error::NotASocket { path: path.to_owned() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("inspect")(e)),
    }
}

/// Binds the unix socket: replaces a stale socket (never a live one, never another kind of
/// file), creates the parent directory, and leaves the socket with mode 0660.
fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, SocketFile), Error> {
    let io = |what| move |source| Error::Socket { what, path: path.to_owned(), source };
    if existing_socket(path)? {
        std::fs::remove_file(path).map_err(io("remove stale socket"))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create directory for"))?;
    }
    let listener = bind_private(path).map_err(io("bind"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("inspect"))?;
    let socket = SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() };
    listener.set_nonblocking(true).map_err(io("set non-blocking"))?;
    Ok((tokio::net::UnixListener::from_std(listener).map_err(io("register"))?, socket))
}

/// Binds the socket in a private (0700) directory beside `path`, sets its mode, and renames it
/// into place, so that it is never reachable with a wider mode (no process-wide umask games).
fn bind_private(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let private = parent.join(format!(".strata-csi-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private)?;
    let result = (|| {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
        let tmp = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            path,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )?;
        Ok(listener)
    })();
    crate::undo::log("remove the private bind directory", std::fs::remove_dir_all(&private));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        assert_eq!("unix:///csi/csi.sock".parse::<Endpoint>().unwrap(), unix("/csi/csi.sock"));
        assert_eq!("unix:/csi/csi.sock".parse::<Endpoint>().unwrap(), unix("/csi/csi.sock"));
        assert_eq!("/csi/csi.sock".parse::<Endpoint>().unwrap(), unix("/csi/csi.sock"));
        assert_eq!("tcp://127.0.0.1:10000".parse::<Endpoint>().unwrap(), Endpoint::Tcp("127.0.0.1:10000".into()));
        for bad in ["", "unix://", "unix://rel/x", "tcp://host", "tcp://:1", "tcp://h:99999", "http://x"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        assert_eq!(unix("/a.sock").to_string(), "unix:///a.sock");
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_but_other_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sub/csi.sock");
        drop(bind_unix(&sock).unwrap());
        let (l, socket) = bind_unix(&sock).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(l);
        socket.remove();
        assert!(!sock.exists());
        // Only the very socket this server made is removed at exit.
        let (_l, socket) = bind_unix(&sock).unwrap();
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, "someone else's").unwrap();
        socket.remove();
        assert!(sock.exists());
        std::fs::remove_file(&sock).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "keep").unwrap();
        assert!(matches!(bind_unix(&file), Err(Error::NotASocket { .. })));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    }

    #[tokio::test]
    async fn a_live_socket_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("csi.sock");
        let (live, _socket) = bind_unix(&sock).unwrap();
        let ino = std::fs::metadata(&sock).unwrap().ino();
        let endpoint = Endpoint::Unix(sock.clone());
        assert!(matches!(preflight(&endpoint), Err(Error::InUse { .. })));
        let err = bind_unix(&sock).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("another server is listening at {}; not starting a second one on it", sock.display())
        );
        assert_eq!(std::fs::metadata(&sock).unwrap().ino(), ino);
        drop(live);
        preflight(&endpoint).unwrap();
        // The stale socket is replaced: the new server is the one that accepts.
        let (_again, _socket) = bind_unix(&sock).unwrap();
        std::os::unix::net::UnixStream::connect(&sock).unwrap();
    }
}
