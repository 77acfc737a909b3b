//! The HTTP side of the metrics: `GET /metrics` on a TCP listener of its own, HTTP/1.1 by
//! `hyper`, each scrape rendered on a blocking thread (it reads the root).

use super::error::Error;
use super::exposition::{CONTENT_TYPE, Metrics};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpListener;

/// The longest one connection may stay open (a scrape takes milliseconds).
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// Binds the metrics listener (`host:port`; port 0 picks a free one).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    let listen = |source| Error::Listen { addr: addr.to_owned(), source };
    // `:PORT`, as the sidecars take it: every address, IPv6 and IPv4 (one dual-stack socket), or
    // IPv4 alone on a host without IPv6.
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| listen(std::io::ErrorKind::InvalidInput.into()))?;
        return match TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await.map_err(listen),
        };
    }
    TcpListener::bind(addr).await.map_err(listen)
}

/// Answers scrapes on `listener` until the process ends.
pub async fn serve(metrics: Metrics, listener: TcpListener) -> Result<(), Error> {
    let addr = listener.local_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(address = %addr, "metrics at http://{addr}/metrics");
    loop {
        let (stream, _) = listener.accept().await.map_err(|source| Error::Accept { addr: addr.clone(), source })?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(metrics.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIMIT, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!("metrics connection open too long: closed"),
                Ok(Ok(())) => {}
            }
        });
    }
}

async fn answer<B>(metrics: Metrics, req: Request<B>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(plain(StatusCode::NOT_FOUND, "strata serves only /metrics\n".into()));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into()));
    }
    let rendered = tokio::task::spawn_blocking(move || metrics.render()).await;
    Ok(match rendered {
        Ok(Ok(text)) => reply(StatusCode::OK, CONTENT_TYPE, text),
        Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the metrics did not finish: {e}\n")),
    })
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", text)
}

fn reply(status: StatusCode, content_type: &'static str, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    resp
}
