//! strata: a node-local storage driver for Kubernetes (FlexVolume and CSI) on one volume engine.

// Command-line output goes through `stdout`, which ends quietly when the reader goes away.
#![deny(clippy::print_stdout)]

pub mod backend;
pub mod bench;
pub mod crashpoint;
pub mod csi;
pub mod engine;
pub mod flex;
pub mod kubectl;
pub mod metrics;
pub mod migrate;
pub mod program;
pub mod quantity;
pub mod quote;
pub mod stdout;
pub mod sys;
pub mod undo;
pub mod volume;

/// The version and the commit it was built from (`0.1.0 (commit 4507e50abc12)`; `unknown` when
/// built outside git without `STRATA_COMMIT`), as `--version` prints it.
pub const BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("STRATA_COMMIT"), ")");
