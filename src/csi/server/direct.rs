//! HTTP/2 connections served by hyper itself, each request handed to its CSI service by the
//! service's name. tonic's own server puts a protocol sniffer (for HTTP/1), a router, a timeout
//! layer, boxing and a trace span on every call; a CSI server speaks HTTP/2 only, serves four
//! fixed services, and cancels a call whose client gives up (hyper drops the call when the client
//! resets its stream), so none of that is needed.

use super::super::Driver;
use super::super::authority::{MAX_FRAME, MAX_HEADER_LIST};
use super::super::proto::controller_server::ControllerServer;
use super::super::proto::group_controller_server::GroupControllerServer;
use super::super::proto::identity_server::IdentityServer;
use super::super::proto::node_server::NodeServer;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tower::Service;

/// What a call answers: every CSI service's future has this type.
type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The four CSI services of one driver.
#[derive(Clone)]
pub struct Services {
    identity: IdentityServer<Driver>,
    controller: ControllerServer<Driver>,
    group: GroupControllerServer<Driver>,
    node: NodeServer<Driver>,
}

impl Services {
    pub fn new(driver: Arc<Driver>) -> Services {
        Services {
            identity: IdentityServer::from_arc(driver.clone()),
            controller: ControllerServer::from_arc(driver.clone()),
            group: GroupControllerServer::from_arc(driver.clone()),
            node: NodeServer::from_arc(driver),
        }
    }

    /// Hands `req` to the service its path names; an unknown service is UNIMPLEMENTED.
    fn route(&self, req: Request<Incoming>) -> Answer {
        let req = req.map(Body::new);
        let service = req.uri().path().strip_prefix('/').and_then(|p| p.split_once('/')).map(|(s, _)| s);
        match service {
            Some("csi.v1.Node") => self.node.clone().call(req),
            Some("csi.v1.Controller") => self.controller.clone().call(req),
            Some("csi.v1.Identity") => self.identity.clone().call(req),
            Some("csi.v1.GroupController") => self.group.clone().call(req),
            _ => {
                let status = tonic::Status::unimplemented(format!("no service serves {}", req.uri().path()));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// How long the server waits before accepting again after an accept failed.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The HTTP/2 settings of every connection: the header-list and frame limits the `authority`
/// adapter holds to; hyper's own bounds on concurrent and reset streams otherwise.
fn builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_LIST).max_frame_size(MAX_FRAME);
    builder
}

/// Serves every connection of `incoming` until `stop`, then lets each connection finish the calls
/// it has in flight (an HTTP/2 GOAWAY) and returns once all are closed.
pub async fn serve<I, IO>(services: Services, incoming: I, stop: impl Future<Output = ()>)
where
    I: Stream<Item = std::io::Result<IO>>,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder();
    let (stopping, watcher) = watch::channel(());
    let mut incoming = pin!(incoming);
    let mut stop = pin!(stop);
    loop {
        let io = tokio::select! {
            () = &mut stop => break,
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                Some(Err(e)) => {
                    // Out of descriptors (EMFILE) fails every accept at once: pause, not spin.
                    tracing::warn!(error = %e, pause = ?ACCEPT_PAUSE, "accepting a connection failed");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    }
                }
                None => break,
            },
        };
        tokio::spawn(connection(io, services.clone(), builder.clone(), watcher.clone()));
    }
    let _ = stopping.send(());
    drop(watcher);
    stopping.closed().await;
}

/// Serves one connection until it closes, or until the server stops and its calls are done.
async fn connection<IO>(
    io: IO,
    services: Services,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    mut stopping: watch::Receiver<()>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| services.route(req));
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut told = false;
    loop {
        tokio::select! {
            done = &mut conn => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "a connection ended in error");
                }
                return;
            }
            changed = stopping.changed(), if !told => {
                told = true;
                let _ = changed;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
