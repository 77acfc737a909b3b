//! The programs: each binary's command line, its entry point and the wiring of the libraries
//! below into one process (runtime, logging, exit codes, what is printed). `src/bin/*` only call
//! `main` here. Nothing in the crate imports this module: `csi`, `flex`, `bench`, `migrate` and
//! the rest are libraries, called from here and never calling up.

pub mod csi;
