//! Command line of `kubectl strata`: the kubectl flags passed on, the output format, and the
//! commands (`volumes`, `nodes`, `snapshots`, `migrate`).

use clap::{Parser, Subcommand, ValueEnum};

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
