//! Prometheus metrics of `strata-csi serve` at `/metrics` (`--metrics-address`): call counts
//! and durations kept in atomics as calls end (see [`ops`]), and the node's gauges computed from
//! the engine's state at scrape time (see [`node`]); encoded by the `prometheus-client` crate.

mod error;
mod exposition;
mod http;
mod node;
mod ops;
mod survey;

pub use error::Error;
pub use exposition::{CONTENT_TYPE, Metrics};
pub use http::{bind, serve};
pub use node::Start;
pub use ops::{BUCKETS, METHODS, Ops};
