//! Code generated from `proto/csi.proto` (package `csi.v1`) by `build.rs`.

#![allow(clippy::all, clippy::pedantic, missing_debug_implementations)]

tonic::include_proto!("csi.v1");
