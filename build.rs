//! Compiles `proto/csi.proto` (CSI v1.12.0) into Rust with `tonic-prost-build`: messages plus the
//! gRPC servers and clients of every service. The proto is parsed by `protox`, in Rust, with the
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
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_fds(fds)
        .map_err(|e| format!("generating Rust from {PROTO}: {e}"))
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
