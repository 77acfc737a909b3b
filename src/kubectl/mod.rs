//! `kubectl strata`: a kubectl plugin (the `kubectl-strata` binary on PATH) that shows strata's
//! volumes, nodes and snapshots, and adopts FlexVolume PVs into CSI.
//!
//! It talks to the cluster through `kubectl` itself (`kubectl get ... -o json`, `kubectl apply
//! -f -`), passing on `--kubeconfig`, `--context` and `-n`: the user's own kubectl, kubeconfig,
//! exec credential plugins and proxies apply unchanged, and no Kubernetes client crate (with its
//! TLS and auth stack) is built into strata. `KUBECTL` names another program (tests use a fake).

mod cluster;
mod migrate;
mod objects;
mod table;
mod views;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

pub use cluster::Kubectl;

/// `kubectl strata`.
#[derive(Debug, Parser)]
#[command(name = "kubectl-strata", version = crate::BUILD, about = "strata's volumes, nodes and snapshots, from the cluster")]
pub struct Cli {
    /// The kubeconfig file kubectl uses.
    #[arg(long, global = true)]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context kubectl uses.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace of claims and pods (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Output: a table (default), wide (a table with more columns), name (`kind/name` per line),
    /// json or yaml.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// strata's CSI driver name.
    #[arg(long, global = true, default_value = crate::migrate::CSI_DRIVER)]
    pub driver: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Name,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// strata PVs (CSI and FlexVolume strata/flex): node, backend, size, phase, claim and pods.
    Volumes {
        /// Every strata PV, whatever the namespace of its claim.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only the volumes on this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Per node and StorageClass: the free bytes strata reports (CSIStorageCapacity) and the volumes.
    Nodes,
    /// strata's VolumeSnapshotContents: snapshot, source volume, node, size, readiness.
    Snapshots,
    /// Print (or apply) the CSI PV that adopts a FlexVolume PV of strata/flex (`pv/NAME`).
    Migrate {
        /// The PV: `pv/NAME` or `NAME`.
        pv: String,
        /// The node holding the volume, if the PV's nodeAffinity does not name it.
        #[arg(long)]
        node: Option<String>,
        /// Replace the FlexVolume PV by the CSI PV in the cluster (the PV must be Retain and no
        /// longer bound: delete its claim first; see docs/flexvolume-to-csi.md).
        #[arg(long)]
        apply: bool,
    },
}

/// What went wrong; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {source} (is kubectl on PATH? KUBECTL names another program)")]
    NoKubectl { program: String, source: std::io::Error },
    #[error("cannot reach the cluster: {message}")]
    NoCluster { message: String },
    #[error(
        "no kubeconfig found: no --kubeconfig was given, {env}, and {home} does not exist, so kubectl tried \
         localhost:8080; point --kubeconfig or KUBECONFIG at your cluster's kubeconfig"
    )]
    NoKubeconfig { env: String, home: String },
    #[error("no permission: {message}")]
    Forbidden { message: String },
    #[error("the cluster has no {resource} (is the CRD installed?): {message}")]
    NoResource { resource: String, message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("kubectl {args} failed: {message}")]
    Kubectl { args: String, message: String },
    #[error("kubectl {args} printed something that is not JSON: {reason}")]
    BadJson { args: String, reason: String },
    #[error("{0:?} is not a PV: use pv/NAME")]
    NotPv(String),
    #[error("{0}")]
    Migrate(#[from] crate::migrate::Error),
    #[error(
        "PV {name} is {what}; --apply replaces only a PV whose reclaim policy is Retain and whose claim is \
         deleted (phase Released or Available): see docs/flexvolume-to-csi.md"
    )]
    NotReplaceable { name: String, what: String },
    #[error(
        "the FlexVolume PV {name} was deleted but applying its CSI PV failed ({source}); apply the PV printed above"
    )]
    HalfApplied { name: String, source: Box<Error> },
    #[error("encoding the output: {0}")]
    Encode(String),
}

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
