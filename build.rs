//! Compiles `proto/csi.proto` (CSI v1.12.0) into Rust with `tonic-prost-build`: messages plus the
//! gRPC servers and clients of every service. The proto is parsed by `protox`, in Rust, with the
//! protobuf well-known types it ships: the build needs no system `protoc` and no `libprotobuf-dev`.

const PROTO: &str = "proto/csi.proto";

fn main() {
    println!("cargo:rerun-if-changed={PROTO}");
    if let Err(msg) = compile() {
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

fn compile() -> Result<(), String> {
    let fds = protox::compile([PROTO], ["proto"]).map_err(|e| format!("parsing {PROTO}: {e}"))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_fds(fds)
        .map_err(|e| format!("generating Rust from {PROTO}: {e}"))
}
