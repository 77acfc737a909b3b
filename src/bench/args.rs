//! Command line of `strata-csi bench`: what to measure, how much, and against which endpoints.

use crate::backend::Kind;
use crate::csi::server::Endpoint;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// CSI latency, throughput and RSS of each endpoint.
    Csi,
    /// FlexVolume exec latency next to the exec floor.
    Flex,
    /// Kernel and file-system floors: bind mount pair, mount table read, record writes.
    Floor,
    /// A 1 GiB loop ext4 volume through strata next to the bare tools.
    Loop,
    /// The CSI section's node cycles alone, with their server CPU (a quick A/B of one change).
    Cycle,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Sections to run (comma-separated).
    #[arg(long, value_delimiter = ',', value_enum, default_values = ["floor", "csi", "flex", "loop"])]
    pub sections: Vec<Section>,
    /// Write the JSON report here ("-" for stdout, which then gets no markdown).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measured iterations of each latency figure (after the warm-up).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Unmeasured iterations before each latency figure.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Seconds at most for each latency figure; fewer iterations are measured when it runs out.
    #[arg(long, default_value_t = 20)]
    pub time_cap: u64,
    /// Other volumes present (staged and published) for the at-scale cycle; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub population: usize,
    /// Population levels (other volumes created, not staged) at which create + delete is
    /// measured again (comma-separated, e.g. 0,1000,10000); none by default.
    #[arg(long, value_delimiter = ',')]
    pub idle_population: Vec<usize>,
    /// Concurrent clients of the throughput figures (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    pub clients: Vec<usize>,
    /// Seconds of each throughput figure.
    #[arg(long, default_value_t = 3)]
    pub throughput_seconds: u64,
    /// Rounds of the FlexVolume exec figures.
    #[arg(long, default_value_t = 300)]
    pub flex_rounds: usize,
    /// Iterations of the syscall floors.
    #[arg(long, default_value_t = 2000)]
    pub floor_iterations: usize,
    /// Rounds of the loop ext4 figure (each round is one strata and one tool-floor pass).
    #[arg(long, default_value_t = 5)]
    pub loop_rounds: usize,
    /// Size of the loop ext4 volume.
    #[arg(long, default_value = "1Gi")]
    pub loop_size: String,
    /// Directory for temp roots, kubelet dirs and sockets.
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
    /// A strata-flex build to measure (repeatable; default: the one beside this program).
    #[arg(long)]
    pub flex_bin: Vec<PathBuf>,
    /// A static do-nothing binary for the exec floor (default: built with rustc at bench time).
    #[arg(long)]
    pub noop_bin: Option<PathBuf>,
    #[command(flatten)]
    pub own: OwnServer,
    #[command(flatten)]
    pub other: OtherEndpoint,
}

/// The `strata-csi serve` the harness starts itself (temp root, socket and kubelet dir).
#[derive(Debug, Clone, Args)]
pub struct OwnServer {
    /// Do not start strata; measure only --endpoint.
    #[arg(long)]
    pub no_self: bool,
    /// Backends whose cycle is measured on the self-started server (comma-separated).
    #[arg(long = "self-backends", value_delimiter = ',', default_value = "dir,loop,tmpfs", value_parser = parse_kind)]
    pub backends: Vec<Kind>,
    /// A directory on btrfs: a second strata server with its root there measures the btrfs cycle.
    #[arg(long)]
    pub btrfs_root: Option<PathBuf>,
    /// Extra argument for the self-started `strata-csi serve` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

/// Another CSI driver, already running, measured in the same run.
#[derive(Debug, Clone, Args)]
pub struct OtherEndpoint {
    /// Its endpoint: unix:///path/csi.sock or tcp://127.0.0.1:port.
    #[arg(long)]
    pub endpoint: Option<Endpoint>,
    /// Its name in the report.
    #[arg(long, default_value = "endpoint")]
    pub label: String,
    /// StorageClass parameter key=value for its volumes (repeatable).
    #[arg(long = "param", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
    /// Filesystem type of its mount capability.
    #[arg(long, default_value = "")]
    pub fs_type: String,
    /// Its staging paths go under this directory (it must accept them).
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// Its target paths go under this directory (it must accept them).
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Its process id, for its RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown backend {s:?}; use {}", Kind::CHOICES))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}
