//! Command line of `strata-csi`: `serve` runs the driver, `client` drives any CSI endpoint.

use super::server::Endpoint;
use crate::backend::Kind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const DEFAULT_ENDPOINT: &str = "unix:///var/lib/kubelet/plugins/strata.csi.dev/csi.sock";

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
    /// Seconds to wait for calls in flight after SIGTERM.
    #[arg(long, default_value_t = 20)]
    pub drain_seconds: u64,
    /// Let a backend promise more than the node has: `<backend>=<ratio>` (repeatable), e.g.
    /// `tmpfs=1.5` accepts tmpfs volumes up to 1.5x available memory in total.
    #[arg(long = "overcommit", value_parser = crate::engine::Overcommit::parse_pair)]
    pub overcommit: Vec<(Kind, f64)>,
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
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: Endpoint,
    /// Print the full answer as yaml or json instead of the table (lists, capacity) or text.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// The same as `-o json` (kept for scripts).
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// Seconds to wait for each call.
    #[arg(long, default_value_t = 120)]
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
    DeleteVolume { volume_id: String },
    /// ControllerGetVolume: the volume and its condition.
    GetVolume { volume_id: String },
    /// ControllerExpandVolume.
    Expand {
        volume_id: String,
        /// The new size (bytes, or 64Mi, 1Gi, 1G ...).
        #[arg(long)]
        size: String,
    },
    /// NodeExpandVolume: grow the volume's storage and filesystem on its node.
    NodeExpand {
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
        name: String,
        /// The volume to snapshot.
        #[arg(long)]
        source: String,
    },
    /// DeleteSnapshot.
    DeleteSnapshot { snapshot_id: String },
    /// GetSnapshot.
    GetSnapshot { snapshot_id: String },
    /// ListSnapshots; follows every page unless --max-entries is given.
    ListSnapshots {
        #[arg(long, default_value = "")]
        snapshot_id: String,
        #[arg(long, default_value = "")]
        source_volume_id: String,
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// ListVolumes; follows every page unless --max-entries is given.
    ListVolumes {
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// GetCapacity.
    Capacity {
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
        volume_id: String,
        #[arg(long)]
        staging_path: PathBuf,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// NodeUnstageVolume.
    Unstage {
        volume_id: String,
        #[arg(long)]
        staging_path: PathBuf,
    },
    /// NodePublishVolume.
    Publish {
        volume_id: String,
        #[arg(long)]
        target_path: PathBuf,
        #[arg(long)]
        staging_path: Option<PathBuf>,
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
        volume_id: String,
        #[arg(long)]
        target_path: PathBuf,
    },
    /// NodeGetVolumeStats.
    Stats {
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
    Kind::parse(s).ok_or_else(|| format!("unknown backend {s:?}; use dir, loop, btrfs or tmpfs"))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn client_output_formats() {
        let format = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["strata-csi", "client"], args, &["list-volumes"]].concat())?;
            let Command::Client(a) = cli.command else { panic!("not client") };
            Ok::<_, clap::Error>(a.format())
        };
        assert_eq!(format(&[]).unwrap(), None);
        assert_eq!(format(&["-o", "yaml"]).unwrap(), Some(OutputFormat::Yaml));
        assert_eq!(format(&["--output", "json"]).unwrap(), Some(OutputFormat::Json));
        assert_eq!(format(&["--json"]).unwrap(), Some(OutputFormat::Json));
        assert!(format(&["--json", "-o", "yaml"]).is_err());
        assert!(format(&["-o", "wide"]).is_err());
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["strata-csi", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else { panic!("not serve") };
        assert_eq!(a.backends, vec![Kind::Dir, Kind::Loop, Kind::Tmpfs]);
        assert_eq!(a.allowed_path_prefixes, vec![PathBuf::from("/var/lib/kubelet")]);
        assert_eq!(a.root, PathBuf::from("/var/lib/strata"));
        assert_eq!(a.driver_name, "strata.csi.dev");
        let cli = Cli::try_parse_from([
            "strata-csi",
            "serve",
            "--backends",
            "loop,btrfs",
            "--allowed-path-prefix",
            "/a",
            "--allowed-path-prefix",
            "/b",
            "--endpoint",
            "tcp://127.0.0.1:9000",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else { panic!("not serve") };
        assert_eq!(a.backends, vec![Kind::Loop, Kind::Btrfs]);
        assert_eq!(a.allowed_path_prefixes.len(), 2);
        assert!(Cli::try_parse_from(["strata-csi", "serve", "--backends", "zfs"]).is_err());
    }
}
