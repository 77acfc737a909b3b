//! `strata-csi bench`: measures strata against the syscall floor and against other CSI drivers,
//! the same way every time, and reports JSON and markdown (see docs/performance.md).
//!
//! Parts: floors (bind mount pair, statx, mount table, record writes); CSI figures of a
//! self-started `strata-csi serve` and of any other endpoint (create+delete, node cycle per
//! backend, the cycle among a population of published volumes, throughput, server RSS);
//! FlexVolume exec latency next to a static no-op; a loop ext4 volume next to the bare tools.

mod args;
mod budget;
mod csi;
mod error;
mod figures;
mod flex;
mod floor;
mod goals;
mod loopext4;
pub mod markdown;
pub mod report;
mod run;
mod scale;
mod server;
pub mod stats;
mod workdir;

pub use args::{BenchArgs, Section};
pub use error::{Error, Result};

use std::process::ExitCode;

/// Runs the benchmark on `rt` and prints its report; the exit code says whether it finished.
pub fn main(args: BenchArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    match rt.block_on(run::all(&args)) {
        Ok(report) => match output(&args, &report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("strata-csi bench: {e}");
    ExitCode::FAILURE
}

/// Markdown on stdout, and the JSON where `--json` says ("-": stdout instead of the markdown).
fn output(args: &BenchArgs, r: &report::Report) -> Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(|e| Error::Setup(format!("JSON of the report: {e}")))?;
    let stdout_text = match args.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => json + "\n",
        Some(p) => {
            std::fs::write(p, json + "\n").map_err(Error::io("write", p))?;
            markdown::render(r)
        }
        None => markdown::render(r),
    };
    crate::stdout::print(&stdout_text);
    Ok(())
}
