//! Code generated from `proto/csi.proto` (package `csi.v1`) by `build.rs`: the messages and
//! clients, then the servers.

#![allow(clippy::all, clippy::pedantic, missing_debug_implementations)]

tonic::include_proto!("csi.v1");
include!(concat!(env!("OUT_DIR"), "/server/csi.v1.rs"));
