//! `strata-csi`: the strata CSI driver (`serve`) and a CSI client (`client`).

fn main() -> std::process::ExitCode {
    strata::program::csi::main()
}
