//! The CSI side of strata, over the volume engine:
//! - the driver ([`Driver`]): the Identity, Controller, GroupController and Node services of CSI
//!   v1.12.0, a thin gRPC adapter; each RPC parses its request, runs engine calls on the blocking
//!   pool and maps the result, and engine errors become statuses in exactly one place
//!   (`status.rs`);
//! - the server (`server`): the socket, the connection limit, the request codec and its size
//!   limits (`codec`, `limits`), signals and draining, and the `:authority` HTTP/2 rewriter
//!   (`authority`) that lets every client in;
//! - the client transport (`client`): connecting to any CSI endpoint and saying why it failed,
//!   for `strata-csi client` and the benchmark;
//! - what other modules share with CSI: the generated messages (`proto`), conversions
//!   (`convert`) and volume ids (`volume_id`).

mod authority;
pub mod client;
pub mod codec;
mod controller;
pub mod convert;
mod copies;
mod ephemeral;
mod expand;
mod group;
mod identity;
mod inline;
mod limits;
mod node;
mod paging;
mod probe;
pub mod proto;
mod provision;
mod reuse;
pub mod server;
mod snapshot;
mod source;
mod status;
pub mod volume_id;

use crate::backend::Kind;
use crate::engine::{Engine, quote};
use crate::metrics::Ops;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Response, Status};
use tracing::Instrument;
use volume_id::VolumeId;

/// How the driver presents itself; the engine holds everything else.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CSI driver name (`strata.csi.dev`).
    pub name: String,
    /// This node's id, as NodeGetInfo reports it.
    pub node_id: String,
    /// NodeGetInfo's max_volumes_per_node; `None` leaves it to the CO.
    pub max_volumes_per_node: Option<u32>,
    /// Backends CreateVolume may use; Probe checks that each of them works.
    pub backends: Vec<Kind>,
    /// Serves controller calls only (no mounts): Probe does not ask for mount privileges.
    pub controller_only: bool,
}

/// The CSI services (Identity, Controller, GroupController, Node) over one engine.
#[derive(Debug)]
pub struct Driver {
    engine: Arc<Engine>,
    opts: Options,
    node_tag: String,
    /// Where calls are counted; `None` with metrics off.
    ops: Option<Arc<Ops>>,
    /// Which engine calls run, for the ones that may run on the polling thread.
    inline: inline::Inline,
}

impl Driver {
    pub fn new(engine: Arc<Engine>, opts: Options) -> Driver {
        let node_tag = volume_id::node_tag(&opts.node_id);
        Driver { engine, opts, node_tag, ops: None, inline: inline::Inline::default() }
    }

    /// Counts every call (method, status code, duration) in `ops`.
    pub fn counted(mut self, ops: Arc<Ops>) -> Driver {
        self.ops = Some(ops);
        self
    }

    /// Runs blocking engine work on the blocking pool, inside the caller's span.
    async fn blocking<T, E, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce(&Engine) -> Result<T, E> + Send + 'static,
        E: Into<Status>,
        T: Send + 'static,
        E: Send + 'static,
    {
        let engine = self.engine.clone();
        let span = tracing::Span::current();
        let _running = self.inline.pooled();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&engine)))
            .await
            .map_err(|e| Status::internal(format!("the engine call did not finish: {e}")))?
            .map_err(Into::into)
    }

    /// [`Driver::blocking`] for a call that is usually short: on the polling thread when it runs
    /// alone and the engine does not decline it (see `inline`).
    async fn quick<T, E, F>(&self, f: F) -> Result<T, Status>
    where
        F: Fn(&Engine) -> Result<T, E> + Send + 'static,
        E: Into<Status>,
        T: Send + 'static,
        E: Send + 'static,
    {
        if let Some(_turn) = self.inline.turn().await {
            if let Some(done) = crate::engine::quick::on_poller(|| f(&self.engine)) {
                return done.map_err(Into::into);
            }
        }
        self.blocking(f).await
    }

    /// The engine id of a volume this node owns. Ids of other nodes and ids strata never made
    /// name no volume here: NOT_FOUND.
    fn local(&self, volume_id: &str) -> Result<String, Status> {
        match VolumeId::parse(volume_id) {
            Some(id) if id.node_tag == self.node_tag => Ok(id.local),
            Some(id) => Err(Status::not_found(format!(
                "volume {} belongs to node {}, not to this node ({})",
                quote(volume_id),
                id.node_tag,
                self.opts.node_id
            ))),
            None => Err(not_a_volume_id(volume_id)),
        }
    }
}

/// NOT_FOUND for an id that is not of strata's form (`<name>@<node>`), saying what the form is.
fn not_a_volume_id(volume_id: &str) -> Status {
    Status::not_found(format!(
        "no volume {}: strata volume ids look like <name>@<node> (client list-volumes shows them)",
        quote(volume_id)
    ))
}

impl Driver {
    /// Runs one RPC that changes state inside a span that carries its method and volume id, and
    /// logs how it ended.
    async fn rpc<T>(
        &self,
        method: &'static str,
        volume_id: &str,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<Response<T>, Status> {
        self.traced(method, volume_id, true, work).await
    }

    /// Like [`Driver::rpc`] for calls that only read (probes, capabilities, stats): success logs
    /// at debug.
    async fn query<T>(
        &self,
        method: &'static str,
        volume_id: &str,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<Response<T>, Status> {
        self.traced(method, volume_id, false, work).await
    }

    /// Runs the call in its span, logs how it ended and, with metrics on, counts it.
    async fn traced<T>(
        &self,
        method: &'static str,
        volume_id: &str,
        changes: bool,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<Response<T>, Status> {
        let span = tracing::info_span!("rpc", method, volume_id);
        let started = self.ops.as_ref().map(|_| Instant::now());
        let result = async {
            tracing::debug!("call");
            let result = work.await;
            match &result {
                Ok(_) if changes => tracing::info!("ok"),
                Ok(_) => tracing::debug!("ok"),
                Err(st) => tracing::warn!(code = ?st.code(), error = st.message(), "failed"),
            }
            result
        }
        .instrument(span)
        .await;
        if let (Some(ops), Some(started)) = (&self.ops, started) {
            let code = result.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok);
            ops.record(method, code, started.elapsed());
        }
        result.map(Response::new)
    }
}

/// INVALID_ARGUMENT when a required string field is empty.
fn require(value: &str, field: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(())
}

/// INVALID_ARGUMENT when a required message field is missing.
fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}
