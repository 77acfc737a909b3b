//! Exec latency of `strata-flex` as kubelet sees it: `init`, and a `dir` mount + unmount pair,
//! next to a static no-op (the exec floor) and a bash script that only echoes the init JSON,
//! round-robin in one run. The measuring lives in `strata-csi bench --sections flex`; this
//! target runs it on the binaries cargo just built.
//!
//! `cargo bench --bench flex_exec` (root: it mounts). `STRATA_FLEX_BENCH_BIN=/path/to/flex`
//! adds rows for another build (for example the static one); `STRATA_FLEX_BENCH_ITERS` sets
//! the number of rounds (default 300).

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let rounds = std::env::var("STRATA_FLEX_BENCH_ITERS").unwrap_or_else(|_| "300".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata-csi"));
    cmd.args([
        "bench",
        "--sections",
        "flex",
        "--flex-rounds",
        &rounds,
        "--flex-bin",
        env!("CARGO_BIN_EXE_strata-flex"),
    ]);
    if let Some(other) = std::env::var_os("STRATA_FLEX_BENCH_BIN") {
        cmd.arg("--flex-bin").arg(other);
    }
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("flex_exec: strata-csi bench exited with {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("flex_exec: cannot run strata-csi bench: {e}");
            ExitCode::FAILURE
        }
    }
}
