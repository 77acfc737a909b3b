//! `strata-csi`: the CSI driver (`serve`), a CSI client (`client`), and the node tools beside
//! them (`inspect`, `repair`, `bench`, `migrate-pv`, `completions`, `man`).

pub mod cli;
mod client;
mod inspect;
mod manual;
mod repair;
mod serve;

pub use serve::main;
