//! Compiles `proto/csi.proto` (CSI v1.12.0) into Rust with `tonic-prost-build`: messages plus the
//! gRPC servers and clients of every service (the servers with our own codec). The proto is parsed by `protox`, in Rust, with the
//! protobuf well-known types it ships: the build needs no system `protoc` and no `libprotobuf-dev`.
//! Also records the commit built (`STRATA_COMMIT`, for the `strata_build_info` metric): the
//! environment's `STRATA_COMMIT` when set (an image build without `.git`), else `git`'s answer.

const PROTO: &str = "proto/csi.proto";

fn main() {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-env-changed=STRATA_COMMIT");
    println!("cargo:rustc-env=STRATA_COMMIT={}", commit());
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

/// The commit being built, `unknown` when neither the environment nor git can say.
fn commit() -> String {
    if let Ok(c) = std::env::var("STRATA_COMMIT") {
        return c;
    }
    for file in ["HEAD", "refs/heads", "packed-refs"] {
        match git(&["rev-parse", "--git-path", file]) {
            Some(path) if std::path::Path::new(&path).exists() => println!("cargo:rerun-if-changed={path}"),
            _ => {}
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
