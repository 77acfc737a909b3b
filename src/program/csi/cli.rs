//! Command line of `strata-csi`: `serve` runs the driver, `client` drives any CSI endpoint, and
//! the node tools beside them (`inspect`, `repair`, `bench`, `migrate-pv`, `completions`, `man`).
//! Every `serve` flag can also come from the environment variable of the same name
//! (`--node-id` is `STRATA_NODE_ID`; a list is comma-separated), which is how the manifests set
//! them from a ConfigMap. `--rename-node` alone has no variable: renaming a node is a decision
//! for one start, never a setting left behind.

use crate::backend::Kind;
use crate::csi::server::Endpoint;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const DEFAULT_ENDPOINT: &str = "unix:///var/lib/kubelet/plugins/strata.csi.dev/csi.sock";
const DEFAULT_ROOT: &str = "/var/lib/strata";

/// How long `serve` lets the calls in flight finish after SIGTERM, by default (the manifests and
/// docs/operations.md state the same number).
pub const DRAIN_SECONDS: u64 = 60;

#[derive(Debug, Parser)]
#[command(name = "strata-csi", version = crate::BUILD, about = "strata CSI driver (CSI v1.12.0) and CSI client")]
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
    /// Print a shell completion script (e.g. `strata-csi completions bash >
    /// /etc/bash_completion.d/strata-csi`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of strata-csi (one per subcommand) and strata-flex into a directory.
    Man {
        /// Where to write them (e.g. /usr/local/share/man/man1); made if missing.
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The data root.
    #[arg(long, env = "STRATA_ROOT", default_value = DEFAULT_ROOT, value_parser = absolute)]
    pub root: PathBuf,
    /// Rebuild this volume's record (when missing or damaged) from its storage, and its node
    /// state from the mounts the kernel shows.
    #[arg(long, value_name = "VOLUME_ID", conflicts_with = "drop")]
    pub rebuild: Option<String>,
    /// The capacity of the rebuilt volume (64Mi, 10Gi, bytes); dir and btrfs volumes keep no
    /// size of their own and get 1Gi without it.
    #[arg(long, value_name = "SIZE", requires = "rebuild", value_parser = crate::quantity::parse_bytes)]
    pub capacity: Option<u64>,
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
    #[arg(long, env = "STRATA_ROOT", default_value = DEFAULT_ROOT, value_parser = absolute)]
    pub root: PathBuf,
    /// Print the answer as yaml or json instead of text.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///path/csi.sock or tcp://host:port (TCP has no authentication:
    /// anyone who reaches the port can create, mount and delete volumes).
    #[arg(long, env = "STRATA_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: Endpoint,
    /// This node's id (default: the hostname). Volume ids embed it, and the data root records
    /// it at the first start: a later start with another id refuses (see --rename-node).
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<String>,
    /// Give the data root's volumes to the node id of this start (--node-id, or the hostname)
    /// instead of refusing it: every volume and snapshot id changes from <name>@<old> to
    /// <name>@<new>. For this one start; there is no environment variable.
    #[arg(long)]
    pub rename_node: bool,
    /// The data root holding volumes and their records (an absolute path).
    #[arg(long, env = "STRATA_ROOT", default_value = DEFAULT_ROOT, value_parser = absolute)]
    pub root: PathBuf,
    /// The CSI driver name.
    #[arg(long, env = "STRATA_DRIVER_NAME", default_value = "strata.csi.dev")]
    pub driver_name: String,
    /// Staging and target paths must lie under one of these absolute paths (repeatable, or
    /// comma-separated).
    #[arg(
        long = "allowed-path-prefix",
        env = "STRATA_ALLOWED_PATH_PREFIX",
        value_delimiter = ',',
        default_values = ["/var/lib/kubelet"],
        value_parser = absolute
    )]
    pub allowed_path_prefixes: Vec<PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The least severe log level shown [default: info; without it RUST_LOG's directives apply].
    #[arg(long, env = "STRATA_LOG_LEVEL", value_enum)]
    pub log_level: Option<LogLevel>,
    /// The most volumes the CO may place on this node (reported by NodeGetInfo).
    #[arg(long, env = "STRATA_MAX_VOLUMES_PER_NODE")]
    pub max_volumes_per_node: Option<u32>,
    /// Backends that CreateVolume may use and Probe checks (comma-separated). GetCapacity
    /// answers 0 bytes for the others.
    #[arg(
        long,
        env = "STRATA_BACKENDS",
        value_delimiter = ',',
        default_value = "dir,loop,tmpfs",
        value_parser = parse_kind
    )]
    pub backends: Vec<Kind>,
    /// Seconds to wait for calls in flight after SIGTERM (keep the pod's grace period longer).
    #[arg(long, env = "STRATA_DRAIN_SECONDS", default_value_t = DRAIN_SECONDS)]
    pub drain_seconds: u64,
    /// Run without mount privileges, as the cluster's central controller: Probe does not ask for
    /// CAP_SYS_ADMIN. Controller calls (expansion of any node's volume from its id alone, and the
    /// volumes of this server's own root) work; node calls that mount fail for want of the right.
    #[arg(long, env = "STRATA_CONTROLLER_ONLY")]
    pub controller_only: bool,
    /// Serve Prometheus metrics at http://ADDRESS/metrics: host:port, or :port for every address
    /// of the host (off when unset).
    #[arg(long, env = "STRATA_METRICS_ADDRESS", value_name = "ADDRESS")]
    pub metrics_address: Option<String>,
    /// How old (seconds) the survey behind the per-volume gauges (staged, published,
    /// quarantined, abnormal, snapshots, loop devices) may get before a scrape starts another
    /// in the background; a scrape itself never looks at every volume.
    #[arg(long, env = "STRATA_METRICS_SURVEY_SECONDS", default_value_t = 30, value_name = "SECONDS")]
    pub metrics_survey_seconds: u64,
    /// Let a backend promise more than the node has: `<backend>=<ratio>` (repeatable, or
    /// comma-separated), e.g. `tmpfs=1.5` accepts tmpfs volumes up to 1.5x available memory in total.
    #[arg(
        long = "overcommit",
        env = "STRATA_OVERCOMMIT",
        value_delimiter = ',',
        value_parser = crate::engine::Overcommit::parse_pair
    )]
    pub overcommit: Vec<(Kind, f64)>,
    /// The most client connections served at once; more wait until one closes.
    #[arg(
        long,
        env = "STRATA_MAX_CONNECTIONS",
        default_value_t = crate::csi::server::MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
    /// The most bytes per second each snapshot, clone or restore copy reads and writes (64Mi,
    /// 1Gi, bytes): copies share the node's disk with the pods. Unset: no limit.
    #[arg(long, env = "STRATA_COPY_RATE", value_name = "SIZE", value_parser = parse_rate)]
    pub copy_rate: Option<u64>,
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

