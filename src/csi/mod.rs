//! The CSI front-end: a thin gRPC adapter from CSI v1.12.0 onto the volume engine.

pub mod proto;
