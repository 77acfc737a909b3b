//! The programs: each binary's command line, its entry point and the wiring of the libraries
//! below into one process (runtime, logging, exit codes, what is printed). `src/bin/strata-csi.rs`
//! only calls `csi::main` here; `strata-flex` and `kubectl-strata` still start in `flex` and
//! `kubectl`. Nothing in the crate imports this module: `csi`, `flex`, `bench`, `migrate` and the
//! rest are libraries, called from here and never calling up.

pub mod csi;
