//! Connecting to a CSI endpoint, and saying in words why it failed: an operator needs "no such
//! socket" or "permission denied" and the path tried, not "transport error".

use super::server::Endpoint;
use std::error::Error as _;
use std::io::ErrorKind;
use tonic::transport::Channel;

/// Connects to a CSI endpoint (unix socket or TCP).
pub async fn connect(endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
    match endpoint {
        Endpoint::Unix(path) => {
            let path = path.clone();
            let connector = tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            });
            tonic::transport::Endpoint::from_static("http://localhost").connect_with_connector(connector).await
        }
        Endpoint::Tcp(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await,
    }
}

/// Why connecting to `endpoint` failed, naming the socket path or address that was tried.
pub fn why_unreachable(endpoint: &Endpoint, error: &tonic::transport::Error) -> String {
    let io = io_cause(error);
    let what = match endpoint {
        Endpoint::Unix(path) => format!("socket {}", path.display()),
        Endpoint::Tcp(addr) => format!("address {addr}"),
    };
    let reason = match io.map(std::io::Error::kind) {
        Some(ErrorKind::NotFound) => "no such socket (is strata-csi serve running with this --endpoint?)".to_owned(),
        Some(ErrorKind::ConnectionRefused) => "connection refused (nothing listens there; a stale socket?)".to_owned(),
        Some(ErrorKind::PermissionDenied) => "permission denied (run as root, or as the socket's owner)".to_owned(),
        Some(_) => io.map(ToString::to_string).unwrap_or_default(),
        None => error.to_string(),
    };
    format!("cannot connect to {endpoint}: {reason}; tried {what}")
}

/// The operating system's error at the root of a transport error, if there is one.
fn io_cause(error: &tonic::transport::Error) -> Option<&std::io::Error> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reason(endpoint: &Endpoint) -> String {
        let err = connect(endpoint).await.expect_err("nothing listens");
        why_unreachable(endpoint, &err)
    }

    #[tokio::test]
    async fn each_cause_is_named_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let msg = reason(&Endpoint::Unix(missing.clone())).await;
        assert!(msg.contains("no such socket") && msg.contains(missing.to_str().unwrap()), "{msg}");
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let msg = reason(&Endpoint::Unix(stale.clone())).await;
        assert!(msg.contains("connection refused") && msg.contains(stale.to_str().unwrap()), "{msg}");
    }
}
