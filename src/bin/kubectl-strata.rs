//! `kubectl-strata`: the kubectl plugin (`kubectl strata ...`).

fn main() -> std::process::ExitCode {
    strata::kubectl::main()
}
