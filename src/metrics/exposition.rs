//! What `/metrics` shows: the call counters, the node's gauges and the build, registered and
//! encoded in the Prometheus text format at each scrape.

use super::error::Error;
use super::node::{self, Start};
use super::ops::Ops;
use super::survey;
use crate::backend::Kind;
use crate::engine::Engine;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The `Content-Type` of what [`Metrics::render`] returns (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Everything `/metrics` shows: the call counters (shared with the CSI driver) and what the
/// gauges are read from.
#[derive(Debug, Clone)]
pub struct Metrics {
    ops: Arc<Ops>,
    engine: Arc<Engine>,
    offered: Vec<Kind>,
    start: Start,
    surveys: Arc<survey::Surveys>,
}

impl Metrics {
    /// Metrics over `engine`, whose CSI calls are counted in `ops`; `offered` are the backends
    /// GetCapacity answers for.
    /// `survey_every`: how old the survey behind the per-volume gauges may get before a scrape
    /// starts a new one in the background.
    pub fn new(
        ops: Arc<Ops>,
        engine: Arc<Engine>,
        offered: Vec<Kind>,
        start: Start,
        survey_every: Duration,
    ) -> Metrics {
        let surveys = survey::Surveys::new(engine.clone(), survey_every);
        Metrics { ops, engine, offered, start, surveys }
    }

    /// The exposition, in the Prometheus text format. Reads the root: call it on a blocking
    /// thread.
    pub fn render(&self) -> Result<String, Error> {
        let figures = node::Figures::take(&self.engine, &self.offered, self.start, self.surveys.latest());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.ops.clone()));
        registry.register_collector(Box::new(figures));
        let build = Info::new([("version", env!("CARGO_PKG_VERSION")), ("commit", env!("STRATA_COMMIT"))]);
        registry.register("strata_build", "The strata build serving", build);
        let mut out = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}
