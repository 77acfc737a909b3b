//! `strata-csi`: the strata CSI driver (`serve`), a CSI client (`client`) and the node tools
//! beside them; all of it is wired in `strata::program::csi`.

fn main() -> std::process::ExitCode {
    strata::program::csi::main()
}
