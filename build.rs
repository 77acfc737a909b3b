//! Compiles `proto/csi.proto` (CSI v1.12.0) into Rust with `tonic-prost-build`: messages plus the
//! gRPC servers and clients of every service. `protoc` comes from `$PROTOC` or the `PATH`.

use std::path::{Path, PathBuf};

const PROTO: &str = "proto/csi.proto";

fn main() {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if let Err(msg) = compile() {
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

fn compile() -> Result<(), String> {
    let protoc = find_protoc().ok_or_else(|| {
        "protoc (the protobuf compiler) was not found. Install it (Debian/Ubuntu: \
         `apt-get install protobuf-compiler libprotobuf-dev`) or point $PROTOC at a protoc binary."
            .to_owned()
    })?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_with_config(config, &[PROTO], &["proto"])
        .map_err(|e| {
            format!(
                "compiling {PROTO} with {}: {e}\n(the google/protobuf well-known types come \
                 with protoc's include directory; on Debian/Ubuntu install libprotobuf-dev)",
                protoc.display()
            )
        })
}

/// `$PROTOC` if set and present, else the first `protoc` on the `PATH`.
fn find_protoc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROTOC") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("protoc")).find(|p| Path::new(p).is_file())
}
