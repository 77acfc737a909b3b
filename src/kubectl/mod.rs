//! `kubectl strata`: a kubectl plugin (the `kubectl-strata` binary on PATH) that shows strata's
//! volumes, nodes and snapshots, and adopts FlexVolume PVs into CSI.
//!
//! It talks to the cluster through `kubectl` itself (`kubectl get ... -o json`, `kubectl apply
//! -f -`), passing on `--kubeconfig`, `--context` and `-n`: the user's own kubectl, kubeconfig,
//! exec credential plugins and proxies apply unchanged, and no Kubernetes client crate (with its
//! TLS and auth stack) is built into strata. `KUBECTL` names another program (tests use a fake).

mod cli;
mod cluster;
mod error;
mod migrate;
mod objects;
mod table;
mod views;

use clap::Parser;
use std::process::ExitCode;

pub use cli::{Cli, Command, Format};
pub use cluster::Kubectl;
pub use error::Error;

/// Entry point of the `kubectl-strata` binary: the answer on stdout, errors on stderr, exit 1
/// on any error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let kubectl = Kubectl::from_env(&cli);
    match run(&cli, &kubectl) {
        Ok(text) => crate::stdout::write(text.as_bytes()),
        Err(e) => {
            eprintln!("kubectl strata: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command and returns what it prints.
pub fn run(cli: &Cli, kubectl: &Kubectl) -> Result<String, Error> {
    match &cli.command {
        Command::Volumes { all_namespaces, node } => views::volumes(cli, kubectl, *all_namespaces, node.as_deref()),
        Command::Nodes => views::nodes(cli, kubectl),
        Command::Snapshots => views::snapshots(cli, kubectl),
        Command::Migrate { pv, node, apply } => migrate::run(kubectl, pv, node.as_deref(), *apply),
    }
}
