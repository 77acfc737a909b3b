//! `kubectl strata`: a kubectl plugin that shows strata's volumes, nodes and snapshots.

/// Entry point of the `kubectl-strata` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
