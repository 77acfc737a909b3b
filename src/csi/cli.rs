//! Command line of `strata-csi`: `serve` runs the driver, `client` drives any CSI endpoint.

use super::server::Endpoint;
use crate::backend::Kind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const DEFAULT_ENDPOINT: &str = "unix:///var/lib/kubelet/plugins/strata.csi.dev/csi.sock";

/// How long `serve` lets the calls in flight finish after SIGTERM, by default (the manifests and
/// docs/operations.md state the same number).
pub const DRAIN_SECONDS: u64 = 60;

#[derive(Debug, Parser)]
#[command(name = "strata-csi", version, about = "strata CSI driver (CSI v1.12.0) and CSI client")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Identity, Controller and Node services until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Call a CSI endpoint (this driver or any other).
    Client(ClientArgs),
    /// Measure strata (and any other CSI endpoint) against the syscall floor; see docs/performance.md.
    Bench(Box<crate::bench::BenchArgs>),
    /// Print the CSI PV that adopts a strata/flex FlexVolume PV (same volume, no data copied).
    MigratePv(crate::migrate::Args),
    /// List the quarantined volumes of a data root; rebuild one, or set one aside (no data is
    /// ever deleted). Safe while the server runs: it takes the volume's lock.
    Repair(RepairArgs),
    /// Show what the records and the kernel say about one volume on this node: staging and
    /// publication mounts, loop device, size, usage, condition, and which front-end staged it.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The data root.
    #[arg(long, default_value = "/var/lib/strata")]
    pub root: PathBuf,
    /// Rebuild this volume's record (when missing or damaged) from its storage, and its node
    /// state from the mounts the kernel shows.
    #[arg(long, value_name = "VOLUME_ID", conflicts_with = "drop")]
    pub rebuild: Option<String>,
    /// The capacity of the rebuilt volume (64Mi, 10Gi, bytes); dir and btrfs volumes keep no
    /// size of their own and get 1Gi without it.
    #[arg(long, value_name = "SIZE", requires = "rebuild")]
    pub capacity: Option<String>,
    /// Move this volume's directory aside to <root>/volumes/.quarantine/<id>.<time>; refused while the
    /// kernel shows the volume mounted.
    #[arg(long, value_name = "VOLUME_ID")]
    pub drop: Option<String>,
}

