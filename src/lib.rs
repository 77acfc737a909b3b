//! strata: a node-local storage driver for Kubernetes (FlexVolume and CSI) on one volume engine.

pub mod backend;
pub mod bench;
pub mod csi;
pub mod engine;
pub mod flex;
pub mod kubectl;
pub mod metrics;
pub mod migrate;
pub mod quantity;
pub mod sys;
