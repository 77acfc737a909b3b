//! What a run found, as JSON (serde) and as markdown tables.

use super::server::Memory;
use super::stats::{Summary, ratio};
use serde::{Deserialize, Serialize};

/// The whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub meta: Meta,
    pub floor: Option<Floor>,
    pub drivers: Vec<Driver>,
    pub flex: Option<Flex>,
    pub loop_ext4: Option<LoopExt4>,
    pub targets: Vec<Goal>,
}

/// Where and when: load averages (1, 5, 15 min) before and after, kernel, cpus.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub version: String,
    pub started_unix: u64,
    pub seconds: f64,
    pub kernel: String,
    pub cpus: usize,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub mounts_before: usize,
}

/// Kernel and file-system floors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Floor {
    /// `mount --bind` + `umount` of a temp dir.
    pub bind_pair: Summary,
    /// `statx(STATX_MNT_ID)` of a mount point.
    pub statx: Summary,
    /// Read and parse `/proc/self/mountinfo` as the engine does, at `mountinfo_lines`.
    pub mountinfo: Summary,
    pub mountinfo_lines: usize,
    /// temp + write + rename, no fsync: node state.
    pub record_cached: Summary,
    /// temp + write + fsync + rename + fsync of the directory.
    pub record_durable: Summary,
}

/// One CSI endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Driver {
    pub label: String,
    pub endpoint: String,
    pub stages: bool,
    pub memory: MemoryFigures,
    /// NodeGetCapabilities round trip: what any call costs before it does work.
    pub rpc_floor: Summary,
    /// Server CPU per NodeGetCapabilities: what the transport alone costs the server.
    #[serde(default)]
    pub rpc_floor_cpu_us: Option<f64>,
    pub create_delete: Option<CreateDelete>,
    pub cycles: Vec<CycleFigures>,
    /// Server CPU of a node cycle's kernel work (see `floor::cycle_kernel`), measured in the
    /// benchmark's own process beside the cycles: with four call floors, what any driver pays.
    #[serde(default)]
    pub cycle_kernel_cpu_us: Option<f64>,
    /// NodeGetVolumeStats of a published volume: what kubelet asks of every volume each minute.
    #[serde(default)]
    pub volume_stats: Option<StatsFigure>,
    pub at_scale: Option<AtScale>,
    /// Create + delete among other volumes that exist (not staged), per population level.
    #[serde(default)]
    pub scale: Vec<ScalePoint>,
    pub throughput: Vec<Throughput>,
}

/// Create + delete with `volumes` other volumes present.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScalePoint {
    pub volumes: usize,
    /// How long the volumes added for this level took to make.
    pub build_seconds: f64,
    pub create_delete: CreateDelete,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryFigures {
    pub pid: Option<u32>,
    pub at_rest: Option<Memory>,
    pub after_population: Option<Memory>,
    pub after_run: Option<Memory>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateDelete {
    pub class: String,
    pub create: Summary,
    pub delete: Summary,
    pub pair: Summary,
    /// Server CPU time per create + delete (self-started server or --server-pid).
    pub server_cpu_us: Option<f64>,
}

/// The node cycle of one volume class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CycleFigures {
    pub class: String,
    pub cycle: Summary,
    pub stage: Summary,
    pub publish: Summary,
    pub unpublish: Summary,
    pub unstage: Summary,
    /// Server CPU time per cycle, warm-up included (self-started server or --server-pid).
    pub server_cpu_us: Option<f64>,
}

/// The cycle again with `population` other volumes staged and published.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AtScale {
    pub population: usize,
    pub mountinfo_lines: usize,
    pub build_seconds: f64,
    pub teardown_seconds: f64,
    pub cycle: CycleFigures,
    /// NodeGetVolumeStats of a published volume among the population.
    #[serde(default)]
    pub volume_stats: Option<StatsFigure>,
    /// at-scale p50 / base p50 of the same class.
    pub ratio_p50: f64,
    pub ratio_p99: f64,
}

/// NodeGetVolumeStats of one staged and published volume, repeated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsFigure {
    pub class: String,
    pub call: Summary,
    /// Server CPU time per call, warm-up included.
    pub server_cpu_us: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub clients: usize,
    pub cycles: usize,
    pub seconds: f64,
    pub cycles_per_second: f64,
    pub calls_per_second: f64,
    pub cycle: Summary,
}

/// FlexVolume exec latency, round-robin in one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Flex {
    pub rounds: usize,
    pub rows: Vec<ExecRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecRow {
    pub what: String,
    pub program: String,
    pub static_binary: bool,
    pub latency: Summary,
    /// p50 over the static no-op's p50.
    pub x_floor: f64,
}

/// A loop ext4 volume through strata next to the same steps with the bare tools.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoopExt4 {
    pub size_bytes: u64,
    pub strata: Summary,
    pub tools: Summary,
    pub ratio_p50: f64,
}

/// A target of the project and whether this run met it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Goal {
    pub name: String,
    pub value: f64,
    pub limit: f64,
    pub unit: String,
    pub met: bool,
}

impl Goal {
    /// A target met when `value` is below `limit` (at most, when `inclusive`).
    pub fn below(name: &str, value: f64, limit: f64, unit: &str, inclusive: bool) -> Goal {
        let met = if inclusive { value <= limit } else { value < limit };
        Goal { name: name.to_owned(), value, limit, unit: unit.to_owned(), met }
    }
}

impl AtScale {
    pub fn new(population: usize, lines: usize, base: &Summary, cycle: CycleFigures) -> AtScale {
        AtScale {
            population,
            mountinfo_lines: lines,
            build_seconds: 0.0,
            teardown_seconds: 0.0,
            ratio_p50: ratio(cycle.cycle.p50_us, base.p50_us),
            ratio_p99: ratio(cycle.cycle.p99_us, base.p99_us),
            cycle,
            volume_stats: None,
        }
    }
}