/// `strata-csi inspect`: reads the data root and the kernel directly (run it on the node, as root).
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The volume: its CSI volume id (`<id>@<node>`, as `client list-volumes` shows it) or its
    /// id on the node (a FlexVolume PV's name).
    pub volume_id: String,
    /// The data root holding volumes and their records.
    #[arg(long, default_value = "/var/lib/strata")]
    pub root: PathBuf,
    /// Print the answer as yaml or json instead of text.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///path/csi.sock or tcp://host:port.
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: Endpoint,
    /// This node's id (default: the hostname). Volume ids embed it: keep it stable.
    #[arg(long)]
    pub node_id: Option<String>,
    /// The data root holding volumes and their records.
    #[arg(long, default_value = "/var/lib/strata")]
    pub root: PathBuf,
    /// The CSI driver name.
    #[arg(long, default_value = "strata.csi.dev")]
    pub driver_name: String,
    /// Staging and target paths must lie under one of these (repeatable).
    #[arg(long = "allowed-path-prefix", default_values = ["/var/lib/kubelet"])]
    pub allowed_path_prefixes: Vec<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The most volumes the CO may place on this node (reported by NodeGetInfo).
    #[arg(long)]
    pub max_volumes_per_node: Option<u32>,
    /// Backends that CreateVolume may use and Probe checks (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "dir,loop,tmpfs", value_parser = parse_kind)]
    pub backends: Vec<Kind>,
    /// Seconds to wait for calls in flight after SIGTERM (keep the pod's grace period longer).
    #[arg(long, default_value_t = DRAIN_SECONDS)]
    pub drain_seconds: u64,
    /// Serve controller calls only (expansion), without mount privileges: Probe then does not
    /// ask for CAP_SYS_ADMIN.
    #[arg(long)]
    pub controller_only: bool,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (host:port; off when unset).
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_address: Option<String>,
    /// Let a backend promise more than the node has: `<backend>=<ratio>` (repeatable), e.g.
    /// `tmpfs=1.5` accepts tmpfs volumes up to 1.5x available memory in total.
    #[arg(long = "overcommit", value_parser = crate::engine::Overcommit::parse_pair)]
    pub overcommit: Vec<(Kind, f64)>,
    /// The most client connections served at once; more wait until one closes.
    #[arg(long, default_value_t = super::server::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl ServeArgs {
    /// The overcommit ratios `--overcommit` asked for.
    pub fn overcommit(&self) -> Result<crate::engine::Overcommit, String> {
        crate::engine::Overcommit::from_pairs(&self.overcommit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The CSI endpoint: unix:///path/csi.sock or tcp://host:port.
    #[arg(long, global = true, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: Endpoint,
    /// Print the full answer as yaml or json instead of the table (lists, capacity) or text.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// The same as `-o json` (kept for scripts).
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// Seconds to wait for each call.
    #[arg(long, global = true, default_value_t = 120)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: ClientCommand,
}

impl ClientArgs {
    /// The machine-readable format asked for, if any (`--json` is `-o json`).
    pub fn format(&self) -> Option<OutputFormat> {
        if self.json { Some(OutputFormat::Json) } else { self.output }
    }
}

/// `-o`: the full answer for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Plugin name and version, readiness, and node information.
    Info,
    /// Plugin, controller and node capabilities.
    Caps,
    /// CreateVolume.
    CreateVolume {
        /// The volume's name (the CO's idempotency key; the same name gives the same volume).
        name: String,
        /// Required size (bytes, or 64Mi, 1Gi, 1G ...).
        #[arg(long)]
        size: Option<String>,
        /// Size limit.
        #[arg(long)]
        limit: Option<String>,
        /// StorageClass parameter key=value (repeatable), e.g. backend=loop.
        #[arg(long = "param", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        /// Require the volume on this node (accessibility requisite).
        #[arg(long)]
        node: Option<String>,
        /// Restore this snapshot into the new volume.
        #[arg(long, conflicts_with = "from_volume")]
        from_snapshot: Option<String>,
        /// Clone this volume into the new volume.
        #[arg(long)]
        from_volume: Option<String>,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// DeleteVolume.
    DeleteVolume {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
    },
    /// ControllerGetVolume: the volume and its condition.
    GetVolume {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
    },
    /// ControllerExpandVolume.
    Expand {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// The new size (bytes, or 64Mi, 1Gi, 1G ...).
        #[arg(long)]
        size: String,
    },
    /// NodeExpandVolume: grow the volume's storage and filesystem on its node.
    NodeExpand {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// Where the volume is published or staged.
        #[arg(long)]
        path: PathBuf,
        /// The new size; without it, only a pending filesystem growth is finished.
        #[arg(long)]
        size: Option<String>,
    },
    /// CreateSnapshot.
    CreateSnapshot {
        /// The snapshot's name (the same name gives the same snapshot).
        name: String,
        /// The volume to snapshot.
        #[arg(long)]
        source: String,
    },
    /// DeleteSnapshot.
    DeleteSnapshot {
        /// The snapshot's id, as CreateSnapshot returned it.
        snapshot_id: String,
    },
    /// GetSnapshot.
    GetSnapshot {
        /// The snapshot's id, as CreateSnapshot returned it.
        snapshot_id: String,
    },
    /// ListSnapshots; follows every page unless --max-entries is given.
    ListSnapshots {
        /// Only this snapshot.
        #[arg(long, default_value = "")]
        snapshot_id: String,
        /// Only the snapshots of this volume.
        #[arg(long, default_value = "")]
        source_volume_id: String,
        /// At most this many entries, one page (0: every page).
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        /// Start at this token (a previous page's next_token).
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// ListVolumes; follows every page unless --max-entries is given.
    ListVolumes {
        /// At most this many entries, one page (0: every page).
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        /// Start at this token (a previous page's next_token).
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// GetCapacity.
    Capacity {
        /// StorageClass parameter key=value (repeatable), e.g. backend=loop.
        #[arg(long = "param", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        /// Ask for the capacity on this node (accessible topology).
        #[arg(long)]
        node: Option<String>,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// NodeStageVolume.
    Stage {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// The staging path (a directory under an --allowed-path-prefix of the server).
        #[arg(long)]
        staging_path: PathBuf,
        /// A stage secret NAME=FILE (repeatable): the secret NAME's value is FILE's contents, as
        /// they are (an encrypted volume's is `key`); never on the command line itself.
        #[arg(long = "secret-file", value_parser = parse_pair)]
        secret_files: Vec<(String, String)>,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// NodeUnstageVolume.
    Unstage {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// The staging path (a directory under an --allowed-path-prefix of the server).
        #[arg(long)]
        staging_path: PathBuf,
    },
    /// NodePublishVolume.
    Publish {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// The target path, where the pod sees the volume (under an --allowed-path-prefix).
        #[arg(long)]
        target_path: PathBuf,
        /// The staging path the volume was staged at (none for an ephemeral inline volume).
        #[arg(long)]
        staging_path: Option<PathBuf>,
        /// Publish read-only.
        #[arg(long)]
        readonly: bool,
        /// Volume context key=value (repeatable), e.g. csi.storage.k8s.io/ephemeral=true.
        #[arg(long = "context", value_parser = parse_pair)]
        context: Vec<(String, String)>,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// NodeUnpublishVolume.
    Unpublish {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// The target path, where the pod sees the volume (under an --allowed-path-prefix).
        #[arg(long)]
        target_path: PathBuf,
    },
    /// NodeGetVolumeStats.
    Stats {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// Where the volume is published or staged.
        #[arg(long)]
        path: PathBuf,
    },
}

/// The volume capability of a request.
#[derive(Debug, Clone, Args)]
pub struct CapArgs {
    /// Raw block access instead of a filesystem.
    #[arg(long)]
    pub block: bool,
    /// Filesystem type for mount access (ext4, xfs).
    #[arg(long, default_value = "")]
    pub fs_type: String,
    /// Mount flag (repeatable).
    #[arg(long = "mount-flag")]
    pub mount_flags: Vec<String>,
    /// The access mode of the volume capability.
    #[arg(long, value_enum, default_value_t = AccessModeArg::SingleNodeWriter)]
    pub access_mode: AccessModeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessModeArg {
    SingleNodeWriter,
    SingleNodeReaderOnly,
    SingleNodeSingleWriter,
    SingleNodeMultiWriter,
    MultiNodeReaderOnly,
    MultiNodeSingleWriter,
    MultiNodeMultiWriter,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown backend {s:?}; use {}", Kind::CHOICES))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}

#[cfg(test)]
mod tests;