/// `--log-level`: the least severe events logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The level as a `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The CSI endpoint: unix:///path/csi.sock or tcp://host:port (beside a server configured by
    /// environment, its own STRATA_ENDPOINT).
    #[arg(long, global = true, env = "STRATA_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: Endpoint,
    /// Print the full answer as yaml or json instead of the table (lists, capacity) or text;
    /// `wide` adds columns to a list's table, `name` prints only the ids it names.
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

/// `-o`: the full answer for scripts (json, yaml), or as `kubectl get` has them: `wide` (a
/// list's table with more columns) and `name` (the ids of what the answer names, one a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
    Wide,
    Name,
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
        /// Required size: a Kubernetes quantity (64Mi, 1.5Gi, 500M, 1e9, bytes).
        #[arg(long, value_parser = crate::quantity::parse_bytes)]
        size: Option<u64>,
        /// Size limit (a quantity).
        #[arg(long, value_parser = crate::quantity::parse_bytes)]
        limit: Option<u64>,
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
        /// The new size: a Kubernetes quantity (64Mi, 1.5Gi, 500M, 1e9, bytes).
        #[arg(long, value_parser = crate::quantity::parse_bytes)]
        size: u64,
    },
    /// NodeExpandVolume: grow the volume's storage and filesystem on its node.
    NodeExpand {
        /// The volume's id, as CreateVolume returned it.
        volume_id: String,
        /// Where the volume is published or staged.
        #[arg(long)]
        path: PathBuf,
        /// The new size (a quantity); without it, only a pending filesystem growth is finished.
        #[arg(long, value_parser = crate::quantity::parse_bytes)]
        size: Option<u64>,
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

/// A path that must not depend on the working directory: a relative one is refused.
fn absolute(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if !path.is_absolute() {
        return Err(format!("{s:?} is not an absolute path (it would depend on the working directory)"));
    }
    Ok(path)
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown backend {s:?}; use {}", Kind::CHOICES))
}

fn parse_rate(s: &str) -> Result<u64, String> {
    match crate::quantity::parse_bytes(s) {
        Ok(0) => Err(format!("{s:?}: a rate of 0 bytes a second would stop every copy")),
        Ok(rate) => Ok(rate),
        Err(reason) => Err(format!("{s:?} {reason}")),
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}

#[cfg(test)]
mod tests;
