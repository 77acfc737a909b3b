//! Compiles `proto/csi.proto` (CSI v1.12.0) into Rust with `tonic-prost-build`: messages plus the
//! gRPC servers and clients of every service (the servers with our own codec). The proto is parsed by `protox`, in Rust, with the
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
    let generate = |e| format!("generating Rust from {PROTO}: {e}");
    // The messages and the clients, with prost's codec.
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(fds.clone()).map_err(generate)?;
    // The servers, in their own file beside the first, with the messages of the first and the
    // codec that makes a request that does not decode INVALID_ARGUMENT (`src/csi/codec.rs`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?).join("server");
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .generate_default_stubs(true)
        .extern_path(".csi.v1", "crate::csi::proto")
        .codec_path("crate::csi::codec::RequestCodec")
        .out_dir(out)
        .compile_fds(fds)
        .map_err(generate)
}
