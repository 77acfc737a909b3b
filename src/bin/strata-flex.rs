//! `strata-flex`: the FlexVolume driver kubelet execs, installed as `<plugin dir>/strata~flex/flex`
//! and referenced as `driver: strata/flex`.
//!
//! Ship it static (kube-controller-manager's image runs `init` too and has no shared libraries to
//! offer). The musl target is not installed here; glibc's static runtime works, but only with an
//! explicit `--target`, so that proc-macros and build scripts stay dynamic:
//!
//! ```text
//! cargo build --release --bin strata-flex --target x86_64-unknown-linux-gnu \
//!     --config 'target.x86_64-unknown-linux-gnu.rustflags=["-C","target-feature=+crt-static"]'
//! # -> target/x86_64-unknown-linux-gnu/release/strata-flex: static-pie linked (`file`), `ldd`: not dynamic
//! ```
//!
//! The same flag in `.cargo/config.toml` without `--target` breaks every proc-macro crate
//! ("cannot produce proc-macro ... does not support these crate types"), hence the whole crate.

fn main() -> std::process::ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    // Not a kubelet call: a person asking for help, the version, or a check of the node.
    if strata::flex::human::wanted(&args) {
        return strata::flex::human::main(args);
    }
    let code = strata::flex::main(args);
    std::process::exit(code);
}
