//! `strata-flex`: the FlexVolume driver kubelet execs, installed as `<plugin dir>/strata~flex/flex`.

fn main() {
    let code = strata::flex::main(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
